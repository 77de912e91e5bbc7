"""High availability: two operator processes peer through kopf; only the active one reconciles, and when
it is killed the standby takes over within the configured peering lifetime."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

from modelrollout.controller.peering import PeeringConfig
from modelrollout.devcluster import cluster
from modelrollout.devcluster.stack import operator_metric, operator_process
from tests.conftest import FIGURES
from tests.integration.conftest import get_json, running_operator, wait_for
from tests.integration.helpers import apply, current, healthy, md, owned_deployments, sample

LIFETIME_SECONDS = 6
RECONCILES = "modelrollout_reconcile_duration_seconds_count"


def peering_settings(peering: str, identity: str, http: str) -> dict[str, str]:
    return {
        "MODELROLLOUT_PEERING": peering,
        "MODELROLLOUT_PEERING_LIFETIME": str(LIFETIME_SECONDS),
        "POD_ID": identity,
        "MODELROLLOUT_HTTP_ADDRESS": http,
        "MODELROLLOUT_WEBHOOK_TOKEN": "ha-test-token",
        "MODELROLLOUT_PROMETHEUS_URL": "",
    }


def peers(control_plane, peering: str) -> dict:
    return (get_json(control_plane, "clusterkopfpeering", peering) or {}).get("status") or {}


def reconciled_body(control_plane, namespace: str) -> dict | None:
    body = md(control_plane, namespace)
    return body if current(body) else None


def webhook_status(http: str) -> int:
    request = urllib.request.Request(
        f"http://{http}/alertmanager",
        data=json.dumps({"version": "4", "alerts": []}).encode(),
        method="POST",
        headers={"Authorization": "Bearer ha-test-token", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_standby_takes_over_when_the_active_replica_is_killed(control_plane, namespace, tmp_path):
    peering = f"ha-{uuid.uuid4().hex[:8]}"
    peering_object = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(peering_object))
    try:
        first_http, second_http = (f"127.0.0.1:{cluster.free_port()}" for _ in range(2))
        kubeconfig = control_plane.kubeconfig
        first_settings = peering_settings(peering, "replica-first", first_http)
        second_settings = peering_settings(peering, "replica-second", second_http)

        with operator_process(kubeconfig, tmp_path / "first.log", first_settings) as first:
            wait_for(lambda: operator_metric(first_http, "modelrollout_leader") == 1, what="the first replica active")
            # Started later, so its derived priority is lower: it must stand by.
            with operator_process(kubeconfig, tmp_path / "second.log", second_settings):
                wait_for(
                    lambda: "replica-second" in peers(control_plane, peering), what="the second replica's keep-alive"
                )
                keep_alives = peers(control_plane, peering)
                assert keep_alives["replica-first"]["priority"] > keep_alives["replica-second"]["priority"]

                body = sample()
                assert apply(control_plane, namespace, body).returncode == 0
                wait_for(lambda: healthy(control_plane, namespace), what="Ready, reconciled by the active replica")
                assert operator_metric(first_http, RECONCILES) > 0
                assert operator_metric(second_http, RECONCILES) == 0
                assert operator_metric(second_http, "modelrollout_leader") == 0
                assert webhook_status(second_http) == 503  # Alertmanager retries and reaches the active replica
                assert webhook_status(first_http) == 200

                first.kill()
                killed = time.monotonic()
                first.wait(timeout=30)
                body["spec"]["replicas"] = 4
                assert apply(control_plane, namespace, body).returncode == 0

                # The killed replica's last keep-alive expires within LIFETIME_SECONDS; the standby re-reads the
                # peering object at that deadline (or within its poll interval).
                poll = PeeringConfig(peering, "replica-second", 0, LIFETIME_SECONDS).poll_seconds
                takeover_deadline = LIFETIME_SECONDS + poll + 10  # + slack for process scheduling on a busy machine
                wait_for(
                    lambda: operator_metric(second_http, "modelrollout_leader") == 1,
                    timeout=killed + takeover_deadline - time.monotonic(),
                    what=f"the standby to become active within {takeover_deadline:.0f}s of the kill",
                )
                took_over = time.monotonic() - killed
                reconciled = wait_for(
                    lambda: reconciled_body(control_plane, namespace), what="the spec change reconciled"
                )
                caught_up = time.monotonic() - killed
                FIGURES[f"HA takeover after SIGKILL of the active replica (peering lifetime {LIFETIME_SECONDS}s)"] = (
                    f"standby active after {took_over:.1f}s, a spec change made after the kill reconciled after "
                    f"{caught_up:.1f}s"
                )

                assert reconciled["status"]["observedGeneration"] == reconciled["metadata"]["generation"]
                assert operator_metric(second_http, RECONCILES) > 0
                assert [d["spec"]["replicas"] for d in owned_deployments(control_plane, namespace)] == [4]
                # The new active replica's kopf removes the dead peer's entry.
                wait_for(lambda: "replica-first" not in peers(control_plane, peering), what="the dead peer cleaned up")
    finally:
        control_plane.kubectl("delete", "clusterkopfpeering", peering, "--wait=false")


def test_without_a_peering_name_a_single_replica_runs_standalone(control_plane, namespace):
    with running_operator("") as operator:
        wait_for(lambda: operator_metric(operator.http, "modelrollout_leader") == 1, what="the operator serving")
        assert apply(control_plane, namespace, sample()).returncode == 0
        wait_for(lambda: healthy(control_plane, namespace), what="Ready without peering")
        assert operator_metric(operator.http, RECONCILES) > 0


def test_a_namespaced_operator_peers_in_its_own_namespace(control_plane, namespace, tmp_path):
    """As manifests/namespaced runs it: `--namespace`, a KopfPeering in that namespace."""
    peering_object = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modelrollout"}}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(peering_object))
    http = f"127.0.0.1:{cluster.free_port()}"
    settings = peering_settings("modelrollout", "replica-namespaced", http)
    with operator_process(control_plane.kubeconfig, tmp_path / "operator.log", settings, ("--namespace", namespace)):
        wait_for(lambda: operator_metric(http, "modelrollout_leader") == 1, what="the namespaced replica active")
        keep_alives = get_json(control_plane, "kopfpeering", "modelrollout", "-n", namespace)["status"]
        assert "replica-namespaced" in keep_alives
        assert apply(control_plane, namespace, sample()).returncode == 0
        wait_for(lambda: healthy(control_plane, namespace), what="Ready, reconciled by the namespaced replica")
