"""Start and stop a real control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok with a few fake Nodes.

Rules:
- Everything listens on 127.0.0.1 on ports chosen free at start; nothing is reachable from outside.
- Every process runs in its own session and is stopped (TERM, then KILL) on `stop()`, so no stray
  process or held port survives a test run; and it dies with the process that started it, should that one
  die before `stop()` (`modelrollout.lifetime`), unless the cluster is detached (`dev-cluster up`).
- Readiness is polled with deadlines, never assumed after a sleep.
- The admin identity is a static token in system:masters; the serving certificate is the one the
  apiserver generates for 127.0.0.1, and the kubeconfig trusts exactly that certificate.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from modelrollout import lifetime
from modelrollout.devcluster.build import Binaries, ensure_binaries
from modelrollout.modelserver.stages import with_readiness_gates, without_job_completion

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
DEFAULT_NODES = 3
SERVICE_CIDR = "10.96.0.0/16"  # room for the scale benchmark: three Services per ModelDeployment


# What kubectl prints when the apiserver is starting, restarting or overloaded: worth another try.
TRANSIENT_KUBECTL_ERRORS = (
    "connection refused",
    "connection reset",
    "i/o timeout",
    "TLS handshake timeout",
    "EOF",
    "etcdserver",
    "the server is currently unable to handle the request",
    "storage is (re)initializing",
    "Too Many Requests",
    "the server was unable to return a response in the time allotted",
    "context deadline exceeded",
    "the server could not find the requested resource",
)


class KubectlFailed(RuntimeError):
    """kubectl failed for good: the message has the command and kubectl's own stderr."""


LOWEST_PORT = 10000
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range, never handed out twice.

    A port the kernel picks (bind to 0) comes from the ephemeral range, which outgoing connections draw
    from too: between this choice and its server's bind, a connection (kwok or the controller-manager to
    the apiserver, say) could take it ("bind: address already in use", 1 demo in 7 on a loaded machine).
    """
    low = _ephemeral_low()
    with _handed_out_lock:
        for _ in range(1000):
            port = random.randrange(LOWEST_PORT, low) if low > LOWEST_PORT + 1000 else 0
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue  # something listens there already
                port = sock.getsockname()[1]
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port between {LOWEST_PORT} and {low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    """Poll `check` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - any failure means "not yet"
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last_error}" if last_error else ""))


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    args: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=grace)


