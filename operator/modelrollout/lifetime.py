"""The local stack's processes die with the process that started them (their owner), and are found again
when they did not.

Why: the control plane, Prometheus, Traefik, Flux, the model-server harness, its MLServers and the traffic
simulator each run in their own session, so a terminal's Ctrl-C reaches only the owner, which then stops
them in order. But a session outlives its parent: an owner killed before its tear-down (SIGKILL, the OOM
killer, a crashed pytest) left them all running and holding their ports. Every local-stack process is
therefore started with `popen()`, which ties it to its owner in two ways that cover for each other:

- **Parent-death signal.** The child asks the kernel (`prctl(PR_SET_PDEATHSIG, SIGKILL)`) to be killed
  when its parent goes. The kernel sends it when the *thread* that forked the child exits, not the whole
  process, so `popen()` forks only from the main thread or from one spawner thread that lives as long as
  the process (the model-server harness starts MLServers from its loop thread, for example). The signal
  reaches only the direct child, not what that child starts itself: MLServer's worker ignores SIGTERM and
  outlives its server.
- **A warden.** One small process per owner (`python -m modelrollout.lifetime --warden ...`), started with
  the owner's first child, blocks reading a pipe whose write end only the owner holds. However the owner
  ends, the kernel closes that end and the warden reads EOF; it then ends (TERM, then KILL) every process
  that carries the owner's marker, grandchildren included, and exits. On a normal exit the owner waits for
  it (atexit), so nothing it started outlives it, not even the warden.
- **The marker** is `MODELROLLOUT_STACK_OWNER=<owner pid>:<its start time>` in every child's environment,
  which their own children inherit (the start time tells a reused pid apart). A stack process that starts
  processes itself (the harness) passes its owner's marker on, so one warden covers the whole tree.
  `leftovers()` finds marked processes whose owner is gone (owner and warden both killed), so
  `modelrollout dev-cluster down` can stop them and free their ports.

Detached: `modelrollout dev-cluster up` must leave its cluster running after the command returns, so its
processes (`popen(..., detached_in=<state directory>)`) get neither the signal nor a warden. They carry the
marker `detached:<state directory>`, and `dev-cluster down` stops them by it, even when its recorded pids
are gone. An `up` killed mid-start leaves such processes as well; the next `up` or `down` stops them.

Only the standard library is imported here: the warden starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import ipaddress
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

OWNER_VARIABLE = "MODELROLLOUT_STACK_OWNER"
DETACHED_PREFIX = "detached:"
PR_SET_PDEATHSIG = 1
_LISTEN = "0A"  # TCP state in /proc/net/tcp


# --- starting processes ---------------------------------------------------------------------------------


def popen(args: Sequence[str], *, detached_in: Path | None = None, **popen_kwargs) -> subprocess.Popen:
    """`subprocess.Popen` for a process of the local stack: its own session, the owner's marker in its
    environment, and (unless `detached_in` names a state directory) killed when this process dies."""
    env = dict(popen_kwargs.pop("env", None) or os.environ)
    popen_kwargs.setdefault("start_new_session", True)
    if detached_in is not None:
        env[OWNER_VARIABLE] = DETACHED_PREFIX + str(Path(detached_in).resolve())
        return subprocess.Popen(args, env=env, **popen_kwargs)
    env[OWNER_VARIABLE] = owner_marker()
    _ensure_warden()
    preexec = _die_with(os.getpid())
    return _from_long_lived_thread(lambda: subprocess.Popen(args, env=env, preexec_fn=preexec, **popen_kwargs))


def terminate(process: subprocess.Popen, grace: float = 10.0) -> None:
    """End one process started by `popen`: SIGTERM, then SIGKILL if it is still running after `grace` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


def owner_marker() -> str:
    """The marker this process's children carry: the one it inherited as a stack process itself, else its own."""
    return os.environ.get(OWNER_VARIABLE) or _token(os.getpid()) or f"{os.getpid()}:0"


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the warden alone ties children to the owner
        return None


