"""The harness: one real MLServer per kwok pod that asks for one, and the pod's readiness from it.

kwok fakes kubelets and runs nothing. This process plays the part of the kubelet for model servers:
it watches pods, starts an MLServer for every Running pod with an IP whose `spec.readinessGates` holds
`modelrollout.io/model-server-ready`, bound to the pod's IP, and acts as the readiness prober: once the
server answers `/v2/health/ready` it patches the pod's conditions (the gate, ContainersReady and Ready
True), so the Deployment and the EndpointSlice count the pod only once the real server can serve. A
server that dies or stops answering turns them False and is restarted after a back-off, as a kubelet
would. Pods without the gate are never touched.

When the pod goes away (a deletionTimestamp set, or deleted outright, as kwok does at once) its server
terminates as a kubelet would end the container: it keeps serving while the container's `preStop` hook
sleeps, then gets SIGTERM (KILL after a grace). Understood hooks: the sleep action
(`lifecycle.preStop.sleep.seconds`) and an exec sleep (`["sleep", "N"]`, `["/bin/sh", "-c", "sleep N"]`),
counted from when the harness first noticed the deletion and capped by the pod's grace period
(`metadata.deletionGracePeriodSeconds`, else `spec.terminationGracePeriodSeconds`, else 30 s); any other
hook, or none, stops the server at once. That sleep is what lets the data plane drop the pod first: the
EndpointSlice drops it at once and Traefik a configuration round later, so requests routed meanwhile still
find a server. A terminating pod's conditions are no longer written (the endpoint controller takes it out).
But a terminating server is stopped at once when another pod the harness must serve has its IP, before that
pod's server starts: kwok hands freed IPs to the next pod, and only one server can bind an IP's ports.

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
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
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

STARTING, READY, FAILED, TERMINATING = "Starting", "Ready", "Failed", "Terminating"
PROBE_FAILURES = 3  # consecutive failed readiness probes before a ready server counts as not ready
DEFAULT_GRACE_SECONDS = 30.0  # a pod's terminationGracePeriodSeconds when it sets none
_SLEEP = r"\s*(?:\d+(?:\.\d*)?|\.\d+)\s*"  # what `sleep` takes here: seconds, no suffix
_SHELLS = {"sh", "bash", "dash", "ash"}


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
    prestop_seconds: float = 0.0  # how long the server keeps serving once its pod is deleted (once leaving: will)
    stop_at: float | None = None  # once leaving: when its server stops (monotonic)


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
        self._leaving: dict[str, Tracked] = {}  # pod uid -> a terminating pod's server, until its preStop ends
        self._invalid: dict[str, str] = {}  # pod uid -> why it cannot be served
        self._stopped: dict[str, float] = {}  # namespace/pod -> when its server last stopped as its pod left
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
            leaving = list(self._leaving.values())
            self._tracked.clear()
            self._leaving.clear()
        self._stop_servers([t.server for t in tracked + leaving if t.server is not None])
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

    def stopped_at(self) -> dict[str, float]:
        """When (time.monotonic()), by `namespace/pod`, the server of each pod that left stopped: a test can
        then compare it with when the data plane dropped the pod, however late it looks."""
        with self._lock:
            return dict(self._stopped)

    def servers(self) -> dict[str, ServerInfo]:
        """A snapshot, by `namespace/pod`, of every pod served, terminating ones (state Terminating) included."""
        with self._lock:
            entries = [*self._leaving.values(), *self._tracked.values()]  # a live pod wins a reused name
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
                for entry in entries
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
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except Exception:
                log.exception("model server harness: reconcile failed; retrying")
                self._stopping.wait(1.0)

    def _next_wait(self) -> float:
        with self._lock:
            return wait_seconds(self._leaving.values(), self._resync, time.monotonic())

    def reconcile(self) -> None:
        """One pass: pods gone start terminating, servers due stop, new ones start, probe, patch conditions."""
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
        now = time.monotonic()
        with self._lock:
            for uid in [uid for uid in self._tracked if uid not in wanted]:
                entry = self._leaving[uid] = leave(self._tracked.pop(uid), pods.get(uid), now)
                if entry.prestop_seconds and entry.server is not None:
                    log.info(
                        "pod %s (%s) is terminating: its model server keeps serving %gs (preStop sleep)",
                        entry.spec.key,
                        entry.spec.ip,
                        entry.prestop_seconds,
                    )
            due = stop_due(self._leaving, {spec.ip for _, spec in wanted.values()}, now)
            stopping = {uid: self._leaving.pop(uid) for uid in due}
        # Stop first: a new pod may already have a leaving pod's IP.
        self._stop_servers([entry.server for entry in stopping.values() if entry.server is not None])
        stopped = time.monotonic()
        with self._lock:
            self._stopped.update({entry.spec.key: stopped for entry in stopping.values()})
        for uid, entry in stopping.items():
            log.info("stopped the model server of %s (%s): %s", entry.spec.key, entry.spec.ip, due[uid])
        self._invalid = {uid: why for uid, why in self._invalid.items() if uid in pods}
        for uid, (pod, spec) in wanted.items():
            with self._lock:
                entry = self._tracked.get(uid)
                if entry is None:
                    entry = self._tracked[uid] = Tracked(spec, prestop_seconds=prestop_seconds(pod))
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


def prestop_seconds(pod: dict) -> float:
    """How long a kubelet would keep the model server's container (the one declaring port `http`) running once
    the pod is deleted: its preStop sleep, capped by the grace period; 0 for any other hook or none.

    A deletion grace of 0 is not a grace anyone chose here: kwok's pod-delete stage plays the kubelet's last
    delete at once, and the apiserver stores its grace 0 for a moment before the pod goes. A loop that lists
    the pod in that moment must not take it for a force delete, so the pod's own grace period counts."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    container = next(
        (c for c in spec.get("containers") or [] if any(p.get("name") == "http" for p in c.get("ports") or [])), {}
    )
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    seconds = 0.0
    if "sleep" in hook:
        seconds = float((hook["sleep"] or {}).get("seconds") or 0)
    elif "exec" in hook:
        seconds = _exec_sleep((hook["exec"] or {}).get("command") or [])
    grace = metadata.get("deletionGracePeriodSeconds")
    if not grace:
        grace = spec.get("terminationGracePeriodSeconds")
    return max(0.0, min(seconds, DEFAULT_GRACE_SECONDS if grace is None else float(grace)))


