"""Sticky cohorts: each user keeps seeing the revision the data plane first sent them to.

Rules:
- `strategy.canary.sessionAffinity` names the cookie the data plane sets on a user's first answer once
  the canary has a weight; from then on the user's requests go to that revision (both ways: a stable
  user stays on the stable), so business metrics per revision compare two fixed cohorts.
- The stickiness is written only while the canary's route weight is above 0: a user who arrived at 0%
  carries no cookie into the split, and an abort (0%) sends every user, cookie or not, to the stable
  (Traefik ignores a sticky cookie for a member of weight 0).
- Only data planes that keep a user on one of two weighted backends can express it (Traefik's weighted
  sticky cookie, ingress-nginx's canary affinity); the CRD refuses it for the others, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SessionAffinity:
    cookie_name: str
    max_age: int = 0  # seconds; 0: a session cookie

    def describe(self) -> str:
        lasting = f", kept {self.max_age}s" if self.max_age else ", for the browser session"
        return f"sticky by cookie {self.cookie_name}{lasting}"


def parse_affinity(body: Mapping[str, Any] | None) -> SessionAffinity | None:
    if not body:
        return None
    return SessionAffinity(str(body["cookieName"]), int(body.get("maxAge") or 0))
