"""The simulator's Prometheus exporter: counters grow at the configured rates, scraped over HTTP.

Counters are integrated at each scrape (count += rate * elapsed), so changing a revision's
behaviour mid-run keeps every counter monotonic, as a real server's would be.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class Behaviour:
    """How one simulated revision answers."""

    requests_per_second: float = 50.0
    error_ratio: float = 0.0
    latency_seconds: float = 0.02
    null_ratio: float = 0.0
    missing_features_ratio: float = 0.0
    drift_score: float = 0.02


@dataclass
class _Counts:
    requests_ok: float = 0.0
    requests_error: float = 0.0
    predictions_ok: float = 0.0
    predictions_null: float = 0.0
    missing_features: float = 0.0
    last: float = 0.0


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
                    f'model_input_drift_score{{{base},feature="amount"}} {behaviour.drift_score:.4f}',
                ]
            return "\n".join(lines) + "\n"