_PRCTL = _prctl()


def _die_with(parent: int) -> Callable[[], None] | None:
    """The child's last step before exec: SIGKILL when the forking thread exits; if the parent already
    went between fork and here, the signal will never come, so the child ends at once."""
    if _PRCTL is None:
        return None

    def preexec() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


_spawn_requests: queue.SimpleQueue | None = None
_spawner_lock = threading.Lock()


def _from_long_lived_thread(start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Run `start` on the main thread or the spawner thread, never on a thread that may exit before the child
    should (the parent-death signal follows the forking thread)."""
    if threading.current_thread() is threading.main_thread():
        return start()
    global _spawn_requests
    with _spawner_lock:
        if _spawn_requests is None:
            _spawn_requests = queue.SimpleQueue()
            threading.Thread(target=_spawner, args=(_spawn_requests,), name="stack-spawner", daemon=True).start()
    result: Future[subprocess.Popen] = Future()
    _spawn_requests.put((start, result))
    return result.result()


def _spawner(requests: queue.SimpleQueue) -> None:
    while True:
        start, result = requests.get()
        try:
            result.set_result(start())
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            result.set_exception(error)


_warden: subprocess.Popen | None = None
_warden_of_pid = 0
_lifeline = -1  # the pipe's write end; only this process holds it
_warden_lock = threading.Lock()


def _ensure_warden() -> None:
    """Start this owner's warden once (again if it died, or after a fork). A process that inherited a marker
    is covered by its owner's warden."""
    global _warden, _warden_of_pid, _lifeline
    if os.environ.get(OWNER_VARIABLE):
        return
    with _warden_lock:
        if _warden_of_pid == os.getpid() and _warden is not None and _warden.poll() is None:
            return
        if _lifeline >= 0 and _warden_of_pid == os.getpid():
            os.close(_lifeline)
        read_end, write_end = os.pipe()
        env = {key: value for key, value in os.environ.items() if key != OWNER_VARIABLE}
        command = [sys.executable, "-m", "modelrollout.lifetime", "--warden", owner_marker()]
        command += ["--lifeline", str(read_end)]
        try:
            _warden = subprocess.Popen(
                command,
                env=env,
                pass_fds=(read_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_end)
        if _warden_of_pid != os.getpid():
            atexit.register(_dismiss_warden)
        _warden_of_pid, _lifeline = os.getpid(), write_end


def _dismiss_warden() -> None:
    """On a normal exit, let the warden check that nothing is left and wait until it is gone, so that no
    process the owner started outlives it, the warden included (a killed owner's warden runs on, alone)."""
    global _lifeline
    if _warden_of_pid != os.getpid() or _warden is None or _lifeline < 0:
        return
    os.close(_lifeline)
    _lifeline = -1
    with contextlib.suppress(subprocess.TimeoutExpired):
        _warden.wait(timeout=30)


def _watch(owner: str, lifeline: int) -> None:
    """The warden: wait until the owner is gone (EOF on the lifeline), then end everything it started."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    while os.read(lifeline, 1):
        pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a process being stopped may still start one (the harness): rescan
        found = [process for process in marked_processes() if process.owner == owner]
        if not found:
            return
        stop(found, grace=2.0)  # orphans: their owner cannot stop them in order any more


# --- finding and stopping them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StackProcess:
    """A running process that carries a local stack's marker."""

    pid: int
    start_time: int
    owner: str
    name: str
    listening: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        ports = f", listening on {', '.join(self.listening)}" if self.listening else ""
        return f"{self.name} (pid {self.pid}{ports})"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _token(pid: int) -> str | None:
    stat = _stat(pid)
    return f"{pid}:{stat[1]}" if stat else None


def running(pid: int, start_time: int | None = None) -> bool:
    """The process exists, is not a zombie (a dead child no one reaped holds no port) and, with
    `start_time`, is the same process (not a reused pid)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX" and (start_time is None or stat[1] == start_time)


def owner_alive(owner: str) -> bool:
    """Whether the owner a marker names still runs (a detached cluster has no owning process: False)."""
    pid, _, start = owner.partition(":")
    return pid.isdigit() and start.isdigit() and running(int(pid), int(start))


def _name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    argv = [part.decode(errors="replace") for part in argv if part]
    if not argv:
        return "?"
    interpreter = Path(argv[0]).name
    if not interpreter.startswith("python"):
        return interpreter
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument == "-m":
            return next(arguments, interpreter)
        if argument == "-c":  # multiprocessing's workers and resource tracker (MLServer's) start this way
            code = next(arguments, "")
            return f"{interpreter} -c ({'multiprocessing' if 'multiprocessing' in code else 'inline code'})"
        if not argument.startswith("-"):
            return Path(argument).name
    return interpreter


def listening_addresses(pid: int) -> tuple[str, ...]:
    """The TCP addresses a process listens on, read in its own network namespace."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _LISTEN and fields[9] in inodes:
                    found.append(_address(fields[1]))
    return tuple(sorted(set(found)))


def _address(hex_address: str) -> str:
    """`0100007F:1F90` (as /proc/net/tcp writes it) to `127.0.0.1:8080`."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[index : index + 4][::-1] for index in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    return f"{ip}:{int(port, 16)}" if ip.version == 4 else f"[{ip}]:{int(port, 16)}"


def marked_processes() -> list[StackProcess]:
    """Every running process (of this user) that carries a local stack's marker."""
    prefix = f"{OWNER_VARIABLE}=".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        owner = next((item[len(prefix) :] for item in environ.split(b"\0") if item.startswith(prefix)), None)
        stat = _stat(int(entry.name))
        if owner is None or stat is None or stat[0] in "ZX":
            continue
        pid = int(entry.name)
        found.append(StackProcess(pid, stat[1], owner.decode(), _name(pid), listening_addresses(pid)))
    return found


def leftovers(detached_dirs: Sequence[Path] = (), crashed_runs: bool = True) -> list[StackProcess]:
    """Marked processes to stop: those of a detached cluster in one of `detached_dirs`; and with
    `crashed_runs`, those nobody will stop any more: their owner is gone, or they belong to a detached
    cluster whose state directory no longer exists. A live owner's processes are never included."""
    detached = {DETACHED_PREFIX + str(Path(directory).resolve()) for directory in detached_dirs}
    found = []
    for process in marked_processes():
        if process.owner in detached:
            found.append(process)
        elif not crashed_runs:
            continue
        elif process.owner.startswith(DETACHED_PREFIX):
            if not Path(process.owner[len(DETACHED_PREFIX) :]).exists():
                found.append(process)
        elif not owner_alive(process.owner):
            found.append(process)
    return found


def stop(processes: Sequence[StackProcess], grace: float = 10.0) -> list[StackProcess]:
    """SIGTERM each process (and its process group when it leads one), SIGKILL what is left after `grace`
    seconds, and return once all are gone (at most `grace` + 10 s); returns those that were still running."""
    targets = [process for process in processes if running(process.pid, process.start_time)]
    for process in targets:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(running(p.pid, p.start_time) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in targets:
        _signal(process, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(running(p.pid, p.start_time) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    return targets


def _signal(process: StackProcess, signum: int) -> None:
    if not running(process.pid, process.start_time):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The local stack's warden (started by modelrollout.lifetime)")
    parser.add_argument("--warden", required=True, metavar="OWNER", help="the owner's marker, <pid>:<start time>")
    parser.add_argument("--lifeline", required=True, type=int, help="read end of the owner's pipe")
    args = parser.parse_args(argv)
    _watch(args.warden, args.lifeline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
