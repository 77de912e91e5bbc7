"""The simulator's Prometheus exporter: counters grow at the configured rates, scraped over HTTP.

Counters are integrated at each scrape (count += rate * elapsed), so changing a revision's
behaviour mid-run keeps every counter monotonic, as a real server's would be. Histogram buckets are
counters too: each bin grows by its share of the new observations (the exact expected counts of a
normal distribution, no sampling noise), so a behaviour change shows as a distribution shift in
`increase()` windows that start after it.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FEATURE = "amount"
FEATURE_BUCKETS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)


@dataclass(frozen=True)
class Behaviour:
    """How one simulated revision answers."""

    requests_per_second: float = 50.0
    error_ratio: float = 0.0
    latency_seconds: float = 0.02
    null_ratio: float = 0.0
    missing_features_ratio: float = 0.0
    drift_score: float = 0.02
    # Prediction scores (in [0, 1]) and the input feature `amount` are normally distributed.
    score_mean: float = 0.3
    score_stddev: float = 0.1
    feature_mean: float = 50.0
    feature_stddev: float = 20.0


def normal_shares(bounds: tuple[float, ...], mean: float, stddev: float) -> tuple[float, ...]:
    """Share of a normal distribution in each bin (-inf, b0], (b0, b1], ..., (b_last, +inf)."""
    if stddev <= 0:
        cumulative = [1.0 if mean <= bound else 0.0 for bound in bounds]
    else:
        cumulative = [0.5 * (1 + math.erf((bound - mean) / (stddev * math.sqrt(2)))) for bound in bounds]
    edges = [0.0, *cumulative, 1.0]
    return tuple(high - low for low, high in itertools.pairwise(edges))


def score_shares(behaviour: Behaviour) -> tuple[float, ...]:
    """Per SCORE_BUCKETS bin; scores are clipped to [0, 1], so nothing lands above the last bound."""
    shares = normal_shares(SCORE_BUCKETS, behaviour.score_mean, behaviour.score_stddev)
    return (*shares[:-2], shares[-2] + shares[-1])


@dataclass
class _Counts:
    requests_ok: float = 0.0
    requests_error: float = 0.0
    predictions_ok: float = 0.0
    predictions_null: float = 0.0
    missing_features: float = 0.0
    score_sum: float = 0.0
    score_bins: list[float] = field(default_factory=lambda: [0.0] * len(SCORE_BUCKETS))
    feature_sum: float = 0.0
    feature_bins: list[float] = field(default_factory=lambda: [0.0] * (len(FEATURE_BUCKETS) + 1))
    last: float = 0.0


def _histogram_lines(
    name: str, labels: str, bounds: tuple[float, ...], bins: list[float], total_sum: float
) -> list[str]:
    """Cumulative `_bucket` series (+Inf last), `_count` and `_sum`, as Prometheus' text format has them.

    `bins` has one count per bound, and may have one more: the observations above the last bound.
    """
    lines, cumulative = [], 0.0
    for bound, count in zip(bounds, bins, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative:.3f}')
    total = sum(bins)
    return [
        *lines,
        f'{name}_bucket{{{labels},le="+Inf"}} {total:.3f}',
        f"{name}_count{{{labels}}} {total:.3f}",
        f"{name}_sum{{{labels}}} {total_sum:.3f}",
    ]


class TrafficSimulator:
    """Holds revisions' behaviours and serves /metrics on loopback."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._behaviours: dict[tuple[str, str, str], Behaviour] = {}
        self._counts: dict[tuple[str, str, str], _Counts] = {}
        self._clock = clock
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                self._reply(200, simulator.render(), "text/plain; version=0.0.4")

            def do_PUT(self) -> None:
                """PUT /revisions/<namespace>/<revision> with a JSON Behaviour sets how a revision answers."""
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "revisions":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    behaviour = Behaviour(**json.loads(self.rfile.read(length) or b"{}"))
                except (TypeError, ValueError) as error:
                    self._reply(400, f"bad behaviour: {error}\n", "text/plain")
                    return
                simulator.set(parts[1], parts[2], behaviour)
                self._reply(200, "ok\n", "text/plain")

            def do_DELETE(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "revisions":
                    self.send_error(404)
                    return
                simulator.remove(parts[1], parts[2])
                self._reply(200, "ok\n", "text/plain")

            def _reply(self, code: int, text: str, content_type: str) -> None:
                body = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="traffic-simulator", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> TrafficSimulator:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serving loop, forever if none was started
            self._server.shutdown()
        self._server.server_close()

    def set(self, namespace: str, revision: str, behaviour: Behaviour, model: str = "") -> None:
        key = (namespace, revision, model)
        with self._lock:
            self._advance()
            self._behaviours[key] = behaviour
            self._counts.setdefault(key, _Counts(last=self._clock()))

    def remove(self, namespace: str, revision: str, model: str = "") -> None:
        with self._lock:
            self._behaviours.pop((namespace, revision, model), None)
            self._counts.pop((namespace, revision, model), None)

    def _advance(self) -> None:
        now = self._clock()
        for key, behaviour in self._behaviours.items():
            counts = self._counts[key]
            requests = behaviour.requests_per_second * max(0.0, now - counts.last)
            errors = requests * behaviour.error_ratio
            counts.requests_error += errors
            counts.requests_ok += requests - errors
            predictions = requests - errors
            counts.predictions_null += predictions * behaviour.null_ratio
            counts.predictions_ok += predictions * (1 - behaviour.null_ratio)
            counts.missing_features += requests * behaviour.missing_features_ratio
            scored = predictions * (1 - behaviour.null_ratio)
            for index, share in enumerate(score_shares(behaviour)):
                counts.score_bins[index] += scored * share
            counts.score_sum += scored * behaviour.score_mean
            for index, share in enumerate(
                normal_shares(FEATURE_BUCKETS, behaviour.feature_mean, behaviour.feature_stddev)
            ):
                counts.feature_bins[index] += requests * share
            counts.feature_sum += requests * behaviour.feature_mean
            counts.last = now

    def render(self) -> str:
        with self._lock:
            self._advance()
            lines = [
                "# TYPE model_requests_total counter",
                "# TYPE model_request_duration_seconds histogram",
                "# TYPE model_predictions_total counter",
                "# TYPE model_requests_missing_features_total counter",
                "# TYPE model_input_drift_score gauge",
                "# TYPE model_prediction_score histogram",
                "# TYPE model_input_feature_value histogram",
            ]
            for (namespace, revision, model), behaviour in sorted(self._behaviours.items()):
                counts = self._counts[(namespace, revision, model)]
                base = f'namespace="{namespace}",revision="{revision}"' + (f',model="{model}"' if model else "")
                total = counts.requests_ok + counts.requests_error
                lines += [
                    f'model_requests_total{{{base},code="200"}} {counts.requests_ok:.3f}',
                    f'model_requests_total{{{base},code="500"}} {counts.requests_error:.3f}',
                ]
                for bound in LATENCY_BUCKETS:
                    inside = total if behaviour.latency_seconds <= bound else 0.0
                    lines.append(f'model_request_duration_seconds_bucket{{{base},le="{bound}"}} {inside:.3f}')
                lines += [
                    f'model_request_duration_seconds_bucket{{{base},le="+Inf"}} {total:.3f}',
                    f"model_request_duration_seconds_count{{{base}}} {total:.3f}",
                    f"model_request_duration_seconds_sum{{{base}}} {total * behaviour.latency_seconds:.3f}",
                    f'model_predictions_total{{{base},outcome="ok"}} {counts.predictions_ok:.3f}',
                    f'model_predictions_total{{{base},outcome="null"}} {counts.predictions_null:.3f}',
                    f"model_requests_missing_features_total{{{base}}} {counts.missing_features:.3f}",
                    f'model_input_drift_score{{{base},feature="{FEATURE}"}} {behaviour.drift_score:.4f}',
                ]
                lines += _histogram_lines(
                    "model_prediction_score", base, SCORE_BUCKETS, counts.score_bins, counts.score_sum
                )
                lines += _histogram_lines(
                    "model_input_feature_value",
                    f'{base},feature="{FEATURE}"',
                    FEATURE_BUCKETS,
                    counts.feature_bins,
                    counts.feature_sum,
                )
            return "\n".join(lines) + "\n"
