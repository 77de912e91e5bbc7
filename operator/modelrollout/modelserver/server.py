"""One MLServer process serving one pod: its folder, its process group, its readiness probe.

Each server runs in its own session (process group), so stopping it (TERM, then KILL after a grace
period) also ends MLServer's parallel worker. Should the harness die first, the server dies with it, and
its worker (which ignores SIGTERM) is ended by the stack's warden (`modelrollout.lifetime`). Its output
goes to `<folder>/mlserver.log`, shown when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from modelrollout import lifetime
from modelrollout.modelserver.models import ModelStore
from modelrollout.modelserver.settings import ServerSpec, write_folder


def _child_env() -> dict[str, str]:
    """The harness's environment without anything that would steer MLServer besides its files."""
    drop = ("MLSERVER_", "PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH", "VIRTUAL_ENV")
    return {key: value for key, value in os.environ.items() if not key.startswith(drop)}


@dataclass
class ModelServer:
    """A started MLServer for `spec`; `ready()` probes it, `stop()` ends it."""

    spec: ServerSpec
    folder: Path
    popen: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    ready_at: float | None = None

    @property
    def log(self) -> Path:
        return self.folder / "mlserver.log"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def ready(self, timeout: float = 1.0) -> bool:
        """MLServer's own readiness (server up and every model loaded); False on any error."""
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(f"{self.spec.base_url}/v2/health/ready", timeout=timeout) as response:
                ok = response.status == 200
        except (OSError, urllib.error.URLError):
            return False
        if ok and self.ready_at is None:
            self.ready_at = time.monotonic()
        return ok

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        # The worker may outlive a main process that died on its own: end the whole group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def start(spec: ServerSpec, folder: Path, store: ModelStore, feature_names: list[str], executable: Path) -> ModelServer:
    """Write the server's folder and start `executable start` (MLServer's CLI) on it; returns at once,
    poll `ready()`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_folder(spec, folder, store.artifact(spec.behaviour.artifact), feature_names)
    log = folder / "mlserver.log"
    with log.open("ab") as out:
        popen = lifetime.popen(
            [str(executable), "start", str(folder)],
            cwd=folder,
            env=_child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    return ModelServer(spec, folder, popen)
