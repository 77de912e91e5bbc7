"""Run the traffic simulator as its own process (like a real model server), and drive it over HTTP.

`python -m modelrollout.simulator.process --port N` serves /metrics and the control API
(PUT/DELETE /revisions/<namespace>/<revision>). `SimulatorProcess` starts one on loopback and sets
behaviours through that API, so scrapes never wait on the caller's threads.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict

from modelrollout import lifetime
from modelrollout.simulator.exporter import Behaviour, TrafficSimulator

READY_SECONDS = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SimulatorProcess:
    """The simulator as a child process; the local stack (devcluster) runs it, so it imports nothing from there."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._popen = lifetime.popen(
            [sys.executable, "-m", "modelrollout.simulator.process", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_SECONDS
        while not self._ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {READY_SECONDS}s waiting for the traffic simulator")
            time.sleep(0.2)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        if self._popen.poll() is not None:
            raise RuntimeError(f"the traffic simulator exited with {self._popen.returncode}")
        try:
            with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=2) as response:
                return response.status == 200
        except OSError:  # not listening yet
            return False

    def set(self, namespace: str, revision: str, behaviour: Behaviour) -> None:
        request = urllib.request.Request(
            f"http://{self.address}/revisions/{namespace}/{revision}",
            method="PUT",
            data=json.dumps(asdict(behaviour)).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).read()

    def remove(self, namespace: str, revision: str) -> None:
        request = urllib.request.Request(f"http://{self.address}/revisions/{namespace}/{revision}", method="DELETE")
        urllib.request.urlopen(request, timeout=5).read()

    def stop(self) -> None:
        lifetime.terminate(self._popen, grace=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Traffic simulator (a stand-in for model servers; tests and demo only)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    TrafficSimulator(args.host, args.port).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
