"""The routers' objects as REST kinds, built from what each render adapter declares.

Rules:
- Neither layer knows the other: render declares each router's kinds as data, the kube client knows
  no router; this module builds the client's `Kind`s from the declarations and registers them, so
  `KubeClient.apply` writes routing objects and a stale router's objects are deleted by their kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelrollout.core.enums import Router
from modelrollout.kube.client import Kind, register_kinds
from modelrollout.render.routers import ObjectKind, registry


def kube_kind(declared: ObjectKind) -> Kind:
    return Kind(declared.group, declared.version, declared.plural, declared.kind)


ROUTER_KINDS: Mapping[Router, tuple[Kind, ...]] = MappingProxyType(
    {router: tuple(kube_kind(declared) for declared in adapter.kinds) for router, adapter in registry().items()}
)

register_kinds(*(kind for kinds in ROUTER_KINDS.values() for kind in kinds))
