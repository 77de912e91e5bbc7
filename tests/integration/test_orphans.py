"""No local stack outlives its owner, and `dev-cluster down` stops what is left of one that did.

The owner is a child Python process killed with SIGKILL, like a crashed test session or demo: nothing of its
stack may keep running or keep a port. `dev-cluster up` is the exception by design (its cluster must outlive
the command); `dev-cluster down` stops it by its marker, and stops leftovers of crashed runs it never
started, but never a stack whose owner still runs.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from modelrollout import lifetime
from modelrollout.devcluster import build, cluster
from tests.conftest import FIGURES

REPO = Path(__file__).resolve().parents[2]
CONTROL_PLANE = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

# The benchmarks' local stack (control plane, CRDs, traffic simulator, Prometheus, the operator as its own
# process), once the operator serves, a report of what it started; then nothing until it is killed.
OWNER = """
import json, sys, urllib.request
from modelrollout import lifetime
from modelrollout.devcluster.cluster import wait_until
from modelrollout.devcluster.stack import local_stack
with local_stack([], nodes=1) as stack:
    metrics = lambda: urllib.request.urlopen(f"http://{stack.http}/metrics", timeout=2).status == 200
    wait_until(metrics, 60, "the operator's /metrics")
    started = {process.name: process.popen.pid for process in stack.cluster.processes}
    started["prometheus"] = stack.prometheus.process.popen.pid
    started["modelrollout.simulator.process"] = stack.simulator._popen.pid
    started["modelrollout.cli"] = stack.operator.pid
    ports = {"kube-apiserver": stack.cluster.apiserver_port, "prometheus": stack.prometheus.port,
             "simulator": stack.simulator.port, "operator": int(stack.http.rsplit(":", 1)[1])}
    print(json.dumps({"marker": lifetime.owner_marker(), "warden": lifetime._warden.pid, "started": started,
                      "ports": ports}), flush=True)
    sys.stdin.read()
"""


def read_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no line from the child within {timeout:.0f}s"
    line = process.stdout.readline()
    assert line, f"the child exited with {process.wait()}:\n{process.stderr.read()[-4000:]}"
    return line


def listening_ports() -> set[int]:
    """Every TCP port something listens on in this network namespace."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until_gone(pids: list[int], ports: set[int], timeout: float = 30.0) -> float:
    """Seconds until none of `pids` runs and none of `ports` is listened on; fails after `timeout`."""
    started = time.monotonic()
    while True:
        running = [pid for pid in pids if lifetime.running(pid)]
        held = ports & listening_ports()
        if not running and not held:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"after {timeout:.0f}s still running {running}, held {held}"
        time.sleep(0.05)


def process_of(pid: int) -> lifetime.StackProcess:
    return next(process for process in lifetime.marked_processes() if process.pid == pid)


def test_killing_the_owner_of_a_local_stack_leaves_no_process_and_no_port():
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        report = json.loads(read_line(owner, timeout=180))
        check_and_kill(owner, report)
    finally:
        owner.kill()  # when a check failed before the SIGKILL; its warden then ends the stack
        owner.wait(timeout=10)


def check_and_kill(owner: subprocess.Popen, report: dict) -> None:
    started: dict[str, int] = report["started"]
    stack = [process for process in lifetime.marked_processes() if process.owner == report["marker"]]
    # Everything it started carries its marker, and nothing else does (the warden is no part of the stack).
    assert {process.name: process.pid for process in stack} == started
    assert set(started) == CONTROL_PLANE | {"prometheus", "modelrollout.simulator.process", "modelrollout.cli"}
    assert report["marker"] == f"{owner.pid}:{lifetime._stat(owner.pid)[1]}"
    ports = {int(address.rsplit(":", 1)[1]) for process in stack for address in process.listening}
    assert set(report["ports"].values()) <= ports <= listening_ports()
    assert all(answers(port) for port in report["ports"].values())

    owner.send_signal(signal.SIGKILL)
    seconds = wait_until_gone([*started.values(), report["warden"]], ports)

    assert [process for process in lifetime.marked_processes() if process.owner == report["marker"]] == []
    assert not any(answers(port) for port in report["ports"].values())
    FIGURES["local stack gone after its owner's SIGKILL (8 processes, warden included, ports free)"] = f"{seconds:.2f}s"


