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
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from modelrollout import lifetime
from modelrollout.devcluster import cluster, state
from modelrollout.devcluster import prometheus as prometheus_server
from modelrollout.simulator.process import SimulatorProcess


def error_rate_alert(name: str, threshold: float, window: str, severity: str = "page", min_rps: float = 0.5) -> dict:
    """An alerting rule on a revision's share of 5xx answers (the model metric conventions).

    A revision with (almost) no traffic is left out: a ratio over a handful of requests is noise.
    """
    requests = f"sum by (namespace, revision) (rate(model_requests_total[{window}]))"
    expr = (
        f'sum by (namespace, revision) (rate(model_requests_total{{code=~"5.."}}[{window}]))'
        f" / {requests} > {threshold} and {requests} > {min_rps}"
    )
    return {"alert": name, "expr": expr, "labels": {"severity": severity}}


@dataclass
class Stack:
    cluster: cluster.Cluster
    simulator: SimulatorProcess
    prometheus: prometheus_server.Prometheus
    http: str  # the operator's /metrics and /alertmanager address
    webhook_token: str
    operator: subprocess.Popen


@contextlib.contextmanager
def local_stack(
    rules: list[dict], nodes: int = cluster.DEFAULT_NODES, operator_settings: dict[str, str] | None = None
) -> Iterator[Stack]:
    """Start everything (CRDs installed, Prometheus evaluating `rules`, `nodes` kwok nodes), yield it, stop it all.

    `operator_settings` adds MODELROLLOUT_* variables to the operator's environment.
    """
    running = cluster.start(nodes=nodes)
    simulator = prometheus = None
    try:
        simulator = SimulatorProcess()
        prometheus = prometheus_server.start([simulator.address], [{"name": "models", "rules": rules}])
        state.install_crds(running)
        http = f"127.0.0.1:{cluster.free_port()}"
        token = secrets.token_hex(16)
        settings = {
            "MODELROLLOUT_PROMETHEUS_URL": prometheus.url,
            "MODELROLLOUT_HTTP_ADDRESS": http,
            "MODELROLLOUT_WEBHOOK_TOKEN": token,
            **(operator_settings or {}),
        }
        with operator_process(running.kubeconfig, running.workdir / "logs" / "operator.log", settings) as process:
            yield Stack(running, simulator, prometheus, http, token, process)
    finally:
        if prometheus is not None:
            prometheus.stop()
        if simulator is not None:
            simulator.stop()
        running.stop()


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path, log_path: Path, settings: dict[str, str], args: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen]:
    """`modelrollout run [args]` as its own process, with `settings` (MODELROLLOUT_* variables) in its
    environment and its output in `log_path`; on exit it is terminated (killed after 30s) unless it ended."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), **settings)
    with log_path.open("w") as log:
        # Its own session too: a terminal's Ctrl-C reaches the caller, which terminates it below.
        process = lifetime.popen(
            [sys.executable, "-m", "modelrollout.cli", "run", *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            lifetime.terminate(process, grace=30)


def operator_metric(http: str, name: str) -> float | None:
    """One unlabelled sample from an operator's /metrics (a counter's `_total` or a histogram's `_count`
    included); None when the operator does not export it."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    return None
