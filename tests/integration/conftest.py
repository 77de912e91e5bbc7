"""Integration fixtures: a real control plane per session, the operator in-process per module.

The control plane is built from upstream Go modules on first use (cached under
~/.cache/modelrollout) and started on loopback; every test gets its own namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from modelrollout.devcluster import build, cluster, state
from modelrollout.devcluster import prometheus as prometheus_server
from modelrollout.devcluster.stack import error_rate_alert
from modelrollout.simulator.process import SimulatorProcess
from tests.conftest import FIGURES

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory) -> Iterator[cluster.Cluster]:
    started = time.monotonic()
    binaries = build.ensure_binaries()
    built = time.monotonic()
    FIGURES["control plane binaries ready (cold build if not cached)"] = f"{built - started:.1f}s"
    running = cluster.start(workdir=tmp_path_factory.mktemp("control-plane"), binaries=binaries)
    state.install_crds(running)
    FIGURES["control plane start (etcd, apiserver, controllers, kwok, nodes Ready, CRDs)"] = (
        f"{time.monotonic() - built:.1f}s"
    )
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(running.kubeconfig)
    try:
        yield running
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        running.stop()


@dataclass
class Monitoring:
    simulator: SimulatorProcess
    prometheus: prometheus_server.Prometheus


@pytest.fixture(scope="session")
def monitoring() -> Iterator[Monitoring]:
    """The traffic simulator (a stand-in for model servers) scraped by a real Prometheus every second."""
    simulator = SimulatorProcess()
    rules = [{"name": "models", "rules": [error_rate_alert("ModelErrorRateHigh", 0.2, "5s")]}]
    server = prometheus_server.start([simulator.address], rules)
    try:
        yield Monitoring(simulator, server)
    finally:
        server.stop()
        simulator.stop()


@dataclass
class Operator:
    runner: KopfRunner
    http: str
    webhook_token: str


@contextlib.contextmanager
def running_operator(
    prometheus_url: str, kubeconfig: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Operator]:
    """The operator, run in this process by kopf's own test runner, serving HTTP on loopback only.

    `kubeconfig` runs it under another identity (e.g. the shipped ServiceAccount's token); `env` adds
    settings (e.g. MODELROLLOUT_PEERING with POD_ID, the identity kopf then uses in the peering object).
    """
    http = f"127.0.0.1:{cluster.free_port()}"
    token = secrets.token_hex(16)
    settings = {
        "MODELROLLOUT_HTTP_ADDRESS": http,
        "MODELROLLOUT_WEBHOOK_TOKEN": token,
        "MODELROLLOUT_PROMETHEUS_URL": prometheus_url,
        "KUBECONFIG": kubeconfig or os.environ.get("KUBECONFIG", ""),
        **(env or {}),
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    args = ["run", "--standalone", "--all-namespaces", "-m", "modelrollout.handlers"]
    try:
        with KopfRunner(args, timeout=60) as runner:
            yield Operator(runner, http, token)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def operator(control_plane, monitoring) -> Iterator[Operator]:
    with running_operator(monitoring.prometheus.url) as running:
        yield running


@pytest.fixture
def namespace(control_plane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def get_json(control_plane: cluster.Cluster, *args: str) -> dict | None:
    result = control_plane.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def wait_for(check, timeout: float = 90.0, what: str = "condition"):
    return cluster.wait_until(check, timeout, what, interval=0.25)


@pytest.fixture(scope="session")
def private_network() -> None:
    """Real servers listen on kwok's pod IPs, which are local only inside `modelrollout private-network`.

    Elsewhere these tests are skipped with how to run them; in CI (CI set) they fail instead, so a run
    that lost its private network can never pass by skipping the real data plane.
    """
    from modelrollout.devcluster.netns import pod_ips_bindable

    if not pod_ips_bindable():
        message = (
            "pod IPs are not bindable here: run the tests inside `modelrollout private-network -- ...` (make test)"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def model_servers(control_plane, private_network, tmp_path_factory):
    """The model-server harness: a real MLServer per pod gated by modelrollout.io/model-server-ready.

    Pod IPs are bindable only inside the private network (`modelrollout private-network -- pytest ...`),
    and MLServer is installed and the models trained before any test needs them (PyPI is out of reach
    inside that network, so run `python -m modelrollout.modelserver.harness --prepare-only` first).
    """
    from modelrollout.modelserver.harness import Harness

    harness = Harness(control_plane.kubeconfig, workdir=tmp_path_factory.mktemp("model-servers"))
    started = time.monotonic()
    harness.prepare()
    FIGURES["MLServer installed and demo models trained (cold if not cached)"] = f"{time.monotonic() - started:.1f}s"
    with harness:
        yield harness


@pytest.fixture(scope="session")
def job_runner(control_plane, private_network):
    """The job runner: each Job's pod runs as a real local process (kwok runs nothing), its result
    written back as a kubelet would."""
    from modelrollout.devcluster.jobrunner import JobRunner

    with JobRunner(control_plane.kubeconfig) as runner:
        yield runner


@pytest.fixture(scope="session")
def model_prometheus(control_plane) -> Iterator[prometheus_server.Prometheus]:
    """A real Prometheus discovering the model-server pods through the apiserver (kubernetes_sd_configs)."""
    started = time.monotonic()
    server = prometheus_server.start([], pods_of=control_plane)
    FIGURES["Prometheus with Kubernetes discovery ready (cold build if not cached)"] = (
        f"{time.monotonic() - started:.1f}s"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def traefik(control_plane, private_network, tmp_path_factory):
    """A real Traefik (built once from the module proxy, cached) routing for this control plane's Gateway.

    Its binary and the Traefik module's CRDs are fetched before entering the private network
    (`modelrollout dev-cluster build`); the Gateway is Programmed when this yields.
    """
    from modelrollout.devcluster import traefik as traefik_dataplane

    started = time.monotonic()
    binary = traefik_dataplane.ensure_traefik()
    built = time.monotonic()
    FIGURES["Traefik binary ready (cold build if not cached)"] = f"{built - started:.1f}s"
    running = traefik_dataplane.start(control_plane, binary=binary, workdir=tmp_path_factory.mktemp("traefik"))
    FIGURES["Traefik start (ping, Gateway Programmed)"] = f"{time.monotonic() - built:.1f}s"
    try:
        yield running
    finally:
        running.stop()
