"""Status conditions in the Kubernetes convention (kstatus for Flux and `kubectl wait`).

Rules:
- `lastTransitionTime` changes only when a condition's status changes, so re-reconciling an
  unchanged object writes an identical status (no write, no event).
- Ready/Reconciling/Stalled follow kstatus: Reconciling=True while converging, Stalled=True when
  it cannot converge without a change, Ready=True only when neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    DEGRADED = "Degraded"


READY, RECONCILING, STALLED, PROGRESSING, PAUSED, DEGRADED = ConditionType

ORDER = (READY, RECONCILING, STALLED, PROGRESSING, PAUSED, DEGRADED)


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_second_after(moment: datetime) -> datetime:
    """`moment`, rounded up to the whole second the status can store: a wait counted from it, or ending at it,
    is never shorter than asked (`format_time` drops the fraction)."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time as the apiserver stores it; None for absent or unreadable values."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def merge_conditions(
    previous: list[dict[str, Any]], desired: list[Condition], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """Render `desired` as status conditions, keeping transition times from `previous` where unchanged."""
    by_type = {condition.get("type"): condition for condition in previous or []}
    rendered = []
    for condition in sorted(desired, key=lambda c: ORDER.index(c.type) if c.type in ORDER else len(ORDER)):
        status = "True" if condition.status else "False"
        earlier = by_type.get(condition.type)
        unchanged = earlier is not None and earlier.get("status") == status and earlier.get("lastTransitionTime")
        rendered.append(
            {
                "type": condition.type,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": earlier["lastTransitionTime"] if unchanged else format_time(now),
                "reason": condition.reason,
                "message": condition.message,
            }
        )
    return rendered
