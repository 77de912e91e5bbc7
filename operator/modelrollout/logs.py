"""Logging set-up: readable lines for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, plus kopf's object context (namespace, name) and a decision's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        k8s = getattr(record, "k8s_ref", None)  # kopf's per-object loggers set this
        if isinstance(k8s, dict):
            entry.update({key: k8s[key] for key in ("namespace", "name") if k8s.get(key)})
        decision = getattr(record, "decision", None)  # the decision log's fields (controller/decisionlog.py)
        if isinstance(decision, dict):
            entry.update({key: value for key, value in decision.items() if key not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(verbose: bool, json_format: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # kopf logs every watch event its handlers see; the reconciler logs what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
