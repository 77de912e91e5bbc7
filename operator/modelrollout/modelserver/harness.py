"""The harness: one real MLServer per kwok pod that asks for one, and the pod's readiness from it.

kwok fakes kubelets and runs nothing. This process plays the part of the kubelet for model servers:
it watches pods, starts an MLServer for every Running pod with an IP whose `spec.readinessGates` holds
`modelrollout.io/model-server-ready`, bound to the pod's IP, and acts as the readiness prober: once the
server answers `/v2/health/ready` it patches the pod's conditions (the gate, ContainersReady and Ready
True), so the Deployment and the EndpointSlice count the pod only once the real server can serve. A
server that dies or stops answering turns them False and is restarted after a back-off, as a kubelet
would. When the pod goes away (deleted, or a deletionTimestamp set) its server is stopped before any new
one starts, since kwok hands freed IPs to the next pod. Pods without the gate are never touched.

Pod template contract (env of the container that declares the `http` port):
- `MODEL_NAME`: the name served at `/v2/models/<name>/infer` (default: label modelrollout.io/model-name);
- `MODEL_VERSION`: the version answered in every response's `model_version` and in the custom metrics'
  `model_version` label (default: label modelrollout.io/model-version);
- `MODEL_BEHAVIOUR`: `good` (default), `shifted`, `hotfix-errors` or `hotfix-slow` (see behaviour.py);
- `MODEL_LATENCY_SECONDS`: hotfix-slow's added delay (default 0.3).
Ports: `http` (REST inference), `metrics` (Prometheus), optional `grpc` (MLServer always serves gRPC;
default 8081). Everything binds only the pod's IP, so the same ports repeat across pods. Pod IPs are
bindable only inside the private network (`modelrollout private-network -- ...`).

Run: `python -m modelrollout.modelserver.harness --kubeconfig K [--namespace NS] [--workdir DIR]`;
SIGTERM or SIGINT stops every server (TERM, then KILL) and marks their pods not ready.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client as k8s_client

from modelrollout.kube.client import POD, KubeClient, KubeError, load_configuration
from modelrollout.modelserver import install, models
from modelrollout.modelserver.server import ModelServer
from modelrollout.modelserver.server import start as start_server
from modelrollout.modelserver.settings import READINESS_GATE, PodSpecError, ServerSpec, gated, server_spec

log = logging.getLogger("modelrollout.modelserver")

STARTING, READY, FAILED = "Starting", "Ready", "Failed"
PROBE_FAILURES = 3  # consecutive failed readiness probes before a ready server counts as not ready


@dataclass
class Tracked:
    """A pod we serve and the state of its server."""

    spec: ServerSpec
    server: ModelServer | None = None
    state: str = STARTING
    message: str = "model server starting"
    restarts: int = 0
    retry_at: float = 0.0
    failed_probes: int = 0
    last_probe: float = 0.0
    was_ready: bool = False


@dataclass(frozen=True)
class ServerInfo:
    """What `Harness.servers()` reports about one pod's server."""

    namespace: str
    pod: str
    ip: str
    state: str
    pid: int | None
    restarts: int
    start_seconds: float | None  # from process start to the first ready probe
    folder: Path | None


