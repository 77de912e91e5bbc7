"""Render the model server's Deployment (one per revision) and its Service.

Rules:
- Every object is owned by the ModelDeployment (controller owner reference), so deleting the
  ModelDeployment garbage-collects it.
- A revision's Deployment is named `<name>-<revision>`; its selector and pod labels carry the
  revision, so two revisions never select each other's pods.
- The user's template is copied, never edited in place; operator labels are added on top.
"""

from __future__ import annotations

import copy
from typing import Any

from modelrollout.core import labels
from modelrollout.core.enums import ServiceRole, Track
from modelrollout.core.spec import ModelDeploymentSpec, ObjectMeta

API_VERSION = "modelrollout.io/v1alpha1"
KIND = "ModelDeployment"


def owner_reference(meta: ObjectMeta) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.name,
        "uid": meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def common_labels(meta: ObjectMeta) -> dict[str, str]:
    return {
        labels.APP_NAME_LABEL: meta.name,
        labels.MANAGED_BY_LABEL: labels.MANAGED_BY,
        labels.DEPLOYMENT_LABEL: meta.name,
    }


def deployment_name(name: str, revision: str) -> str:
    return f"{name}-{revision}"


def deployment(
    meta: ObjectMeta,
    spec: ModelDeploymentSpec,
    revision: str,
    replicas: int,
    track: str = "",
) -> dict[str, Any]:
    """The Deployment of the spec's revision (other revisions' Deployments are only scaled, never re-rendered).

    The track (stable, canary) labels the Deployment, not its pod template: promoting a canary
    must not restart its pods.
    """
    selector = {labels.DEPLOYMENT_LABEL: meta.name, labels.REVISION_LABEL: revision}
    pod_template = copy.deepcopy(spec.template)
    pod_metadata = pod_template.setdefault("metadata", {})
    pod_labels = pod_metadata.setdefault("labels", {})
    pod_labels.update(model_labels(spec))
    pod_labels.update(common_labels(meta))
    pod_labels[labels.REVISION_LABEL] = revision
    metadata_labels = {**common_labels(meta), **model_labels(spec), labels.REVISION_LABEL: revision}
    if track:
        metadata_labels[labels.TRACK_LABEL] = track
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(meta.name, revision),
            "namespace": meta.namespace,
            "labels": metadata_labels,
            "ownerReferences": [owner_reference(meta)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": pod_template,
            # One ReplicaSet per revision: the template of a revision never changes.
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        },
    }


def model_labels(spec: ModelDeploymentSpec) -> dict[str, str]:
    return {labels.MODEL_NAME_LABEL: spec.model.name, labels.MODEL_VERSION_LABEL: spec.model.version}


_SERVICE_SUFFIXES = {
    ServiceRole.ACTIVE: "",
    ServiceRole.STABLE: "-stable",
    ServiceRole.CANARY: "-canary",
    ServiceRole.PREVIEW: "-preview",
}
_SERVICE_TRACKS = {
    ServiceRole.STABLE: Track.STABLE,
    ServiceRole.CANARY: Track.CANARY,
    ServiceRole.PREVIEW: Track.PREVIEW,
}


def service_name(name: str, role: ServiceRole) -> str:
    return name + _SERVICE_SUFFIXES[role]


def service(
    meta: ObjectMeta, spec: ModelDeploymentSpec, revision: str | None, role: ServiceRole = ServiceRole.ACTIVE
) -> dict[str, Any]:
    """The Service of `role` over the pods of `revision`, or of every revision when `revision` is None."""
    name = service_name(meta.name, role)
    track = _SERVICE_TRACKS.get(role)
    selector = {labels.DEPLOYMENT_LABEL: meta.name}
    if revision is not None:
        selector[labels.REVISION_LABEL] = revision
    service_labels = common_labels(meta)
    if track:
        service_labels[labels.TRACK_LABEL] = track
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": service_labels,
            "ownerReferences": [owner_reference(meta)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {
                    "name": spec.service.name,
                    "port": spec.service.port,
                    "targetPort": spec.service.target_port,
                    "protocol": "TCP",
                }
            ],
        },
    }
