"""Skip a server-side apply that would change nothing, and still repair what someone changed by hand.

An object is written again unless both hold:
- its `modelrollout.io/applied` annotation is the hash of what we want now, so what we want has not
  changed since the last apply (a field we stopped setting is removed only by applying again);
- every field we set has that value on the live object (defaults the apiserver added do not count), so
  nobody edited one of our fields by hand since.
A value the apiserver normalises (a quantity like `0.5` read back as `500m`) never compares equal: such
an object is applied every time, as before, which costs a request but is never wrong.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelrollout.core.labels import APPLIED_ANNOTATION


def stamped(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with the hash of itself in the applied annotation."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]
    metadata = body["metadata"]
    annotations = {**metadata.get("annotations", {}), APPLIED_ANNOTATION: digest}
    return {**body, "metadata": {**metadata, "annotations": annotations}}


def unchanged(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """True when applying the stamped `desired` onto `live` would change nothing."""
    if live is None:
        return False
    wanted = desired["metadata"].get("annotations", {}).get(APPLIED_ANNOTATION)
    if wanted is None or live["metadata"].get("annotations", {}).get(APPLIED_ANNOTATION) != wanted:
        return False
    return contains(live, desired)


def contains(live: Any, desired: Any) -> bool:
    """Every field of `desired` is in `live` with the same value; lists match element by element."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(key in live and contains(live[key], desired[key]) for key in desired)
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(item, wanted) for item, wanted in zip(live, desired, strict=True))
        )
    return live == desired
