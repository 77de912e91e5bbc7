"""The whole local stack as one context manager: control plane, traffic simulator, Prometheus, operator.

Used by the demo and the benchmarks, so bring-up and tear-down are written once: everything listens on
127.0.0.1, the operator runs as its own process (its log in the cluster's `logs/operator.log`), and
everything is stopped on exit, in reverse order, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from modelrollout.devcluster import cluster, state
from modelrollout.devcluster import prometheus as prometheus_server
from modelrollout.simulator.process import SimulatorProcess


def error_rate_alert(name: str, threshold: float, window: str, severity: str = "page") -> dict:
    """An alerting rule on a revision's share of 5xx answers (the model metric conventions)."""
    expr = (
        f'sum by (namespace, revision) (rate(model_requests_total{{code=~"5.."}}[{window}]))'
        f" / sum by (namespace, revision) (rate(model_requests_total[{window}])) > {threshold}"
    )
    return {"alert": name, "expr": expr, "labels": {"severity": severity}}


@dataclass
class Stack:
    cluster: cluster.Cluster
    simulator: SimulatorProcess
    prometheus: prometheus_server.Prometheus
    http: str  # the operator's /metrics and /alertmanager address
    webhook_token: str


@contextlib.contextmanager
def local_stack(rules: list[dict]) -> Iterator[Stack]:
    """Start everything (CRDs installed, Prometheus evaluating `rules`), yield it, stop it all."""
    running = cluster.start()
    simulator = prometheus = operator = log = None
    try:
        simulator = SimulatorProcess()
        prometheus = prometheus_server.start([simulator.address], [{"name": "models", "rules": rules}])
        state.install_crds(running)
        http = f"127.0.0.1:{cluster.free_port()}"
        token = secrets.token_hex(16)
        env = dict(
            os.environ,
            KUBECONFIG=str(running.kubeconfig),
            MODELROLLOUT_PROMETHEUS_URL=prometheus.url,
            MODELROLLOUT_HTTP_ADDRESS=http,
            MODELROLLOUT_WEBHOOK_TOKEN=token,
        )
        log = (running.workdir / "logs" / "operator.log").open("w")
        operator = subprocess.Popen(
            [sys.executable, "-m", "modelrollout.cli", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        yield Stack(running, simulator, prometheus, http, token)
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait(timeout=30)
        if log is not None:
            log.close()
        if prometheus is not None:
            prometheus.stop()
        if simulator is not None:
            simulator.stop()
        running.stop()
