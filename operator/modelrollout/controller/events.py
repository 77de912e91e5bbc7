"""Kubernetes Events for a ModelDeployment (events.k8s.io/v1, shown by `kubectl describe`).

An Event that cannot be written is logged and dropped: events are advisory and must never block
or fail a reconcile.
"""

from __future__ import annotations

import logging
import secrets
import socket
from datetime import UTC, datetime
from typing import Any

from modelrollout.core.rollout import Event
from modelrollout.kube.client import EVENT, KubeClient, KubeError

REPORTING_CONTROLLER = "modelrollout.io/operator"
MAX_NOTE = 1024

log = logging.getLogger(__name__)


def render_event(regarding: dict[str, Any], event: Event, now: datetime, instance: str) -> dict[str, Any]:
    metadata = regarding["metadata"]
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # Named like kubelet's events (<object>.<unique suffix>); generateName cannot end in '.'.
        "metadata": {"name": f"{metadata['name']}.{secrets.token_hex(8)}", "namespace": metadata["namespace"]},
        "eventTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance,
        "action": event.reason.value,
        "reason": event.reason.value,
        "note": event.message[:MAX_NOTE],
        "type": event.type.value,
        "regarding": {
            "apiVersion": regarding["apiVersion"],
            "kind": regarding["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid", ""),
        },
    }


class EventRecorder:
    def __init__(self, kube: KubeClient, instance: str | None = None) -> None:
        self._kube = kube
        self._instance = (instance or socket.gethostname())[:128]

    def emit(self, regarding: dict[str, Any], event: Event, now: datetime) -> None:
        body = render_event(regarding, event, now, self._instance)
        try:
            self._kube.create(EVENT, body["metadata"]["namespace"], body)
        except (KubeError, OSError) as error:
            log.warning("could not record event %s for %s: %s", event.reason, body["regarding"]["name"], error)
