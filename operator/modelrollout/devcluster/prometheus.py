"""A real Prometheus server (Debian's package) on loopback, scraping given targets every second.

Used by the tests and the demo. Alerting rules are evaluated by the server itself, so the ALERTS
series the operator polls is real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelrollout.devcluster.cluster import Process, free_port, wait_until


@dataclass
class Prometheus:
    process: Process
    port: int
    workdir: Path
    target_count: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start on the same port and data (for outage tests)."""
        self.process.stop()
        self.process = _launch(self.workdir, self.port)
        _wait_ready(self, timeout)


def binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise FileNotFoundError(
            "prometheus is not installed: apt-get install prometheus (see .ci/install-system-packages)"
        )
    return found


def _launch(workdir: Path, port: int) -> Process:
    log = workdir / "prometheus.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [
                binary(),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Process("prometheus", popen, log)


def _wait_ready(prometheus: Prometheus, timeout: float) -> None:
    def ready() -> bool:
        if not prometheus.process.alive():
            raise RuntimeError(f"prometheus exited:\n{prometheus.process.log.read_text()[-3000:]}")
        with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
            return response.status == 200

    wait_until(ready, timeout, "Prometheus /-/ready")

    def scraping() -> bool:
        # Discovery hands targets to the scraper in batches (every 5s), well after /-/ready.
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/targets?state=active", timeout=2) as response:
            targets = json.load(response)["data"]["activeTargets"]
        return all(target.get("health") == "up" for target in targets) and len(targets) == prometheus.target_count

    wait_until(scraping, timeout, "Prometheus to scrape every target")


def start(targets: list[str], rules: list[dict] | None = None, timeout: float = 60.0) -> Prometheus:
    workdir = Path(tempfile.mkdtemp(prefix="modelrollout-prometheus-"))
    config: dict = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "models", "static_configs": [{"targets": targets}]}],
    }
    if rules:
        (workdir / "rules.yml").write_text(yaml.safe_dump({"groups": rules}))
        config["rule_files"] = [str(workdir / "rules.yml")]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = Prometheus(_launch(workdir, port), port, workdir, len(targets))
    try:
        _wait_ready(prometheus, timeout)
    except BaseException:
        prometheus.stop()
        raise
    return prometheus
