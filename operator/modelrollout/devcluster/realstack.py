"""The local stack with real parts, as one context manager: control plane, Traefik, model servers,
Prometheus with pod discovery, and the operator.

Mirrors `stack.local_stack` (which drives the traffic simulator instead) so the demo brings everything up
and down in one place: Traefik routes by the objects the operator writes, the harness runs one real
MLServer per gated pod on the pod's IP, Prometheus scrapes Traefik and discovers the model-server pods
through the apiserver, and the operator runs as its own process. Pod IPs are real only inside the
private network (`netns`), so this runs there; `prepare()` is the part that may download and runs before.

Every process is stopped on exit, in reverse order, whatever happened (the harness stops its MLServers;
any it could not are ended by their working directory, which only this stack's servers have). While it
runs, `failed()` names a component that died and `log_tail()` shows its own log, so a failure reads as
the component's words rather than a Python traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelrollout import lifetime
from modelrollout.devcluster import cluster, routercrds, state
from modelrollout.devcluster import prometheus as prometheus_server
from modelrollout.devcluster import traefik as traefik_dataplane
from modelrollout.devcluster.build import ensure_binaries
from modelrollout.devcluster.stack import operator_process
from modelrollout.modelserver import models

HARNESS_MODULE = "modelrollout.modelserver.harness"
COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def prepare() -> None:
    """Build or install what the real stack runs (cached after the first run). It may download, so it runs
    outside the private network; inside, everything must already be cached."""
    ensure_binaries()
    traefik_dataplane.ensure_traefik()
    prometheus_server.kubernetes_sd_binary()
    models.ensure_models()  # installs MLServer first when missing
    routercrds.router_crds()


@dataclass
class HarnessProcess:
    """`python -m modelrollout.modelserver.harness` in its own session, its log in `log`."""

    popen: subprocess.Popen
    log: Path
    workdir: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 90.0) -> None:
        """SIGTERM: the harness stops every MLServer and marks their pods not ready. Servers left behind
        (the harness killed, or too slow) are ended by their working directory, under `workdir`."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=30)
        for pid in _processes_under(self.workdir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def _processes_under(directory: Path) -> list[int]:
    """Processes whose working directory is inside `directory` (each MLServer runs in its own folder)."""
    found = []
    root = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
            if cwd == root or cwd.startswith(root + os.sep):
                found.append(int(entry.name))
    return found


def start_harness(running: cluster.Cluster, namespace: str, workdir: Path) -> HarnessProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    log = running.workdir / "logs" / "model-servers.log"
    command = [sys.executable, "-m", HARNESS_MODULE, "--kubeconfig", str(running.kubeconfig)]
    command += ["--namespace", namespace, "--workdir", str(workdir)]
    with log.open("ab") as out:
        popen = lifetime.popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return HarnessProcess(popen, log, workdir)


@dataclass
class RealStack:
    cluster: cluster.Cluster
    traefik: traefik_dataplane.Traefik
    harness: HarnessProcess
    prometheus: prometheus_server.Prometheus
    http: str  # the operator's /metrics and /alertmanager address
    webhook_token: str
    operator: subprocess.Popen
    operator_log: Path

    def components(self) -> dict[str, tuple[subprocess.Popen, Path]]:
        """Every long-running process of the stack, by name, with its log."""
        found = {p.name: (p.popen, p.log) for p in self.cluster.processes}
        found["traefik"] = (self.traefik.process.popen, self.traefik.log)
        found["model-server harness"] = (self.harness.popen, self.harness.log)
        found["prometheus"] = (self.prometheus.process.popen, self.prometheus.process.log)
        found["operator"] = (self.operator, self.operator_log)
        return found

    def failed(self) -> tuple[str, str, Path] | None:
        """A component that exited: its name, how it ended, its log."""
        for name, (popen, log) in self.components().items():
            code = popen.poll()
            if code is not None:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                return name, how, log
        return None


def log_tail(path: Path, lines: int = 25) -> str:
    """The last `lines` of a log, without terminal colour codes (Traefik writes them even to a file)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(COLOURS.sub("", line) for line in text.splitlines()[-lines:])


@contextlib.contextmanager
def real_stack(rules: list[dict], namespace: str, nodes: int = cluster.DEFAULT_NODES) -> Iterator[RealStack]:
    """Start everything for ModelDeployments in `namespace` (created here), Prometheus evaluating `rules`;
    yield it; stop it all. Must run where pod IPs are bindable (inside `modelrollout private-network`)."""
    running = cluster.start(nodes=nodes)
    traefik = harness = prometheus = None
    try:
        state.install_crds(running)
        running.kubectl_retrying("create", "namespace", namespace)
        traefik = traefik_dataplane.start(running, workdir=running.workdir / "traefik")
        harness = start_harness(running, namespace, running.workdir / "model-servers")
        prometheus = prometheus_server.start(
            [traefik.metrics_address], [{"name": "models", "rules": rules}], pods_of=running, namespaces=[namespace]
        )
        http = f"127.0.0.1:{cluster.free_port()}"
        token = secrets.token_hex(16)
        settings = {
            "MODELROLLOUT_PROMETHEUS_URL": prometheus.url,
            "MODELROLLOUT_HTTP_ADDRESS": http,
            "MODELROLLOUT_WEBHOOK_TOKEN": token,
        }
        log = running.workdir / "logs" / "operator.log"
        with operator_process(running.kubeconfig, log, settings) as process:
            yield RealStack(running, traefik, harness, prometheus, http, token, process, log)
    finally:
        with _uninterruptible():
            parts = (prometheus, harness, traefik, running)
            _stop_all([part.stop for part in parts if part is not None])


def _stop_all(stops: list) -> None:
    """Call every stop, in order, even when an earlier one failed; then raise the first failure."""
    errors = []
    for stop in stops:
        try:
            stop()
        except Exception as error:  # noqa: BLE001 - the remaining parts must still be stopped
            errors.append(error)
    if errors:
        raise errors[0]


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """A second Ctrl-C (or SIGTERM) during tear-down must not leave half the stack running: both are
    ignored until everything is stopped (only the main thread can change signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stack_logs_hint(stack: RealStack) -> str:
    """Where every log of a failed run stays (the control plane's directory is kept on failure)."""
    return (
        f"Every log is kept in {stack.cluster.workdir}: logs/ (control plane, operator.log, model-servers.log), "
        f"traefik/traefik.log, model-servers/*/mlserver.log (one per pod)."
    )
