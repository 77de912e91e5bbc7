"""Revisions: a stable hash of what makes a model server version.

The hash covers `spec.template` and `spec.model` (pods are labelled with the model), never
`spec.replicas`: scaling is not a rollout. Keys are sorted so the same content always gives the
same revision, whatever order Git or kubectl wrote it in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

REVISION_LENGTH = 10


def revision_of(template: dict[str, Any], model: dict[str, Any]) -> str:
    canonical = json.dumps({"model": model, "template": template}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:REVISION_LENGTH]
