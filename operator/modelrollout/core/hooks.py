"""`spec.hooks`: HTTP calls the rollout makes at named points, some of which it waits on.

Rules:
- A hook point is gating or not, declared once (`GATING`). At a gating point the rollout goes no
  further until every hook there answered 2xx; at the others it tells and never waits, so an abort
  or a promotion is never held up by a receiver.
- A gating hook that fails (not 2xx, no answer within its timeout, unreachable) is called again up
  to `retries` times, `retryIntervalSeconds` apart, then does what `onFailure` says: abort, pause
  for a person, or wait (call again every interval until it answers 2xx: an external approval).
- The README's hook table is generated from `POINT_MEANINGS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from modelrollout.core.notifications import is_http_url

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_INTERVAL_SECONDS = 10.0


class HookPoint(StrEnum):
    """Where in a rollout a hook is called (`spec.hooks[].at`)."""

    PRE_ROLLOUT = "preRollout"
    PRE_TRAFFIC_INCREASE = "preTrafficIncrease"
    PRE_PROMOTION = "prePromotion"
    POST_PROMOTION = "postPromotion"
    ON_ROLLBACK = "onRollback"
    ON_EVENT = "onEvent"


class HookFailure(StrEnum):
    """What a gating hook's failure does, once its retries are spent (`onFailure`)."""

    ABORT = "abort"
    PAUSE = "pause"
    WAIT = "wait"


class HookPhase(StrEnum):
    """Where one gating hook call stands (`status.hooks[].phase`)."""

    RETRYING = "Retrying"  # failed, and will be called again
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # failed for good: onFailure acted
    SKIPPED = "Skipped"  # failed, and a person chose to go on without it


GATING = frozenset({HookPoint.PRE_ROLLOUT, HookPoint.PRE_TRAFFIC_INCREASE, HookPoint.PRE_PROMOTION})

POINT_MEANINGS: Mapping[HookPoint, str] = MappingProxyType(
    {
        HookPoint.PRE_ROLLOUT: "once per rollout, when the new revision's first pods are available and before "
        "any traffic (mirrored, live or the preview Service's first readiness) reaches it",
        HookPoint.PRE_TRAFFIC_INCREASE: "before each canary step that raises the live weight, once its pods are "
        "available",
        HookPoint.PRE_PROMOTION: "before the promotion: a canary's last move to 100%, a blue/green switch",
        HookPoint.POST_PROMOTION: "after the new revision became stable",
        HookPoint.ON_ROLLBACK: "after a rollout was aborted (alarm, failed check, deadline, a person, a hook)",
        HookPoint.ON_EVENT: "for every Event a decision emits",
    }
)


@dataclass(frozen=True)
class Hook:
    name: str
    at: tuple[HookPoint, ...]
    url: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    retries: int = 0
    retry_interval: float = DEFAULT_RETRY_INTERVAL_SECONDS
    on_failure: HookFailure = HookFailure.ABORT
    metadata: Mapping[str, str] = field(default_factory=dict)  # passed in every payload (Flagger's metadata)


@dataclass(frozen=True)
class HookCall:
    """One call the core asks for: the shell makes it and sends the documented payload."""

    key: str  # the same key answers it (gating) or names it in logs
    hook: Hook
    point: HookPoint
    revision: str
    stable_revision: str
    step: int | None = None  # preTrafficIncrease: the 0-based canary step about to complete
    canary_weight: int = 0  # the live weight the call is about (the weight to be set, before an increase)
    event: Mapping[str, str] = field(default_factory=dict)  # onEvent: type, reason, message


@dataclass(frozen=True)
class HookAnswer:
    """What the shell saw when it made a gating call, handed to the next decision."""

    ok: bool
    latency: float  # seconds
    code: int | None = None  # the HTTP status, when there was one
    message: str = ""  # the start of the answer's body, or why there was none


def markdown_table() -> str:
    rows = ["| `at` | when | the rollout waits on it |", "|---|---|---|"]
    for point, meaning in POINT_MEANINGS.items():
        rows.append(f"| `{point}` | {meaning} | {'yes' if point in GATING else 'no'} |")
    return "\n".join(rows)


def parse_hooks(items: list[Mapping[str, Any]] | None) -> tuple[Hook, ...]:
    """The spec's hooks; the CRD refuses what raises here first, this says the same in words."""
    hooks, names = [], set()
    for index, item in enumerate(items or []):
        name = str(item.get("name") or f"hook-{index}")
        where = f"hooks[{index}] ({name})"
        webhook = item.get("webhook") or {}
        url = str(webhook.get("url") or "")
        if not url:
            raise ValueError(f"{where}: has no target; set webhook.url")
        if not is_http_url(url):
            raise ValueError(f"{where}: webhook.url must start with http:// or https://")
        if name in names:
            raise ValueError(f"{where}: a second hook named {name}; hook names must be unique")
        names.add(name)
        at = tuple(dict.fromkeys(HookPoint(point) for point in item.get("at") or ()))
        if not at:
            raise ValueError(f"{where}: names no point in `at`")
        hooks.append(
            Hook(
                name=name,
                at=at,
                url=url,
                timeout=float(webhook.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)),
                retries=int(item.get("retries", 0)),
                retry_interval=float(item.get("retryIntervalSeconds", DEFAULT_RETRY_INTERVAL_SECONDS)),
                on_failure=HookFailure(item.get("onFailure", HookFailure.ABORT)),
                metadata={str(key): str(value) for key, value in (item.get("metadata") or {}).items()},
            )
        )
    return tuple(hooks)