def modelrollout(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [str(REPO / ".venv" / "bin" / "modelrollout"), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert result.returncode == 0, f"{' '.join(args)} exited with {result.returncode}:\n{result.stderr[-4000:]}"
    return result


def test_dev_cluster_up_outlives_the_command_and_down_stops_it_by_its_marker(tmp_path):
    directory = tmp_path / "dev-cluster"
    marker = f"detached:{directory.resolve()}"
    kubeconfig = Path(modelrollout("dev-cluster", "up", "--dir", str(directory)).stdout.strip())
    try:
        # The command has returned; its cluster runs on, and answers.
        cluster_processes = [process for process in lifetime.marked_processes() if process.owner == marker]
        assert {process.name for process in cluster_processes} == CONTROL_PLANE
        kubectl = build.ensure_binaries().kubectl
        nodes = subprocess.run(
            [str(kubectl), f"--kubeconfig={kubeconfig}", "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert nodes.stdout.split() == [f"node/kwok-node-{index}" for index in range(cluster.DEFAULT_NODES)]
        shutil.rmtree(directory / "pids")  # down does not need the pids up recorded

        output = modelrollout("dev-cluster", "down", "--dir", str(directory)).stdout
    finally:
        leftover = [process for process in lifetime.marked_processes() if process.owner == marker]
        lifetime.stop(leftover, grace=1.0)

    for process in cluster_processes:
        assert f"  {process.describe()}: the dev cluster" in output.splitlines()
    ports = {int(address.rsplit(":", 1)[1]) for process in cluster_processes for address in process.listening}
    assert len(ports) >= len(CONTROL_PLANE)
    wait_until_gone([process.pid for process in cluster_processes], ports, timeout=5)
    assert not directory.exists()


def test_dev_cluster_down_stops_leftovers_of_crashed_runs_it_never_started_and_spares_live_stacks(tmp_path):
    # A process of a crashed run: real etcd, marked by an owner that no longer runs, holding two ports.
    gone = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    dead_owner = f"{gone.pid}:{lifetime._stat(gone.pid)[1]}"
    gone.kill()
    gone.wait()
    client, peer = cluster.free_port(), cluster.free_port()
    etcd_args = [
        str(build.ensure_binaries().etcd),
        f"--data-dir={tmp_path / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=default=http://127.0.0.1:{peer}",
    ]
    crashed = subprocess.Popen(
        etcd_args,
        env=dict(os.environ, **{lifetime.OWNER_VARIABLE: dead_owner}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # A process of a stack whose owner (this test) runs: down must leave it alone.
    live_owner = f"{os.getpid()}:{lifetime._stat(os.getpid())[1]}"
    live = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        env=dict(os.environ, **{lifetime.OWNER_VARIABLE: live_owner}),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ({client, peer} <= listening_ports() and live.pid in {p.pid for p in lifetime.marked_processes()}):
            assert crashed.poll() is None, f"etcd exited with {crashed.returncode}"
            assert time.monotonic() < deadline, "etcd did not listen within 60s"
            time.sleep(0.1)
        leftover = process_of(crashed.pid)

        output = modelrollout("dev-cluster", "down", "--dir", str(tmp_path / "no-dev-cluster-here")).stdout

        addresses = sorted([f"127.0.0.1:{client}", f"127.0.0.1:{peer}"])  # down lists them in this order
        line = f"  etcd (pid {crashed.pid}, listening on {', '.join(addresses)})"
        assert leftover.listening == tuple(addresses)
        assert f"{line}: a run that ended without stopping it (pid {gone.pid})" in output.splitlines()
        assert crashed.wait(timeout=5) is not None
        wait_until_gone([crashed.pid], {client, peer}, timeout=5)
        assert live.poll() is None and f"(pid {live.pid}" not in output
    finally:
        for process in (crashed, live):
            process.kill()
            process.wait(timeout=10)
