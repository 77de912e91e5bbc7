"""A real Prometheus server (Debian's package) on loopback, scraping given targets every second.

Used by the tests and the demo. Alerting rules are evaluated by the server itself, so the ALERTS
series the operator polls is real.

Optionally it also discovers real model servers the way it would in a cluster: `kubernetes_sd_configs`
(role pod) against the local apiserver, scraping each pod's container port named `metrics` and labelling
every series with `namespace`, `pod`, `revision` (pod label modelrollout.io/revision), `model_name` and
`model_version` (pod labels). Metric names and their own labels stay as the server exports them.

Debian's Prometheus is built without Kubernetes discovery (`field kubernetes_sd_configs not found`), so
that job runs upstream Prometheus, built once from the Go module proxy with only the Kubernetes discovery
mechanism (build tags `remove_all_sd,enable_kubernetes_sd`) and cached like the control plane. Callers
that scrape static targets only keep Debian's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelrollout import lifetime
from modelrollout.devcluster import versions
from modelrollout.devcluster.build import cache_root, go_run, install_atomically, is_complete
from modelrollout.devcluster.cluster import Cluster, Process, free_port, wait_until

STATIC_JOB = "models"
PODS_JOB = "model-servers"
KUBERNETES_SD_TAGS = "remove_all_sd,enable_kubernetes_sd"  # file and http discovery are always built in


@dataclass
class Prometheus:
    process: Process
    port: int
    workdir: Path
    target_count: int = 0
    executable: str | None = None  # None: Debian's

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start on the same port and data (for outage tests)."""
        self.process.stop()
        self.process = _launch(self.workdir, self.port, self.executable or binary())
        _wait_ready(self, timeout)


def binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise FileNotFoundError(
            "prometheus is not installed: apt-get install prometheus (see .ci/install-system-packages)"
        )
    return found


def kubernetes_sd_binary(root: Path | None = None) -> Path:
    """Upstream Prometheus with Kubernetes discovery, built once into `<cache>/bin/prometheus-<version>/`."""
    root = root or cache_root()
    version = versions.PROMETHEUS
    final = root / "bin" / f"prometheus-{version}"
    if is_complete(final, ("prometheus",)):
        return final / "prometheus"
    work = root / "build" / f"prometheus-{version}"
    staging = work / "out"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.monotonic()
    module = f"github.com/prometheus/prometheus/cmd/prometheus@{version}"
    install = ["go", "install", "-trimpath", "-tags", KUBERNETES_SD_TAGS, "-ldflags", "-s -w", module]
    try:
        go_run(install, work, root / "build.log", extra_env={"GOBIN": str(staging)})
    except RuntimeError as error:
        raise RuntimeError(
            f"building Prometheus {version} (for kubernetes_sd_configs) failed: {error}\n"
            "Inside the private network nothing can be downloaded: build it first, outside, with "
            "`modelrollout dev-cluster build` (or `python -m modelrollout.devcluster.prometheus`)."
        ) from error
    install_atomically(staging, final)
    print(f"modelrollout: built Prometheus {version} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return final / "prometheus"


def _launch(workdir: Path, port: int, executable: str) -> Process:
    log = workdir / "prometheus.log"
    with log.open("ab") as out:
        popen = lifetime.popen(
            [
                executable,
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
        # Discovery hands targets to the scraper in batches (every 5s), well after /-/ready. Only the static
        # targets are counted: discovered pods come and go, and a starting model server is down for a while.
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/targets?state=active", timeout=2) as response:
            targets = json.load(response)["data"]["activeTargets"]
        static = [target for target in targets if target.get("scrapePool") == STATIC_JOB]
        return all(target.get("health") == "up" for target in static) and len(static) == prometheus.target_count

    wait_until(scraping, timeout, "Prometheus to scrape every target")


def pods_job(cluster: Cluster, token_file: Path, namespaces: list[str] | None = None) -> dict:
    """The scrape job for model-server pods, discovered through the apiserver (see the module docstring)."""
    discovery: dict = {
        "role": "pod",
        "api_server": cluster.server,
        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
        "tls_config": {"ca_file": str(cluster.ca_file)},
    }
    if namespaces:
        discovery["namespaces"] = {"names": namespaces}
    label = "__meta_kubernetes_pod_label_"

    def copy(source: str, target: str) -> dict:
        return {"source_labels": [source], "regex": "(.+)", "target_label": target, "replacement": "$1"}

    return {
        "job_name": PODS_JOB,
        # MLServer's own model_version (the version that answered) wins over the pod label's.
        "honor_labels": True,
        "kubernetes_sd_configs": [discovery],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            copy("__meta_kubernetes_namespace", "namespace"),
            copy("__meta_kubernetes_pod_name", "pod"),
            copy(f"{label}modelrollout_io_revision", "revision"),
            copy(f"{label}modelrollout_io_model_name", "model_name"),
            copy(f"{label}modelrollout_io_model_version", "model_version"),
        ],
    }


def start(
    targets: list[str],
    rules: list[dict] | None = None,
    timeout: float = 60.0,
    pods_of: Cluster | None = None,
    namespaces: list[str] | None = None,
) -> Prometheus:
    """Scrape the static `targets` and, with `pods_of`, the model-server pods of that cluster (of
    `namespaces` only, when given)."""
    workdir = Path(tempfile.mkdtemp(prefix="modelrollout-prometheus-"))
    config: dict = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": STATIC_JOB, "static_configs": [{"targets": targets}]}],
    }
    if pods_of is not None:
        token_file = workdir / "apiserver-token"
        token_file.write_text(pods_of.token)
        token_file.chmod(0o600)
        config["scrape_configs"].append(pods_job(pods_of, token_file, namespaces))
    if rules:
        (workdir / "rules.yml").write_text(yaml.safe_dump({"groups": rules}))
        config["rule_files"] = [str(workdir / "rules.yml")]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    executable = str(kubernetes_sd_binary()) if pods_of is not None else binary()
    port = free_port()
    prometheus = Prometheus(_launch(workdir, port, executable), port, workdir, len(targets), executable)
    try:
        _wait_ready(prometheus, timeout)
    except BaseException:
        prometheus.stop()
        raise
    return prometheus


if __name__ == "__main__":
    print(kubernetes_sd_binary())