class Harness:
    """Serves gated pods with real MLServers until `stop()`; `start()` runs the loop in a thread."""

    def __init__(
        self,
        kubeconfig: Path | str | None = None,
        workdir: Path | None = None,
        namespace: str | None = None,
        start_timeout: float = 180.0,
        probe_interval: float = 5.0,
        resync_seconds: float = 2.0,
        root: Path | None = None,
    ) -> None:
        self._kubeconfig = str(kubeconfig) if kubeconfig else None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="modelrollout-modelservers-"))
        self._namespace = namespace
        self._start_timeout = start_timeout
        self._probe_interval = probe_interval
        self._resync = resync_seconds
        self._root = root
        self._tracked: dict[str, Tracked] = {}
        self._invalid: dict[str, str] = {}  # pod uid -> why it cannot be served
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: KubeClient | None = None
        self._store: models.ModelStore | None = None
        self._feature_names: list[str] = []
        self._executable: Path | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Install MLServer and train the models if needed (needs PyPI: do it before entering a network
        namespace without internet)."""
        python = install.ensure_mlserver(self._root)
        self._executable = python.with_name("mlserver")
        self._store = models.ensure_models(self._root)
        self._feature_names = list(models.load_dataset(self._store).feature_names)

    def start(self) -> Harness:
        if self._store is None:
            self.prepare()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Short timeouts: patches at shutdown must not hang on an apiserver that is already gone.
        self._client = KubeClient(k8s_client.ApiClient(load_configuration(self._kubeconfig)), timeout=5.0)
        for target, name in ((self._watch, "modelserver-watch"), (self._loop, "modelserver-harness")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the loop, every server (in parallel), and mark their pods not ready (best effort)."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            if thread.name == "modelserver-harness":
                thread.join(timeout=60)
        with self._lock:
            tracked = list(self._tracked.values())
            self._tracked.clear()
        self._stop_servers([t.server for t in tracked if t.server is not None])
        for entry in tracked:
            if entry.was_ready:
                with contextlib.suppress(Exception):
                    self._patch(entry.spec, False, "HarnessStopped", "the model server harness stopped")
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def servers(self) -> dict[str, ServerInfo]:
        """A snapshot, by `namespace/pod`, of every pod served."""
        with self._lock:
            return {
                entry.spec.key: ServerInfo(
                    namespace=entry.spec.namespace,
                    pod=entry.spec.pod,
                    ip=entry.spec.ip,
                    state=entry.state,
                    pid=entry.server.popen.pid if entry.server and entry.server.alive() else None,
                    restarts=entry.restarts,
                    start_seconds=(entry.server.ready_at - entry.server.started)
                    if entry.server and entry.server.ready_at
                    else None,
                    folder=entry.server.folder if entry.server else None,
                )
                for entry in self._tracked.values()
            }

    # --- the loop ----------------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Wake the loop on every pod event; the loop also resyncs on its own every few seconds."""
        client = KubeClient.from_environment(self._kubeconfig)
        path = POD.path(self._namespace)
        while not self._stopping.is_set():
            try:
                for _ in client.watch(path, timeout_seconds=60):
                    self._wake.set()
                    if self._stopping.is_set():
                        break
            except Exception as error:  # noqa: BLE001 - the watch only speeds things up; resync covers it
                log.debug("pod watch ended (%s); reconnecting", error)
                self._stopping.wait(1.0)
        client.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._resync)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except Exception:
                log.exception("model server harness: reconcile failed; retrying")
                self._stopping.wait(1.0)

    def reconcile(self) -> None:
        """One pass: stop servers whose pod is gone, start new ones, probe, patch conditions."""
        assert self._client is not None
        pods = {pod["metadata"]["uid"]: pod for pod in self._client.list(POD, self._namespace) if gated(pod)}
        wanted: dict[str, tuple[dict, ServerSpec]] = {}
        for uid, pod in pods.items():
            if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
                continue
            if not (pod.get("status") or {}).get("podIP"):
                continue
            try:
                wanted[uid] = (pod, server_spec(pod))
            except PodSpecError as error:
                self._reject(uid, pod, str(error))
        with self._lock:
            gone = [uid for uid in self._tracked if uid not in wanted]
            leaving = [self._tracked.pop(uid) for uid in gone]
        # Stop first: a new pod may already have a leaving pod's IP.
        self._stop_servers([entry.server for entry in leaving if entry.server is not None])
        for entry in leaving:
            log.info("stopped the model server of %s (%s): its pod is gone", entry.spec.key, entry.spec.ip)
        self._invalid = {uid: why for uid, why in self._invalid.items() if uid in pods}
        now = time.monotonic()
        for uid, (pod, spec) in wanted.items():
            with self._lock:
                entry = self._tracked.get(uid)
                if entry is None:
                    entry = self._tracked[uid] = Tracked(spec)
            self._advance(entry, now)
            self._sync_conditions(entry, pod)

    def _advance(self, entry: Tracked, now: float) -> None:
        """Move one pod's server along: start, probe, notice death, restart after back-off."""
        server = entry.server
        if server is None:
            if now >= entry.retry_at:
                self._start(entry)
            return
        if not server.alive():
            self._fail(entry, f"the model server exited with {server.popen.returncode}", now)
            return
        if entry.state == STARTING:
            if server.ready():
                entry.state, entry.message, entry.failed_probes = READY, "model server ready", 0
                entry.last_probe, entry.was_ready = now, True
                log.info(
                    "model server for %s ready on %s:%d after %.1fs",
                    entry.spec.key,
                    entry.spec.ip,
                    entry.spec.http_port,
                    (server.ready_at or now) - server.started,
                )
            elif now - server.started > self._start_timeout:
                self._fail(entry, f"the model server was not ready within {self._start_timeout:.0f}s", now)
            return
        if entry.state == READY and now - entry.last_probe >= self._probe_interval:
            entry.last_probe = now
            if server.ready(timeout=2.0):
                entry.failed_probes = 0
            else:
                entry.failed_probes += 1
                if entry.failed_probes >= PROBE_FAILURES:
                    self._fail(entry, f"{PROBE_FAILURES} readiness probes failed in a row", now)

    def _start(self, entry: Tracked) -> None:
        assert self._store is not None and self._executable is not None
        spec = entry.spec
        folder = self.workdir / f"{spec.namespace}_{spec.pod}_{spec.uid[:8]}_{entry.restarts}"
        entry.server = start_server(spec, folder, self._store, self._feature_names, self._executable)
        entry.state, entry.message = STARTING, "model server starting"
        log.info("starting a model server for %s on %s (%s, log %s)", spec.key, spec.ip, spec.behaviour.name, folder)

    def _fail(self, entry: Tracked, why: str, now: float) -> None:
        server = entry.server
        tail = server.log_tail(1500) if server else ""
        if server is not None:
            server.stop()
        entry.server = None
        entry.state, entry.message = FAILED, why
        entry.restarts += 1
        back_off = min(5.0 * 2 ** (entry.restarts - 1), 60.0)
        entry.retry_at = now + back_off
        log.warning(
            "model server for %s failed: %s; restarting in %.0fs. Log tail:\n%s", entry.spec.key, why, back_off, tail
        )

    def _stop_servers(self, servers: list[ModelServer]) -> None:
        if not servers:
            return
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            list(pool.map(lambda server: server.stop(), servers))

    # --- pod conditions ----------------------------------------------------------------------------------

    def _sync_conditions(self, entry: Tracked, pod: dict) -> None:
        """Patch the pod when its conditions differ from the server's state (a server never ready yet
        leaves kwok's Ready=False as it is)."""
        if entry.state == READY:
            ready, reason = True, "ModelServerReady"
        elif entry.state == FAILED or entry.was_ready:
            ready, reason = False, "ModelServerNotReady"
        else:
            return
        observed = {c["type"]: c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        wanted = "True" if ready else "False"
        if all(observed.get(kind) == wanted for kind in (READINESS_GATE, "Ready", "ContainersReady")):
            return
        self._patch(entry.spec, ready, reason, entry.message, pod=pod)

    def _reject(self, uid: str, pod: dict, why: str) -> None:
        """A gated pod we cannot serve: say why in its gate condition, once."""
        if self._invalid.get(uid) == why:
            return
        self._invalid[uid] = why
        log.warning("not serving %s", why)
        metadata = pod["metadata"]
        body = {"status": {"conditions": [_condition(READINESS_GATE, False, "InvalidModelServerSpec", why)]}}
        with contextlib.suppress(KubeError):
            self._patch_status(metadata["namespace"], metadata["name"], body)

    def _patch(self, spec: ServerSpec, ready: bool, reason: str, message: str, pod: dict | None = None) -> None:
        observed = {c["type"]: c for c in ((pod or {}).get("status") or {}).get("conditions") or []}
        conditions = [
            _condition(kind, ready, reason, message, observed.get(kind))
            for kind in (READINESS_GATE, "ContainersReady", "Ready")
        ]
        status: dict = {"conditions": conditions}
        # containerStatuses is replaced as a whole by a patch: copy it with the serving container's ready flag.
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses")
        if statuses:
            status["containerStatuses"] = [{**s, "ready": ready} for s in statuses]
        try:
            self._patch_status(spec.namespace, spec.pod, {"status": status})
            log.info("pod %s: %s=%s (%s)", spec.key, READINESS_GATE, ready, message)
        except KubeError as error:
            if not error.not_found:
                raise

    def _patch_status(self, namespace: str, name: str, body: dict) -> None:
        """A strategic merge patch: conditions merge by type, so kwok's other conditions stay."""
        assert self._client is not None
        self._client.request(
            "PATCH",
            POD.path(namespace, name, "status"),
            body=body,
            content_type="application/strategic-merge-patch+json",
        )


def _condition(kind: str, status: bool, reason: str, message: str, observed: dict | None = None) -> dict:
    """A pod condition; its lastTransitionTime moves only when its status does (as the kubelet's)."""
    value = "True" if status else "False"
    if observed and observed.get("status") == value and observed.get("lastTransitionTime"):
        since = observed["lastTransitionTime"]
    else:
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "lastProbeTime": None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelrollout.modelserver.harness",
        description="Serve every kwok pod gated by modelrollout.io/model-server-ready with a real MLServer.",
    )
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG")
    parser.add_argument("--namespace", help="only pods of this namespace (default: all)")
    parser.add_argument("--workdir", type=Path, help="server folders and logs (default: a new temporary directory)")
    parser.add_argument("--prepare-only", action="store_true", help="install MLServer and train the models, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    harness = Harness(args.kubeconfig, args.workdir, args.namespace)
    harness.prepare()
    if args.prepare_only:
        return 0
    done = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        log.info("signal %d: stopping every model server", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    harness.start()
    log.info("serving gated pods; server folders in %s", harness.workdir)
    try:
        done.wait()
    finally:
        harness.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
