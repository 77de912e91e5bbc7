"""The MLServer runtime every demo model server runs: it is loaded by MLServer, not by modelrollout.

The harness copies this file and `behaviour.py` into each server's model folder and names
`runtime.BehaviourModel` as the model's `implementation`; MLServer imports it there, in its own venv,
inside its parallel worker. So it imports nothing from modelrollout: `behaviour` is its sibling file.

What it does per request: decodes the first input as rows of the data set's 30 features, applies the
version's behaviour (a 500 for rows that fail, an asynchronous delay), answers the positive class's score
per row (output `score`), and records custom metrics the way an MLServer user would: a histogram of
prediction scores and one per key input feature, registered in `load()` and observed with
`mlserver.log()` in `predict()`. The response's `model_version` is the version the pod declared.

The histograms are created with fixed buckets in MLServer's metrics registry before `mlserver.register`
is called (which then returns them): `register` alone would give Prometheus' default latency buckets,
useless for a score in [0, 1] or an area in the hundreds. Custom metrics need MLServer's parallel worker
(with `parallel_workers: 0` they are silently dropped), so the server settings keep the default.
"""

from __future__ import annotations

import asyncio

import behaviour  # the sibling file copied beside this one (see the module docstring)
import joblib
import mlserver
import numpy as np
from mlserver.errors import MLServerError
from mlserver.metrics import REGISTRY
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from prometheus_client import Histogram

LABELS = ["model_name", "model_version"]  # the labels mlserver.log() fills from the model's context


def _histogram(name: str, description: str, buckets: tuple[float, ...]) -> None:
    if name not in REGISTRY:
        Histogram(name, description, labelnames=LABELS, buckets=buckets, registry=REGISTRY)
    mlserver.register(name, description)


class BehaviourModel(mlserver.MLModel):
    """A scikit-learn classifier served with one demo version's behaviour."""

    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self._behaviour = behaviour.Behaviour.from_settings(extra)
        self._feature_names = list(extra["feature_names"])
        self._model = joblib.load(self.settings.parameters.uri)
        self._logged = {
            behaviour.feature_metric(name): self._feature_names.index(name) for name in behaviour.FEATURE_BUCKETS
        }
        _histogram(behaviour.SCORE_METRIC, "Positive-class score of each prediction", behaviour.SCORE_BUCKETS)
        for name, buckets in behaviour.FEATURE_BUCKETS.items():
            _histogram(behaviour.feature_metric(name), f"Input feature {name!r} of each row", buckets)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = self._rows(payload)
        if self._behaviour.latency_seconds > 0:
            await asyncio.sleep(self._behaviour.latency_seconds)
        for row in rows:
            for metric, index in self._logged.items():
                mlserver.log(**{metric: float(row[index])})
        failing = sum(self._behaviour.fails(row, self._feature_names) for row in rows)
        if failing:
            raise MLServerError(
                f"{self._behaviour.name}: {failing} of {len(rows)} rows have "
                f"{self._behaviour.error_feature} > {self._behaviour.error_above}",
                status_code=500,
            )
        scores = self._model.predict_proba(rows)[:, 1]
        for score in scores:
            mlserver.log(**{behaviour.SCORE_METRIC: float(score)})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[ResponseOutput(name="score", shape=[len(scores)], datatype="FP64", data=scores.tolist())],
        )

    def _rows(self, payload: InferenceRequest) -> np.ndarray:
        if not payload.inputs:
            raise MLServerError("the request has no inputs", status_code=400)
        tensor = payload.inputs[0]
        data = tensor.data.root if hasattr(tensor.data, "root") else tensor.data
        try:
            rows = np.asarray(data, dtype=float).reshape(-1, len(self._feature_names))
        except ValueError as error:
            raise MLServerError(
                f"input {tensor.name!r} must hold rows of {len(self._feature_names)} features "
                f"({', '.join(self._feature_names[:3])}, ...): {error}",
                status_code=400,
            ) from error
        return rows
