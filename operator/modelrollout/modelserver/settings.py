"""What one pod asks of its model server, read from the pod, and the MLServer settings files for it.

Pure functions of the pod object (a dict as the apiserver returns it), so they are unit-tested without
a cluster. The pod template declares everything (see harness.py for the full contract):

- `spec.readinessGates` holds condition type `modelrollout.io/model-server-ready` (else: not ours);
- one container declares a port named `http` (inference) and one named `metrics` (Prometheus); a port
  named `grpc` is used for MLServer's gRPC server, which cannot be turned off (default 8081);
- that container's env: `MODEL_NAME`, `MODEL_VERSION`, `MODEL_BEHAVIOUR`, optional `MODEL_LATENCY_SECONDS`.

Every server binds its pod's IP only (`host` in settings.json: the file wins over MLSERVER_* variables),
for REST, metrics and gRPC alike, so ports repeat freely across pods.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from modelrollout.modelserver import behaviour

READINESS_GATE = "modelrollout.io/model-server-ready"
ENV_NAME = "MODEL_NAME"
ENV_VERSION = "MODEL_VERSION"
ENV_BEHAVIOUR = "MODEL_BEHAVIOUR"
ENV_LATENCY = "MODEL_LATENCY_SECONDS"
NAME_LABEL = "modelrollout.io/model-name"
VERSION_LABEL = "modelrollout.io/model-version"
DEFAULT_GRPC_PORT = 8081


class PodSpecError(ValueError):
    """The pod carries the gate but not what a model server needs; the message says what to add."""


@dataclass(frozen=True)
class ServerSpec:
    """One model server, as its pod asks for it."""

    namespace: str
    pod: str
    uid: str
    ip: str
    http_port: int
    metrics_port: int
    grpc_port: int
    model_name: str
    model_version: str
    behaviour: behaviour.Behaviour

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"

    @property
    def base_url(self) -> str:
        return f"http://{self.ip}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.ip}:{self.metrics_port}/metrics"


def gated(pod: dict) -> bool:
    """Whether the pod asks for a real model server (carries our readiness gate)."""
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    return any(gate.get("conditionType") == READINESS_GATE for gate in gates)


def server_spec(pod: dict) -> ServerSpec:
    """The server a gated, running pod with an IP asks for; PodSpecError names what is missing."""
    metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    where = f"pod {metadata.get('namespace')}/{metadata.get('name')}"
    ip = status.get("podIP")
    if not ip:
        raise PodSpecError(f"{where} has no IP yet")
    container = next((c for c in spec.get("containers", []) if _port(c, "http") is not None), None)
    if container is None:
        raise PodSpecError(f"{where}: declare a container port named 'http' (the model server's REST port)")
    http_port = _port(container, "http")
    metrics_port = _port(container, "metrics")
    if metrics_port is None:
        raise PodSpecError(f"{where}: declare a port named 'metrics' in container {container['name']!r}")
    grpc_port = _port(container, "grpc")
    if grpc_port is None:
        grpc_port = next(p for p in range(DEFAULT_GRPC_PORT, 65536) if p not in (http_port, metrics_port))
    if len({http_port, metrics_port, grpc_port}) != 3:
        raise PodSpecError(f"{where}: the ports http, metrics and grpc must differ")
    env = _env(container, where)
    labels = metadata.get("labels") or {}
    model_name = env.get(ENV_NAME) or labels.get(NAME_LABEL)
    model_version = env.get(ENV_VERSION) or labels.get(VERSION_LABEL)
    if not model_name or not model_version:
        raise PodSpecError(f"{where}: set env {ENV_NAME} and {ENV_VERSION} in container {container['name']!r}")
    latency = env.get(ENV_LATENCY)
    try:
        chosen = behaviour.parse(env.get(ENV_BEHAVIOUR, behaviour.GOOD), float(latency) if latency else None)
    except ValueError as error:
        raise PodSpecError(f"{where}: {error}") from None
    return ServerSpec(
        namespace=metadata["namespace"],
        pod=metadata["name"],
        uid=metadata["uid"],
        ip=ip,
        http_port=http_port,
        metrics_port=metrics_port,
        grpc_port=grpc_port,
        model_name=model_name,
        model_version=model_version,
        behaviour=chosen,
    )


def _port(container: dict, name: str) -> int | None:
    for port in container.get("ports") or []:
        if port.get("name") == name:
            return int(port["containerPort"])
    return None


def _env(container: dict, where: str) -> dict[str, str]:
    values = {}
    for variable in container.get("env") or []:
        if variable["name"] in (ENV_NAME, ENV_VERSION, ENV_BEHAVIOUR, ENV_LATENCY):
            if "value" not in variable:
                raise PodSpecError(f"{where}: env {variable['name']} must be a plain value (valueFrom is not read)")
            values[variable["name"]] = variable["value"]
    return values


def server_settings(spec: ServerSpec, folder: Path) -> dict:
    """settings.json: bound to the pod IP on its declared ports, metrics in this server's own directory."""
    return {
        "debug": False,
        "host": spec.ip,
        "http_port": spec.http_port,
        "grpc_port": spec.grpc_port,
        "metrics_port": spec.metrics_port,
        "metrics_endpoint": "/metrics",
        # Servers on one host must not share a multiprocess directory: each would export the others' samples.
        "metrics_dir": str(folder / "metrics"),
        "load_models_at_startup": True,
        # parallel_workers stays MLServer's default (1): with 0, custom metrics are silently dropped.
    }


