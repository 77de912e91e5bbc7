"""What the operator owns, held in memory from watches, so a reconcile reads without a request.

Rules:
- ModelDeployments come from kopf's own watch (the handlers `remember` and `forget` them) and from the
  full list taken on becoming the active replica (`replace_models`): no second watch of them.
- Children (Deployments, Services, and the routing objects of each router in use) each have an
  informer per served namespace, or one for all, selecting the label every child carries
  (`modelrollout.io/deployment`) and indexed by it. Routing kinds are watched from the first time a
  reconcile writes one, so a cluster without Istio never watches VirtualServices.
- Until a kind's informer has listed once, its objects are unknown: Deployments are then listed from
  the apiserver, and other children are applied as if they had changed.
- A change seen on a child wakes its owner's reconcile (`on_change`), as kopf's watch of the
  ModelDeployment does: an edit by hand is repaired, a Deployment's progress moves the rollout on.
- Memory: each object is kept as compact JSON without managedFields (see `kube.informer`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from modelrollout.core import labels
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, SERVICE, Kind, KubeClient
from modelrollout.kube.informer import Informer, ObjectStore

CHILD_SELECTOR = labels.DEPLOYMENT_LABEL  # present on every child; its value names the owner


def controller_owner(obj: dict[str, Any]) -> str | None:
    """The name of the ModelDeployment that controls `obj`, from its owner references."""
    for reference in obj["metadata"].get("ownerReferences", []):
        if (
            reference.get("controller")
            and reference.get("kind") == MODEL_DEPLOYMENT.kind
            and reference.get("apiVersion", "").split("/")[0] == MODEL_DEPLOYMENT.group
        ):
            return reference["name"]
    return None


class OwnedCache:
    """The reads of a reconcile (`controller.reads.Reads`), answered from memory."""

    def __init__(
        self,
        kube: KubeClient,
        namespaces: Sequence[str | None],
        on_change: Callable[[str, str], None],
    ) -> None:
        self._kube = kube
        self._namespaces = list(namespaces) or [None]
        self._on_change = on_change
        self._lock = threading.Lock()
        self._informers: dict[tuple[Kind, str | None], Informer] = {}
        self.models = ObjectStore()
        for kind in (DEPLOYMENT, SERVICE):
            self.watch(kind)

    # --- ModelDeployments, from kopf's watch -----------------------------------------------------

    def remember(self, body: dict[str, Any]) -> None:
        self.models.put(body)

    def forget(self, namespace: str, name: str, revision: str | None = None) -> None:
        self.models.remove(namespace, name, int(revision) if revision and revision.isdigit() else None)

    def replace_models(self, bodies: list[dict[str, Any]]) -> None:
        """A fresh list of every served ModelDeployment (on becoming active: kopf's watch was frozen)."""
        self.models.replace(bodies)

    # --- children, from informers ----------------------------------------------------------------

    def watch(self, kind: Kind) -> None:
        """Start watching `kind` in every served namespace, once."""
        with self._lock:
            for namespace in self._namespaces:
                if (kind, namespace) not in self._informers:
                    informer = Informer(
                        self._kube, kind, namespace, CHILD_SELECTOR, labels.DEPLOYMENT_LABEL, self._changed
                    )
                    self._informers[(kind, namespace)] = informer.start()

    def informers(self) -> list[Informer]:
        with self._lock:
            return list(self._informers.values())

    def sizes(self) -> dict[str, tuple[int, int, int]]:
        """(objects, bytes of JSON, full lists) per resource, for /metrics."""
        models = (len(self.models), self.models.encoded_bytes(), 0)
        found: dict[str, tuple[int, int, int]] = {MODEL_DEPLOYMENT.plural: models}
        for informer in self.informers():
            objects, size, lists = found.get(informer.kind.plural, (0, 0, 0))
            store = informer.store
            found[informer.kind.plural] = (objects + len(store), size + store.encoded_bytes(), lists + informer.lists)
        return found

    def stop(self) -> None:
        for informer in self.informers():
            informer.stop()

    def _informer(self, kind: Kind, namespace: str) -> Informer | None:
        with self._lock:
            return self._informers.get((kind, namespace)) or self._informers.get((kind, None))

    def _changed(self, obj: dict[str, Any]) -> None:
        owner = controller_owner(obj)
        if owner is not None:
            self._on_change(obj["metadata"]["namespace"], owner)

    # --- controller.reads.Reads ------------------------------------------------------------------

    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.models.get(namespace, name)

    def revisions(self, namespace: str, owner: str) -> list[dict[str, Any]]:
        informer = self._informer(DEPLOYMENT, namespace)
        if informer is None or not informer.synced.is_set():
            return self._kube.list(DEPLOYMENT, namespace, f"{labels.DEPLOYMENT_LABEL}={owner}")
        return informer.store.indexed(namespace, owner)

    def live(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        informer = self._informer(kind, namespace)
        if informer is None:
            self.watch(kind)
            return None
        return informer.store.get(namespace, name) if informer.synced.is_set() else None

    def wrote(self, kind: Kind, obj: dict[str, Any]) -> None:
        if kind == MODEL_DEPLOYMENT:
            self.models.put(obj)
            return
        informer = self._informer(kind, obj["metadata"]["namespace"])
        if informer is not None:
            informer.store.put(obj)

    def deleted(self, kind: Kind, namespace: str, name: str) -> None:
        informer = self._informer(kind, namespace)
        if informer is not None:
            informer.store.remove(namespace, name)

    def refresh(self, namespace: str, name: str) -> None:
        body = self._kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None:
            self.models.remove(namespace, name)
        else:
            self.models.put(body)
