"""One reconcile of one ModelDeployment: observe, decide (pure core), act.

Rules:
- Reads everything first, then asks `core.reconcile.reconcile`, then writes; no decision here.
- Only children carrying our owner reference (by uid) are considered ours.
- The current revision's Deployment is server-side applied in full; other revisions only get their
  replica count patched, because their templates live only in their own Deployments.
- The apiserver rejecting a child (400/422) is the user's input error: reported as Stalled with the
  apiserver's message, and nothing already serving is touched.
- Status is written only when it differs, so a steady object costs reads only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modelrollout.controller.events import EventRecorder
from modelrollout.core import labels
from modelrollout.core.reconcile import Decision, ObservedDeployment, invalid, reconcile
from modelrollout.core.spec import ObjectMeta, parse_meta, parse_spec
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, KubeClient, KubeError
from modelrollout.render import workloads

log = logging.getLogger(__name__)

INVALID_STATUSES = (400, 422)


def utcnow() -> datetime:
    return datetime.now(UTC)


def owned_by(body: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in body["metadata"].get("ownerReferences", []))


def observe_deployment(body: dict[str, Any]) -> ObservedDeployment:
    metadata, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
    deadline_exceeded = any(
        c.get("type") == "Progressing" and c.get("status") == "False" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions", [])
    )
    return ObservedDeployment(
        name=metadata["name"],
        revision=metadata.get("labels", {}).get(labels.REVISION_LABEL, ""),
        created=metadata.get("creationTimestamp", ""),
        spec_replicas=int(spec.get("replicas", 1)),
        generation=int(metadata.get("generation", 1)),
        observed_generation=int(status.get("observedGeneration", 0)),
        replicas=int(status.get("replicas", 0)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        progress_deadline_exceeded=deadline_exceeded,
    )


class Reconciler:
    def __init__(self, kube: KubeClient, clock: Callable[[], datetime] = utcnow) -> None:
        self._kube = kube
        self._clock = clock
        self._events = EventRecorder(kube)

    def reconcile(self, namespace: str, name: str) -> None:
        body = self._kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return  # gone or going: owner references let the garbage collector remove the children
        meta = parse_meta(body)
        spec = parse_spec(body.get("spec") or {})
        previous = body.get("status") or {}
        children = self._kube.list(DEPLOYMENT, namespace, f"{labels.DEPLOYMENT_LABEL}={name}")
        owned = {observe_deployment(child).revision: child for child in children if owned_by(child, meta.uid)}
        observed = [observe_deployment(child) for child in owned.values()]
        now = self._clock()
        decision = reconcile(meta, spec, previous, observed, now)
        try:
            self._act(meta, spec, decision, owned)
            status, events = decision.status, decision.events
        except KubeError as error:
            if error.status not in INVALID_STATUSES:
                raise
            status, events = invalid(
                meta, previous, "InvalidSpec", f"the apiserver rejected a child: {error.message}", now
            )
        if any(previous.get(key) != value for key, value in status.items()):
            self._kube.patch_status(MODEL_DEPLOYMENT, namespace, name, status)
        for event in events:
            self._events.emit(body, event, now)

    def _act(self, meta: ObjectMeta, spec, decision: Decision, owned: dict[str, dict[str, Any]]) -> None:
        for desired in decision.deployments:
            if desired.revision == spec.revision:
                self._kube.apply(
                    workloads.deployment(
                        meta,
                        spec,
                        desired.revision,
                        desired.replicas,
                        spec.template,
                        workloads.model_labels(spec),
                    )
                )
            elif owned[desired.revision].get("spec", {}).get("replicas") != desired.replicas:
                self._kube.request(
                    "PATCH",
                    DEPLOYMENT.path(meta.namespace, owned[desired.revision]["metadata"]["name"]),
                    body={"spec": {"replicas": desired.replicas}},
                    content_type="application/merge-patch+json",
                )
        self._kube.apply(workloads.service(meta, spec, decision.service_revision))
        for revision in decision.delete_revisions:
            self._kube.delete(DEPLOYMENT, meta.namespace, owned[revision]["metadata"]["name"])
