"""The local stack's processes die with their owner (modelrollout.lifetime), on small real processes.

Each test runs an owner as its own Python process, so it can be killed with SIGKILL like a crashed test
session; nothing here needs the control plane.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from modelrollout import lifetime

# Blocks until killed, ignoring SIGTERM and SIGINT like MLServer's parallel worker.
STUBBORN = "import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\n"
STUBBORN += "while True: time.sleep(60)"

# A stack process that starts a grandchild in a session of its own (as MLServer starts its worker).
SPAWNS_A_GRANDCHILD = f"""
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", {STUBBORN!r}], start_new_session=True)
print(grandchild.pid, flush=True)
while True: time.sleep(60)
"""

OWNER = f"""
import json, subprocess, sys
from modelrollout import lifetime
child = lifetime.popen([sys.executable, "-c", {SPAWNS_A_GRANDCHILD!r}], stdout=subprocess.PIPE, text=True)
grandchild = int(child.stdout.readline())
print(json.dumps({{"marker": lifetime.owner_marker(), "child": child.pid, "grandchild": grandchild,
                  "warden": lifetime._warden.pid}}), flush=True)
sys.stdin.read()
"""


def read_line(process: subprocess.Popen, timeout: float = 30.0) -> str:
    """One line of a child's stdout, or fail naming what it wrote to stderr."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no line from {process.args} within {timeout}s"
    line = process.stdout.readline()
    assert line, f"{process.args} exited with {process.wait()}: {process.stderr.read() if process.stderr else ''}"
    return line


def wait_gone(pids: list[int], timeout: float = 20.0) -> float:
    """Seconds until none of `pids` runs (zombies count as gone); fails after `timeout`."""
    started = time.monotonic()
    while any(lifetime.running(pid) for pid in pids):
        assert time.monotonic() - started < timeout, f"still running after {timeout}s: {pids}"
        time.sleep(0.05)
    return time.monotonic() - started


def marker_of(pid: int) -> str | None:
    prefix = f"{lifetime.OWNER_VARIABLE}="
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return next((item[len(prefix) :] for item in environ if item.startswith(prefix)), None)


def test_killing_the_owner_ends_its_children_and_their_stubborn_grandchildren_and_the_warden():
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = json.loads(read_line(owner))
    family = [started["child"], started["grandchild"]]
    assert started["marker"] == f"{owner.pid}:{lifetime._stat(owner.pid)[1]}"
    assert all(lifetime.running(pid) for pid in [*family, started["warden"]])
    assert [marker_of(pid) for pid in family] == [started["marker"]] * 2
    assert marker_of(started["warden"]) is None  # the warden is no process of the stack

    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=10)

    wait_gone([*family, started["warden"]])
    assert [process for process in lifetime.marked_processes() if process.owner == started["marker"]] == []


def test_a_child_started_from_a_thread_outlives_that_thread():
    """The parent-death signal follows the forking thread: a short-lived thread must not take its children."""
    started: list[subprocess.Popen] = []
    echo = "import sys\nfor line in sys.stdin: print(line.strip(), flush=True)"

    def start() -> None:
        started.append(
            lifetime.popen([sys.executable, "-c", echo], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    (child,) = started
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/self/task/{thread.native_id}").exists():  # the kernel has finished the thread's exit
            assert time.monotonic() < deadline, "the starting thread did not exit"
            time.sleep(0.01)
        child.stdin.write("still here\n")
        child.stdin.flush()
        assert read_line(child).strip() == "still here"
    finally:
        child.kill()
        child.wait(timeout=10)


def test_a_detached_process_outlives_its_owner_and_is_a_leftover_of_its_directory_only(tmp_path):
    script = textwrap.dedent(
        f"""
        import subprocess, sys
        from pathlib import Path
        from modelrollout import lifetime
        child = lifetime.popen([sys.executable, "-c", {STUBBORN!r}], detached_in=Path({str(tmp_path)!r}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(child.pid)
        """
    )
    owner = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    pid = int(owner.stdout)
    try:
        assert lifetime.running(pid)
        assert marker_of(pid) == f"detached:{tmp_path.resolve()}"
        assert [p.pid for p in lifetime.leftovers([tmp_path], crashed_runs=False)] == [pid]
        assert pid not in [p.pid for p in lifetime.leftovers([], crashed_runs=True)]  # its directory exists
        assert pid not in [p.pid for p in lifetime.leftovers([tmp_path / "other"], crashed_runs=False)]
    finally:
        stopped = lifetime.stop([p for p in lifetime.marked_processes() if p.pid == pid], grace=1.0)
    assert [p.pid for p in stopped] == [pid]
    assert not lifetime.running(pid)


def test_leftovers_are_the_processes_of_dead_owners_never_of_live_ones():
    gone = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    dead_owner = f"{gone.pid}:{lifetime._stat(gone.pid)[1]}"
    gone.kill()
    gone.wait()
    live_owner = f"{os.getpid()}:{lifetime._stat(os.getpid())[1]}"
    orphan, owned = (
        subprocess.Popen(
            [sys.executable, "-c", STUBBORN],
            env=dict(os.environ, **{lifetime.OWNER_VARIABLE: owner}),
            start_new_session=True,
        )
        for owner in (dead_owner, live_owner)
    )
    try:
        deadline = time.monotonic() + 10
        while {orphan.pid, owned.pid} - {p.pid for p in lifetime.marked_processes()}:  # until both have exec'd
            assert time.monotonic() < deadline
            time.sleep(0.05)
        found = [p.pid for p in lifetime.leftovers()]
        assert orphan.pid in found
        assert owned.pid not in found
    finally:
        for process in (orphan, owned):
            process.kill()
            process.wait(timeout=10)


def test_proc_net_addresses():
    assert lifetime._address("0100007F:1F90") == "127.0.0.1:8080"
    assert lifetime._address("0100F40A:0050") == "10.244.0.1:80"
    assert lifetime._address("00000000000000000000000001000000:0050") == "[::1]:80"


def test_an_owner_that_exits_normally_leaves_neither_a_child_it_forgot_nor_its_warden():
    script = textwrap.dedent(
        f"""
        import subprocess, sys
        from modelrollout import lifetime
        child = lifetime.popen([sys.executable, "-c", {STUBBORN!r}], stdout=subprocess.DEVNULL)
        print(lifetime._warden.pid, child.pid)
        """
    )
    owner = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    warden, child = map(int, owner.stdout.split())
    # The owner's exit waited for the warden, which ended the child: both are gone once it has returned.
    assert not lifetime.running(warden)
    assert not lifetime.running(child)