def _exec_sleep(command: list[str]) -> float:
    """The seconds of an exec hook that only sleeps (`sleep N`, or a shell's `-c "sleep N"`); 0 otherwise."""
    program = [Path(part).name if index == 0 else part for index, part in enumerate(command)]
    if len(program) == 2 and program[0] == "sleep" and re.fullmatch(_SLEEP, program[1]):
        return float(program[1])
    if len(program) == 3 and program[0] in _SHELLS and program[1] == "-c":
        found = re.fullmatch(rf"\s*(?:exec\s+)?sleep\s+({_SLEEP})", program[2])
        if found:
            return float(found.group(1))
    return 0.0


def leave(entry: Tracked, pod: dict | None, now: float) -> Tracked:
    """The entry of a pod the harness no longer serves, `now`, turned Terminating: a deleted pod's server stops
    once its preStop sleep ends (`pod` None: deleted outright, the sleep as seen while it ran; with a
    deletionTimestamp, the grace the deletion set counts), any other pod's (no longer Running) at once."""
    deleted = pod is None or bool(pod["metadata"].get("deletionTimestamp"))
    if pod is not None:
        entry.prestop_seconds = prestop_seconds(pod) if deleted else 0.0
    entry.stop_at, entry.state = now + entry.prestop_seconds, TERMINATING
    entry.message = "its pod was deleted" if deleted else "its pod no longer runs"
    return entry


def wait_seconds(leaving: Iterable[Tracked], resync: float, now: float) -> float:
    """How long the loop may wait for a pod event: until the next resync, or until a terminating server is due."""
    ends = [entry.stop_at - now for entry in leaving if entry.stop_at is not None]
    return max(0.0, min([resync, *ends]))


def stop_due(leaving: Mapping[str, Tracked], wanted_ips: Iterable[str], now: float) -> dict[str, str]:
    """Which terminating servers to stop now (by pod uid), and why: their preStop sleep ended, or a pod to
    serve has their IP (its server cannot bind while they run)."""
    taken = set(wanted_ips)
    due = {}
    for uid, entry in leaving.items():
        if entry.spec.ip in taken:
            due[uid] = f"{entry.message}, and another pod to serve has its IP"
        elif entry.stop_at is None or now >= entry.stop_at:
            slept = f" and its preStop sleep of {entry.prestop_seconds:g}s ended" if entry.prestop_seconds else ""
            due[uid] = f"{entry.message}{slept}"
    return due


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
