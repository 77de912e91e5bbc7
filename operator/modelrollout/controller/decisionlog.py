"""The decision log: one INFO line per change a decision made, on the `modelrollout.decisions` logger.

Rules:
- Written after the status write succeeded, so a decision retried on a conflict is logged once.
- The text line names the object and revision; `--log-format json` carries the same facts as fields
  (`change`, `namespace`, `name`, `revision`, and the change's own: `percent`, `metric`, `reason`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from modelrollout.core.rollout import Entry
from modelrollout.core.spec import ObjectMeta

DECISIONS = logging.getLogger("modelrollout.decisions")


def write(meta: ObjectMeta, revision: str, entries: Iterable[Entry]) -> None:
    for entry in entries:
        DECISIONS.info(
            "%s/%s revision %s: %s",
            meta.namespace,
            meta.name,
            revision,
            entry.message,
            extra={
                "k8s_ref": {"namespace": meta.namespace, "name": meta.name},
                "decision": {"change": str(entry.change), "revision": revision, **entry.fields},
            },
        )
