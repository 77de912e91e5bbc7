"""What the shell observed, handed to the core as immutable data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelrollout.core.analysis import AnalysisInput
from modelrollout.core.hooks import HookAnswer
from modelrollout.core.spec import ModelDeploymentSpec, ObjectMeta


@dataclass(frozen=True)
class ObservedDeployment:
    """A child Deployment as the apiserver reports it."""

    name: str
    revision: str
    created: str
    spec_replicas: int
    generation: int = 1
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    progress_deadline_exceeded: bool = False

    def settled(self) -> bool:
        """The Deployment controller has seen the latest spec and every pod is updated and available."""
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas == self.spec_replicas
            and self.available_replicas == self.spec_replicas
            and self.replicas == self.spec_replicas
        )

    def settled_at(self, replicas: int) -> bool:
        return self.spec_replicas == replicas and self.settled()


@dataclass(frozen=True)
class Request:
    """A manual action a person asked for through the status subresource."""

    action: str  # promote | promote-full | abort | retry | pause | resume | undo
    id: str
    actor: str = ""
    requested_at: str = ""
    revision: str = ""

    @classmethod
    def from_status(cls, body: Mapping[str, Any] | None) -> Request | None:
        if not body or not body.get("action") or not body.get("id"):
            return None
        return cls(
            action=str(body["action"]),
            id=str(body["id"]),
            actor=str(body.get("actor", "")),
            requested_at=str(body.get("requestedAt", "")),
            revision=str(body.get("revision", "")),
        )


@dataclass(frozen=True)
class Observation:
    meta: ObjectMeta
    spec: ModelDeploymentSpec
    status: Mapping[str, Any]
    deployments: tuple[ObservedDeployment, ...]
    now: datetime
    request: Request | None = None
    analysis: Mapping[str, AnalysisInput] = field(default_factory=dict)
    firing_alerts: tuple[str, ...] = ()  # rollbackOn alerts firing now, described
    # Parts of the data plane that do not declare they can mirror (e.g. a GatewayClass without
    # HTTPRouteRequestMirror in status.supportedFeatures), described; observed only for a shadow.
    mirroring_undeclared: tuple[str, ...] = ()
    hook_answers: Mapping[str, HookAnswer] = field(default_factory=dict)  # by HookCall.key, made this reconcile
