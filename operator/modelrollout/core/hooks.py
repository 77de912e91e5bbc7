"""`spec.hooks`: HTTP calls or Jobs the rollout makes at named points, some of which it waits on.

Rules:
- A hook point is gating or not, declared once (`GATING`). At a gating point the rollout goes no
  further until every hook there answered 2xx; at the others it tells and never waits, so an abort
  or a promotion is never held up by a receiver.
- A Job hook passes when its Job completes; while it runs the hook has no answer yet and is looked
  at again every `JOB_POLL_SECONDS`.
- A gating hook that fails (not 2xx, no answer within its timeout, unreachable, a failed Job) is called again up
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
DEFAULT_JOB_TIMEOUT_SECONDS = 600
JOB_POLL_SECONDS = 2.0


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

    RUNNING = "Running"  # a Job hook's Job runs: looked at again every `JOB_POLL_SECONDS`
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
    """A hook and its target: an HTTP endpoint (`url`) or a Job (`job`, a JobSpec), exactly one."""

    name: str
    at: tuple[HookPoint, ...]
    url: str = ""
    job: Mapping[str, Any] | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS  # the request's, or the Job's activeDeadlineSeconds
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
    attempt: int = 1  # a Job hook makes one Job per attempt


@dataclass(frozen=True)
class HookAnswer:
    """What the shell saw when it made a gating call, handed to the next decision."""

    ok: bool
    latency: float  # seconds
    code: int | None = None  # the HTTP status, when there was one
    message: str = ""  # the start of the answer's body, or why there was none
    pending: bool = False  # a Job hook's Job still runs: no answer yet


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
        webhook, job = item.get("webhook") or {}, item.get("job") or {}
        url = str(webhook.get("url") or "")
        if bool(url) == bool(job.get("spec")):
            raise ValueError(f"{where}: needs exactly one target; set webhook.url or job.spec")
        if url and not is_http_url(url):
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
                job=dict(job["spec"]) if job else None,
                timeout=float(job.get("timeoutSeconds", DEFAULT_JOB_TIMEOUT_SECONDS))
                if job
                else float(webhook.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)),
                retries=int(item.get("retries", 0)),
                retry_interval=float(item.get("retryIntervalSeconds", DEFAULT_RETRY_INTERVAL_SECONDS)),
                on_failure=HookFailure(item.get("onFailure", HookFailure.ABORT)),
                metadata={str(key): str(value) for key, value in (item.get("metadata") or {}).items()},
            )
        )
    return tuple(hooks)
