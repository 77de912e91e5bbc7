"""What each traffic router can do, declared once; the core decides by these traits, never by name.

Rules:
- Every `Router` has exactly one entry (a unit test checks it); the render adapters, the CRD and the
  RBAC add the objects a router writes. Adding a router: a member in `enums.Router`, one line here,
  one adapter module and one registry line in `render/routers`, the CRD field and the RBAC rules.
- `splits_by_weight` False means the replica ratio splits traffic (router `none`): the active
  Service then spans every revision while a canary serves, and selects the stable one otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from modelrollout.core.enums import Router


@dataclass(frozen=True)
class RouterTraits:
    splits_by_weight: bool  # routing objects carry the weights (else: the ratio of ready pods)
    mirrors: bool  # can copy live requests to the new revision with the answers discarded (shadow)


TRAITS = MappingProxyType(
    {
        Router.GATEWAY_API: RouterTraits(splits_by_weight=True, mirrors=True),
        Router.ISTIO: RouterTraits(splits_by_weight=True, mirrors=True),
        Router.NGINX: RouterTraits(splits_by_weight=True, mirrors=False),
        Router.TRAEFIK: RouterTraits(splits_by_weight=True, mirrors=True),
        Router.NONE: RouterTraits(splits_by_weight=False, mirrors=False),
    }
)

MIRRORING_ROUTERS = tuple(router for router, traits in TRAITS.items() if traits.mirrors)


def traits_of(router: Router) -> RouterTraits:
    return TRAITS[router]
