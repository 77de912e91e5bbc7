"""Run the traffic simulator as its own process (like a real model server), and drive it over HTTP.

`python -m modelrollout.simulator.process --port N` serves /metrics and the control API
(PUT/DELETE /revisions/<namespace>/<revision>). `SimulatorProcess` starts one on loopback and sets
behaviours through that API, so scrapes never wait on the caller's threads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from dataclasses import asdict

from modelrollout.devcluster.cluster import free_port, wait_until
from modelrollout.simulator.exporter import Behaviour, TrafficSimulator


class SimulatorProcess:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "modelrollout.simulator.process", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._ready, 30, "the traffic simulator")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        if self._popen.poll() is not None:
            raise RuntimeError(f"the traffic simulator exited with {self._popen.returncode}")
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=2) as response:
            return response.status == 200

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
        self._popen.terminate()
        try:
            self._popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(timeout=10)


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
