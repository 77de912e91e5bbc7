"""Where a reconcile reads the ModelDeployment and what it owns, and tells what it wrote.

Two answers to the same questions:
- `ApiReads` asks the apiserver every time and knows no live object, so every child is applied (tools,
  unit tests of the shell);
- `controller.cache.OwnedCache` answers from the watch caches, costing no request (the operator).
Both hear of the reconciler's own writes, so a cache is never older than what this process wrote.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelrollout.core import labels
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, Kind, KubeClient


class Reads(Protocol):
    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelDeployment, or None when it is gone."""

    def revisions(self, namespace: str, owner: str) -> list[dict[str, Any]]:
        """The Deployments labelled as the children of `owner` (ownership is checked by the caller)."""

    def live(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as last seen, or None when absent or not known: then it is written."""

    def wrote(self, kind: Kind, obj: dict[str, Any]) -> None:
        """The apiserver's answer to one of our writes."""

    def deleted(self, kind: Kind, namespace: str, name: str) -> None:
        """One of our deletes succeeded."""

    def refresh(self, namespace: str, name: str) -> None:
        """Our status write met a newer ModelDeployment (409): read it again before the next try."""


class ApiReads:
    """Every read is a request; nothing is remembered."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._kube.get(MODEL_DEPLOYMENT, namespace, name)

    def revisions(self, namespace: str, owner: str) -> list[dict[str, Any]]:
        return self._kube.list(DEPLOYMENT, namespace, f"{labels.DEPLOYMENT_LABEL}={owner}")

    def live(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def wrote(self, kind: Kind, obj: dict[str, Any]) -> None:
        pass

    def deleted(self, kind: Kind, namespace: str, name: str) -> None:
        pass

    def refresh(self, namespace: str, name: str) -> None:
        pass
