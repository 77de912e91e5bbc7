"""What every router adapter shares: the target it routes for, the kinds it writes, and its interface.

Rules:
- Adapters import this module, never the package `render.routers` (which imports every adapter), so
  no adapter depends on another (an import-linter contract checks it).
- An adapter declares once, as data: its `name` (a `Router` member) and the `kinds` of object it writes.
  The controller builds the kube client's REST kinds from `kinds`; render never imports kube.
- Header routes are rendered in the same objects as the weights (no new object), each sending all it
  matches to the canary Service and taking precedence over the weighted route (by order in Istio, by
  rule length in Traefik, by match count in Gateway API); with none, the objects are as before.
- A session affinity (`core/cohorts.py`, given only while the canary has a route weight) is rendered in
  the same objects too, by the adapters whose data plane keeps a user on one weighted backend (Traefik,
  NGINX); the others take it and ignore it (the CRD refuses it for them). With none, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderRoute
from modelrollout.core.rollout import Weights


@dataclass(frozen=True)
class ObjectKind:
    """A kind of object a router writes, and where it lives in the API (the plural names its REST path)."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def header(self) -> dict[str, str]:
        """The `apiVersion` and `kind` fields of an object of this kind."""
        return {"apiVersion": self.api_version, "kind": self.kind}


@dataclass(frozen=True)
class RouteTarget:
    """What every router needs to know about the ModelDeployment it routes for."""

    name: str
    namespace: str
    port: int
    stable_service: str
    canary_service: str
    config: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    owner: dict[str, Any] = field(default_factory=dict)

    def metadata(self, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": dict(self.labels),
            "ownerReferences": [self.owner] if self.owner else [],
        }
        if annotations:
            metadata["annotations"] = annotations
        return metadata


@dataclass(frozen=True)
class Routing:
    """What the routing objects carry: `header_routes` (in order) to the canary, the rest split by
    `weights`, sticky to the first revision a user gets by `affinity`'s cookie where the data plane can."""

    weights: Weights = field(default_factory=Weights)
    header_routes: tuple[HeaderRoute, ...] = ()
    affinity: SessionAffinity | None = None


class RouterAdapter(Protocol):
    name: Router
    kinds: tuple[ObjectKind, ...]  # every kind `render` writes

    def render(self, target: RouteTarget, routing: Routing) -> list[dict[str, Any]]:
        """Every object the router owns, carrying `routing`."""
        ...

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        """(kind, name) of every object `render` writes for a ModelDeployment `name`."""
        ...
