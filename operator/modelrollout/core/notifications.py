"""`spec.notifications`: who is told when a rollout needs a person or has ended, and in which format.

A receiver is an outbound webhook (the URL itself, or a Secret holding it: Slack and Teams webhook
URLs are credentials). `kinds` narrows the notices it gets; empty means all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class NoticeKind(StrEnum):
    """What a notification tells a person."""

    APPROVAL_NEEDED = "ApprovalNeeded"  # the rollout waits for `kubectl modelrollout promote`
    ANALYSIS_FAILED = "AnalysisFailed"  # an analysis failed and the rollout rolled back
    ROLLED_BACK = "RolledBack"  # rolled back for another reason (alarm, deadline, a person)
    PROMOTED = "Promoted"


class NoticeFormat(StrEnum):
    """The body a receiver expects."""

    GENERIC = "generic"  # modelrollout's own JSON
    SLACK = "slack"  # Slack incoming webhook ({"text": ...})
    TEAMS = "teams"  # Microsoft Teams workflow webhook (an Adaptive Card message)


@dataclass(frozen=True)
class SecretKey:
    name: str
    key: str


@dataclass(frozen=True)
class Receiver:
    name: str
    format: NoticeFormat = NoticeFormat.GENERIC
    url: str = ""
    url_secret: SecretKey | None = None  # set instead of `url`
    kinds: frozenset[NoticeKind] = frozenset()  # empty: every kind

    def wants(self, kind: NoticeKind) -> bool:
        return not self.kinds or kind in self.kinds


def is_http_url(url: str) -> bool:
    """What a receiver's URL must be, however it is given (spec, Secret, operator setting)."""
    return url.startswith(("http://", "https://"))


def parse_receivers(notifications: Mapping[str, Any] | None) -> tuple[Receiver, ...]:
    receivers = []
    for index, item in enumerate((notifications or {}).get("receivers") or []):
        name = str(item.get("name") or f"receiver-{index}")
        url, ref = str(item.get("url") or ""), item.get("urlSecretRef")
        if bool(url) == bool(ref):
            raise ValueError(f"notifications.receivers[{index}] ({name}): set exactly one of url and urlSecretRef")
        if url and not is_http_url(url):
            raise ValueError(f"notifications.receivers[{index}] ({name}): url must start with http:// or https://")
        receivers.append(
            Receiver(
                name=name,
                format=NoticeFormat(item.get("format", NoticeFormat.GENERIC)),
                url=url,
                url_secret=SecretKey(str(ref["name"]), str(ref["key"])) if ref else None,
                kinds=frozenset(NoticeKind(kind) for kind in item.get("kinds") or ()),
            )
        )
    return tuple(receivers)
