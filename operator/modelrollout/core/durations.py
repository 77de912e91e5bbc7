"""Go-style durations ("90s", "10m", "1h30m", "250ms"), the format the CRD validates with CEL `duration()`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError on anything the CRD pattern would reject."""
    text = text.strip()
    parts = _PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"invalid duration {text!r}: use a number and unit, e.g. 30s, 10m, 1h30m")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def format_seconds(seconds: float) -> str:
    """A short human duration for messages: 45s, 4m05s, 1h02m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
