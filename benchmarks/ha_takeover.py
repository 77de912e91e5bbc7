"""Benchmark: how long a standby operator replica takes to take over when the active one goes away.

Prints figures; asserts nothing. Runs on loopback: the local control plane and operator replicas as
separate processes peering through a ClusterKopfPeering (no Prometheus needed).

    .venv/bin/python benchmarks/ha_takeover.py [--rounds 3] [--lifetime 15]

Each round stops the active replica, applies a spec change once it has exited, and measures, from the
signal, until
- active: the standby's `modelrollout_leader` gauge is 1;
- reconciled: the ModelDeployment's status reports the changed generation (the first reconcile that
  only the new active replica can have done).
Two ways of going away: `kill` (SIGKILL: the keep-alive must expire, so up to `lifetime` seconds) and
`terminate` (SIGTERM: kopf removes its keep-alive on exit, the standby sees it at its next read).
A fresh replica joins as the standby before the next round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import yaml

from modelrollout.controller.peering import DEFAULT_LIFETIME_SECONDS
from modelrollout.devcluster import cluster, state
from modelrollout.devcluster.stack import operator_metric, operator_process

REPO = Path(__file__).resolve().parents[1]
PEERING = "bench-ha"
NAMESPACE = "bench-ha"


def poll(check, timeout=120.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            value = check()
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError("benchmark condition not reached")


def model(replicas: int) -> dict:
    body = yaml.safe_load((REPO / "manifests/samples/fraud-scorer.yaml").read_text())
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"]["replicas"] = replicas
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lifetime", type=int, default=DEFAULT_LIFETIME_SECONDS, help="peering lifetime, seconds")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        way: {"active": [], "reconciled": []} for way in ("kill", "terminate")
    }
    running = cluster.start()
    try:
        state.install_crds(running, routers=False)
        peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}
        running.kubectl("apply", "-f", "-", input=json.dumps(peering))
        running.kubectl("create", "namespace", NAMESPACE)
        with contextlib.ExitStack() as processes:
            counter = iter(range(1000))

            def start_replica() -> tuple[object, str]:
                index = next(counter)
                http = f"127.0.0.1:{cluster.free_port()}"
                settings = {
                    "MODELROLLOUT_PEERING": PEERING,
                    "MODELROLLOUT_PEERING_LIFETIME": str(args.lifetime),
                    "POD_ID": f"replica-{index}",
                    "MODELROLLOUT_HTTP_ADDRESS": http,
                }
                log = running.workdir / "logs" / f"operator-{index}.log"
                process = processes.enter_context(operator_process(running.kubeconfig, log, settings))
                poll(lambda: f"replica-{index}" in _peers(running))
                return process, http

            active, active_http = start_replica()
            poll(lambda: operator_metric(active_http, "modelrollout_leader") == 1)
            replicas = 2
            running.kubectl("apply", "-f", "-", input=json.dumps(model(replicas)))
            poll(lambda: _reconciled(running))
            for _ in range(args.rounds):
                for way in ("kill", "terminate"):
                    standby, standby_http = start_replica()
                    poll(lambda http=standby_http: operator_metric(http, "modelrollout_leader") == 0)
                    active.send_signal(signal.SIGKILL if way == "kill" else signal.SIGTERM)
                    started = time.monotonic()
                    active.wait(timeout=60)  # from here on only the standby can reconcile the change
                    replicas = 5 - replicas  # 2, 3, 2, ...: a new generation each round
                    running.kubectl("apply", "-f", "-", input=json.dumps(model(replicas)))
                    poll(lambda http=standby_http: operator_metric(http, "modelrollout_leader") == 1, interval=0.02)
                    results[way]["active"].append(time.monotonic() - started)
                    poll(lambda: _reconciled(running), interval=0.02)
                    results[way]["reconciled"].append(time.monotonic() - started)
                    active, active_http = standby, standby_http
    finally:
        running.stop()
    print(
        f"HA takeover, peering lifetime {args.lifetime}s, {args.rounds} rounds each (machine: {os.cpu_count()} cores)"
    )
    for way, figures in results.items():
        for what, values in figures.items():
            print(
                f"  {way:<9} to {what:<10} median {statistics.median(values):5.2f}s  max {max(values):5.2f}s  "
                f"all {', '.join(f'{v:.2f}' for v in values)}"
            )
    return 0


def _peers(running) -> dict:
    result = running.kubectl("get", "clusterkopfpeering", PEERING, "-o", "json")
    return json.loads(result.stdout).get("status") or {}


def _reconciled(running) -> bool:
    result = running.kubectl("get", "md", "fraud-scorer", "-n", NAMESPACE, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    body = json.loads(result.stdout)
    return body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]


if __name__ == "__main__":
    sys.exit(main())
