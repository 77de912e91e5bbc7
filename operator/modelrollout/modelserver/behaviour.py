"""How each demo model version behaves, and the histogram buckets every version exports.

Standard library only: this file is imported by the harness and the tests, and also copied beside the
MLServer runtime into every server's model folder, where it runs in MLServer's own venv.

Behaviours (the pod template's env MODEL_BEHAVIOUR):
- `good`: the sound classifier (artifact `good`).
- `shifted`: a heavily regularised model (artifact `shifted`): still accurate, but its scores are far
  less confident, so the prediction-score histogram moves (PSI about 0.8 against `good` on the data set).
- `hotfix-errors`: a retrained model (artifact `hotfix`) that answers 500 for every request holding a row
  whose `mean radius` exceeds 15.0: 30% of the data set's rows, so a steady 5xx ratio under uniform load.
- `hotfix-slow`: the same retrained model, answering every request `latency_seconds` later (default 0.3 s;
  the wait is asynchronous, so the server's throughput is unchanged).

Buckets are defined here, in the serving code, never in a model artifact: every revision must export the
same buckets for distances between revisions to be computable (README, metric conventions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GOOD = "good"
SHIFTED = "shifted"
HOTFIX_ERRORS = "hotfix-errors"
HOTFIX_SLOW = "hotfix-slow"
BEHAVIOURS = (GOOD, SHIFTED, HOTFIX_ERRORS, HOTFIX_SLOW)
ARTIFACTS = ("good", "shifted", "hotfix")  # one trained model per demo version (see training.py)

# The data set's columns (scikit-learn's breast cancer data, in its order) the errors and histograms use.
ERROR_FEATURE = "mean radius"
ERROR_ABOVE = 15.0
DEFAULT_LATENCY_SECONDS = 0.3

SCORE_METRIC = "model_prediction_score"
FEATURE_METRIC_PREFIX = "model_feature_"  # + the feature's name with underscores, e.g. model_feature_mean_radius
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Roughly the data set's deciles, rounded, so each bucket holds a useful share of live inputs.
FEATURE_BUCKETS: dict[str, tuple[float, ...]] = {
    "mean radius": (8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 17.0, 20.0, 25.0),
    "mean texture": (12.0, 14.0, 16.0, 17.0, 18.0, 19.0, 20.0, 22.0, 25.0, 30.0),
    "mean smoothness": (0.07, 0.08, 0.085, 0.09, 0.095, 0.1, 0.105, 0.11, 0.12, 0.14),
}


def feature_metric(feature: str) -> str:
    """The custom histogram of one input feature, e.g. `model_feature_mean_radius`."""
    return FEATURE_METRIC_PREFIX + feature.replace(" ", "_")


@dataclass(frozen=True)
class Behaviour:
    """What one server does besides predicting: which trained model, which inputs fail, how slow."""

    name: str
    artifact: str
    error_feature: str | None = None
    error_above: float = ERROR_ABOVE
    latency_seconds: float = 0.0

    def fails(self, row: Sequence[float], feature_names: Sequence[str]) -> bool:
        """A request holding this row is answered with a 500 (deterministic: same row, same answer)."""
        if self.error_feature is None:
            return False
        return float(row[feature_names.index(self.error_feature)]) > self.error_above

    def to_settings(self) -> dict:
        """The runtime's `parameters.extra` (JSON) for this behaviour."""
        return {
            "behaviour": self.name,
            "artifact": self.artifact,
            "error_feature": self.error_feature,
            "error_above": self.error_above,
            "latency_seconds": self.latency_seconds,
        }

    @classmethod
    def from_settings(cls, extra: dict) -> Behaviour:
        return cls(
            name=extra["behaviour"],
            artifact=extra["artifact"],
            error_feature=extra.get("error_feature"),
            error_above=float(extra.get("error_above", ERROR_ABOVE)),
            latency_seconds=float(extra.get("latency_seconds", 0.0)),
        )


def parse(name: str, latency_seconds: float | None = None) -> Behaviour:
    """The behaviour a pod asks for by name; `latency_seconds` overrides hotfix-slow's delay."""
    if name == GOOD:
        return Behaviour(GOOD, "good")
    if name == SHIFTED:
        return Behaviour(SHIFTED, "shifted")
    if name == HOTFIX_ERRORS:
        return Behaviour(HOTFIX_ERRORS, "hotfix", error_feature=ERROR_FEATURE)
    if name == HOTFIX_SLOW:
        delay = DEFAULT_LATENCY_SECONDS if latency_seconds is None else latency_seconds
        if delay < 0:
            raise ValueError(f"MODEL_LATENCY_SECONDS must be >= 0, got {delay}")
        return Behaviour(HOTFIX_SLOW, "hotfix", latency_seconds=delay)
    raise ValueError(f"unknown MODEL_BEHAVIOUR {name!r}: use one of {', '.join(BEHAVIOURS)}")