def model_settings(spec: ServerSpec, artifact: Path, feature_names: list[str]) -> dict:
    """model-settings.json: our runtime, the pod's name and version, its behaviour as `extra`."""
    return {
        "name": spec.model_name,
        "implementation": "runtime.BehaviourModel",
        "parameters": {
            "version": spec.model_version,
            "uri": str(artifact),
            "extra": {**spec.behaviour.to_settings(), "feature_names": feature_names},
        },
    }


def write_folder(spec: ServerSpec, folder: Path, artifact: Path, feature_names: list[str]) -> None:
    """Lay out one server's folder: settings.json, model/ with model-settings.json and the runtime files."""
    # MLServer warns when the model's folder is not named after the model.
    model_dir = folder / "models" / re.sub(r"[^A-Za-z0-9_.-]", "_", spec.model_name)
    model_dir.mkdir(parents=True, exist_ok=True)
    (folder / "metrics").mkdir(exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(server_settings(spec, folder), indent=1))
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings(spec, artifact, feature_names), indent=1))
    here = Path(__file__).parent
    for name in ("runtime.py", "behaviour.py"):
        (model_dir / name).write_text((here / name).read_text())


def pod_template(
    model_name: str,
    model_version: str,
    behaviour_name: str = behaviour.GOOD,
    labels: dict[str, str] | None = None,
    http_port: int = 8080,
    metrics_port: int = 8082,
    image: str = "docker.io/seldonio/mlserver:1.7.1",
) -> dict:
    """A pod template (core/v1 PodTemplateSpec) the harness serves: the gate, the ports, the env.

    The image is what a real cluster would run; kwok ignores it and the harness runs MLServer itself.
    """
    return {
        "metadata": {"labels": dict(labels or {})},
        "spec": {
            "readinessGates": [{"conditionType": READINESS_GATE}],
            "containers": [
                {
                    "name": "model-server",
                    "image": image,
                    "ports": [
                        {"name": "http", "containerPort": http_port},
                        {"name": "metrics", "containerPort": metrics_port},
                    ],
                    "env": [
                        {"name": ENV_NAME, "value": model_name},
                        {"name": ENV_VERSION, "value": model_version},
                        {"name": ENV_BEHAVIOUR, "value": behaviour_name},
                    ],
                }
            ],
        },
    }


def model_deployment(
    name: str,
    namespace: str,
    version: str,
    behaviour_name: str,
    routing: dict,
    strategy: dict,
    replicas: int = 1,
    **spec: object,
) -> dict:
    """A ModelDeployment whose pods the harness serves: model `name` at `version`, behaving as named, on
    Service port 80 (the pods' `http` port); `spec` adds fields (e.g. rollbackOn, progressDeadlineSeconds)."""
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "model": {"name": name, "version": version, "framework": "sklearn"},
            "template": pod_template(name, version, behaviour_name),
            "service": {"port": 80, "targetPort": "http"},
            "trafficRouting": routing,
            "strategy": strategy,
            **spec,
        },
    }