@dataclass
class Cluster:
    """A running local control plane. Use as a context manager or call `stop()`."""

    workdir: Path
    binaries: Binaries
    apiserver_port: int
    token: str
    processes: list[Process] = field(default_factory=list)
    remove_workdir: bool = True
    detached: bool = False  # outlives the process that started it (`dev-cluster up`); see modelrollout.lifetime

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run the kubectl built for this control plane's version against it."""
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def kubectl_retrying(self, *args: str, input: str | None = None, timeout: float = 90.0) -> str:
        """`kubectl`, retried while the apiserver answers with a transient error (a fresh or loaded control
        plane refuses, times out or is still initializing); any other failure, or the deadline, raises
        `KubectlFailed` with kubectl's own message."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.kubectl(*args, input=input, check=False)
            if result.returncode == 0:
                return result.stdout
            transient = any(marker in result.stderr for marker in TRANSIENT_KUBECTL_ERRORS)
            if not transient or time.monotonic() > deadline:
                waited = f" (still failing after {timeout:.0f}s of retries)" if transient else ""
                raise KubectlFailed(
                    f"kubectl {' '.join(args[:4])} exited with {result.returncode}{waited}: {result.stderr.strip()}\n"
                    f"The control plane's logs are in {self.workdir / 'logs'}; on a busy machine, run it again."
                )
            time.sleep(0.5)

    def process(self, name: str) -> Process:
        return next(process for process in self.processes if process.name == name)

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Stop one component and start it again with the same arguments (for fault tests)."""
        old = self.process(name)
        old.stop()
        self.processes.remove(old)
        self._start(name, old.args)
        if name == "kube-apiserver":
            wait_until(lambda: self._https_ok("/readyz"), timeout, "kube-apiserver /readyz after restart")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _start(self, name: str, args: list[str]) -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = lifetime.popen(
                args,
                detached_in=self.workdir if self.detached else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        process = Process(name, popen, log, list(args))
        self.processes.append(process)
        # Recorded so `dev-cluster down` can stop a cluster that `up` left running.
        (self.workdir / "pids").mkdir(exist_ok=True)
        (self.workdir / "pids" / name).write_text(str(popen.pid))
        return process

    def _check_alive(self, process: Process) -> None:
        if not process.alive():
            tail = process.log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{tail}")

    def _https_ok(self, path: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status == 200


def _write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "modelrollout-dev", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "modelrollout-dev", "context": {"cluster": "modelrollout-dev", "user": user}}],
        "current-context": "modelrollout-dev",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def fake_node(name: str) -> dict:
    """A Node kwok manages: Ready at once, with room for many pods."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
        },
    }


def start(
    workdir: Path | None = None,
    nodes: int = DEFAULT_NODES,
    binaries: Binaries | None = None,
    detach: bool = False,
    timeout: float = 120.0,
    extra_apiserver_flags: Sequence[str] = (),
) -> Cluster:
    """Build (if needed) and start everything; returns once a Node is Ready and the apiserver is healthy.

    `detach`: the processes outlive the caller and the directory stays (`dev-cluster up`). `extra_apiserver_flags`
    are appended to kube-apiserver's own (later flags win), e.g. `--audit-policy-file=...` and
    `--audit-log-path=...` for a benchmark's audit log; `restart()` keeps them.
    """
    binaries = binaries or ensure_binaries()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="modelrollout-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    certs.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    cluster = Cluster(workdir, binaries, free_port(), token, remove_workdir=not detach, detached=detach)
    try:
        _start_all(cluster, certs, nodes, timeout, tuple(extra_apiserver_flags))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_all(
    cluster: Cluster, certs: Path, nodes: int, timeout: float, extra_apiserver_flags: tuple[str, ...]
) -> None:
    workdir, binaries = cluster.workdir, cluster.binaries
    sa_key = certs / "sa.key"
    subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
    (certs / "tokens.csv").write_text(f'{cluster.token},admin,admin-uid,"system:masters"\n')

    etcd_port, etcd_peer_port = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    etcd = cluster._start(
        "etcd",
        [
            str(binaries.etcd),
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )

    def etcd_healthy() -> bool:
        cluster._check_alive(etcd)
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as response:
            return json.load(response).get("health") == "true"

    wait_until(etcd_healthy, timeout, "etcd health")

    port = cluster.apiserver_port
    apiserver = cluster._start(
        "kube-apiserver",
        [
            str(binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={certs}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            # No ServiceAccount tokens are mounted into fake pods; new Nodes are not tainted not-ready,
            # since the node lifecycle controller that would lift the taint is off (see below).
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            "--endpoint-reconciler-type=none",
            f"--service-account-issuer=https://127.0.0.1:{port}/",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--token-auth-file={certs / 'tokens.csv'}",
            *extra_apiserver_flags,
        ],
    )

    def apiserver_ready() -> bool:
        cluster._check_alive(apiserver)
        return cluster.ca_file.exists() and cluster._https_ok("/readyz")

    wait_until(apiserver_ready, timeout, "kube-apiserver /readyz")
    _write_kubeconfig(cluster.kubeconfig, cluster.server, cluster.ca_file, "admin", cluster.token)
    kubeconfig = str(cluster.kubeconfig)
    common = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
    ]
    cluster._start(
        "kube-controller-manager",
        [
            str(binaries.kube_controller_manager),
            *common,
            f"--secure-port={free_port()}",
            f"--service-account-private-key-file={sa_key}",
            # Node lifecycle would taint fake nodes whose heartbeat lags; kwok keeps them Ready anyway.
            "--controllers=*,-nodelifecycle",
        ],
    )
    cluster._start("kube-scheduler", [str(binaries.kube_scheduler), *common, f"--secure-port={free_port()}"])
    # Upstream's Stages, except that pods with readiness gates wait for them (a real model server's harness)
    # and Job pods are finished by the job runner, which runs them, not at once.
    stages = workdir / "kwok-stages.yaml"
    stages.write_text(without_job_completion(with_readiness_gates(binaries.kwok_stages.read_text())))
    cluster._start(
        "kwok",
        [
            str(binaries.kwok),
            f"--kubeconfig={kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.1.0.1",
            f"--server-address=127.0.0.1:{free_port()}",
        ],
    )

    for index in range(nodes):
        cluster.kubectl_retrying("apply", "-f", "-", input=json.dumps(fake_node(f"kwok-node-{index}")))

    def node_ready() -> bool:
        for process in cluster.processes:
            cluster._check_alive(process)
        result = cluster.kubectl("get", "nodes", "-o", "json")
        items = json.loads(result.stdout)["items"]
        ready = [
            node
            for node in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
        ]
        return len(ready) == nodes

    wait_until(node_ready, timeout, f"{nodes} kwok nodes Ready")

    def default_service_account() -> bool:
        return cluster.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    wait_until(default_service_account, timeout, "the default ServiceAccount")
