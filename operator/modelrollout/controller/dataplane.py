"""What the data plane declares it can do, observed for the core (which decides what to make of it).

Gateway API implementations list what they support in `GatewayClass.status.supportedFeatures`
(Gateway API >= 1.2, entries `{name: ...}`). One that does not implement RequestMirror may still
accept a route with a mirror and fail every request on it (Traefik does), so before a shadow the
core needs to know, for every parent Gateway of the route, whether its class declares mirroring.
"""

from __future__ import annotations

from modelrollout.core.enums import Router
from modelrollout.core.spec import ModelDeploymentSpec
from modelrollout.kube.client import Kind, KubeClient, KubeError, register_kinds

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY = Kind(GATEWAY_GROUP, "v1", "gateways", "Gateway")
GATEWAY_CLASS = Kind(GATEWAY_GROUP, "v1", "gatewayclasses", "GatewayClass", namespaced=False)
MIRROR_FEATURE = "HTTPRouteRequestMirror"
register_kinds(GATEWAY, GATEWAY_CLASS)


def needs_mirroring_check(spec: ModelDeploymentSpec) -> bool:
    """Only a shadow through Gateway API depends on what the implementation declares."""
    return spec.shadow is not None and spec.router is Router.GATEWAY_API


def declared_features(gateway_class: dict) -> set[str]:
    """Feature names from status.supportedFeatures (objects since v1.2; plain strings before)."""
    features = (gateway_class.get("status") or {}).get("supportedFeatures") or []
    return {item["name"] if isinstance(item, dict) else str(item) for item in features}


def mirroring_undeclared(kube: KubeClient, spec: ModelDeploymentSpec, namespace: str) -> tuple[str, ...]:
    """Every parent Gateway whose class does not declare RequestMirror (or cannot be read), described."""
    config = spec.traffic_routing.get(Router.GATEWAY_API) or {}
    found: list[str] = []
    for ref in config.get("parentRefs") or []:
        if ref.get("group", GATEWAY_GROUP) != GATEWAY_GROUP or ref.get("kind", "Gateway") != "Gateway":
            found.append(f"parent {ref.get('kind')} {ref['name']} is not a Gateway, so its mirroring is unknown")
            continue
        gateway_name = f"{ref.get('namespace', namespace)}/{ref['name']}"
        try:
            gateway = kube.get(GATEWAY, ref.get("namespace", namespace), ref["name"])
            if gateway is None:
                found.append(f"Gateway {gateway_name} was not found")
                continue
            class_name = gateway["spec"]["gatewayClassName"]
            gateway_class = kube.get(GATEWAY_CLASS, None, class_name)
        except KubeError as error:
            found.append(f"cannot read the Gateway {gateway_name} or its GatewayClass ({error})")
            continue
        if gateway_class is None:
            found.append(f"GatewayClass {class_name} of Gateway {gateway_name} was not found")
        elif MIRROR_FEATURE not in declared_features(gateway_class):
            found.append(
                f"GatewayClass {class_name} (of Gateway {gateway_name}) does not declare {MIRROR_FEATURE} "
                "in status.supportedFeatures"
            )
    return tuple(found)
