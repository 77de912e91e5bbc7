"""The ModelDeployment spec as frozen dataclasses.

Rules:
- Parsing never raises on values the CRD schema already rejects at apply time; it applies the
  same defaults as the CRD so the core behaves the same on objects stored before a default existed.
- Only what the core decides on is typed; the pod template stays a dict (the apiserver validates it
  when the Deployment is written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelrollout.core.revision import revision_of

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_REVISION_HISTORY_LIMIT = 5


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    uri: str = ""
    framework: str = ""


@dataclass(frozen=True)
class ServicePort:
    port: int = 80
    target_port: int | str = 8080
    name: str = "http"


@dataclass(frozen=True)
class ModelDeploymentSpec:
    replicas: int
    model: Model
    template: dict[str, Any]
    service: ServicePort
    strategy: dict[str, Any]
    traffic_routing: dict[str, Any]
    automation: str
    progress_deadline_seconds: int
    revision_history_limit: int

    @property
    def revision(self) -> str:
        model = {
            "name": self.model.name,
            "version": self.model.version,
            "uri": self.model.uri,
            "framework": self.model.framework,
        }
        return revision_of(self.template, model)


@dataclass(frozen=True)
class ObjectMeta:
    """The parts of a ModelDeployment's metadata the core needs."""

    name: str
    namespace: str
    uid: str
    generation: int


def parse_spec(spec: dict[str, Any]) -> ModelDeploymentSpec:
    model = spec.get("model") or {}
    service = spec.get("service") or {}
    return ModelDeploymentSpec(
        replicas=int(spec.get("replicas", 1)),
        model=Model(
            name=str(model.get("name", "")),
            version=str(model.get("version", "")),
            uri=str(model.get("uri", "")),
            framework=str(model.get("framework", "")),
        ),
        template=spec.get("template") or {},
        service=ServicePort(
            port=int(service.get("port", 80)),
            target_port=service.get("targetPort", 8080),
            name=str(service.get("portName", "http")),
        ),
        strategy=spec.get("strategy") or {},
        traffic_routing=spec.get("trafficRouting") or {},
        automation=str(spec.get("automation", "full")),
        progress_deadline_seconds=int(spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)),
        revision_history_limit=int(spec.get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)),
    )


def parse_meta(body: dict[str, Any]) -> ObjectMeta:
    metadata = body.get("metadata") or {}
    return ObjectMeta(
        name=metadata["name"],
        namespace=metadata.get("namespace", "default"),
        uid=metadata.get("uid", ""),
        generation=int(metadata.get("generation", 0)),
    )
