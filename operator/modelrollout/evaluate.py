"""A golden-set evaluation: send a labelled data set to a model's V2 inference endpoint, measure accuracy.

Runs inside the Job of the built-in `model-golden-set-evaluation` analysis template (`python -m
modelrollout.evaluate`, standard library only, so any image with Python and this package runs it):

- the data set is JSON `{"rows": [[feature, ...], ...], "targets": [0 or 1, ...]}` read from a URL or
  a file (e.g. a ConfigMap mounted in the Job);
- each row is one request, `{"inputs": [{"name": "rows", "shape": [1, n], "datatype": "FP64",
  "data": row}]}`; the first output's first value is the positive-class score, the prediction is
  `score >= threshold`;
- a row whose request fails (an HTTP error, no answer, an answer without a score) counts as wrong: a
  model that cannot answer a golden row has not passed it;
- the accuracy alone is written to the termination message (`TERMINATION_MESSAGE_PATH`, default
  `/dev/termination-log`), where the Job provider reads it for the metric's condition, and a summary to
  stdout. A data set that cannot be read exits 2 (the Job fails, so the measurement fails).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TERMINATION_LOG = "/dev/termination-log"


@dataclass(frozen=True)
class Outcome:
    rows: int
    correct: int
    failed: int  # requests that got no usable answer

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0


def load(source: str, timeout: float) -> tuple[list[list[float]], list[int]]:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=timeout) as answer:
            data = json.loads(answer.read())
    else:
        data = json.loads(Path(source).read_text())
    rows, targets = data["rows"], data["targets"]
    if len(rows) != len(targets) or not rows:
        raise ValueError(f"the data set holds {len(rows)} rows and {len(targets)} targets; it needs as many of each")
    return [[float(value) for value in row] for row in rows], [int(target) for target in targets]


def score(url: str, row: Sequence[float], timeout: float) -> float | None:
    """The positive-class score for one row, or None when the model gave no usable answer."""
    body = {"inputs": [{"name": "rows", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            outputs = json.loads(answer.read()).get("outputs") or []
        return float(outputs[0]["data"][0])
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def evaluate(
    url: str, rows: Sequence[Sequence[float]], targets: Sequence[int], threshold: float, timeout: float
) -> Outcome:
    correct = failed = 0
    for row, target in zip(rows, targets, strict=True):
        value = score(url, row, timeout)
        if value is None:
            failed += 1
        elif int(value >= threshold) == target:
            correct += 1
    return Outcome(len(rows), correct, failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelrollout.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model-url", required=True, help="the model's /v2/models/<name>/infer URL")
    parser.add_argument("--dataset", required=True, help="the labelled data set: an http(s) URL or a file")
    parser.add_argument("--threshold", type=float, default=0.5, help="score at or above which the prediction is 1")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        rows, targets = load(args.dataset, args.timeout)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"cannot read the data set {args.dataset}: {error}", file=sys.stderr)
        return 2
    outcome = evaluate(args.model_url, rows, targets, args.threshold, args.timeout)
    Path(os.environ.get("TERMINATION_MESSAGE_PATH", TERMINATION_LOG)).write_text(f"{outcome.accuracy:.6f}\n")
    print(
        f"accuracy {outcome.accuracy:.4f} on {outcome.rows} rows of {args.dataset} "
        f"({outcome.correct} correct, {outcome.failed} without an answer) from {args.model_url}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
