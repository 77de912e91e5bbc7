"""Following a rollout as it happens: what the operator reports, beside what the clients really got.

Three kinds of lines:
- the operator's: phase, the weights it reports, its message (printed when any of them changes);
- each analysis measurement, once;
- the clients': each model version's share of the answers the load generator got over the last
  `WINDOW` seconds, as stable / canary columns under the operator's weights, and the share of 5xx.

A clients' line covers only requests sent once Traefik serves what the operator reports: its API shows
the same weights and mirror, and the stable and canary Services' servers are pods of those revisions.
Before that the window would mix the previous split with the new one, and the comparison would say
nothing. Reading the status or Traefik's API may fail for a moment (the apiserver is busy): that is
retried until the caller's deadline, and the last error is part of the timeout's message.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s_client

from modelrollout.devcluster.realstack import RealStack
from modelrollout.kube.client import MODEL_DEPLOYMENT, POD, KubeClient, load_configuration
from modelrollout.modelserver.loadgen import CONNECTION_ERROR, LoadGenerator

WINDOW = 5.0  # seconds of answers in one clients' line
REPEAT = 10.0  # while nothing changes, a new clients' line this often
IN_FLIGHT = 0.5  # the newest requests may still be in flight: the window ends this long before now
PARTIAL = 2.0  # a split that lasted less than WINDOW still gets a line if it lasted this long
COUNTDOWN = re.compile(r"\d+s left")
POLL = 0.5
REVISION_LABEL = "modelrollout.io/revision"


class DemoFailed(Exception):
    """The story could not go on; `logs` are (component, log file) pairs worth showing."""

    def __init__(self, message: str, logs: list[tuple[str, Any]]):
        super().__init__(message)
        self.logs = logs


@dataclass(frozen=True)
class Config:
    """The weights and revisions the operator reports: what a clients' line is compared with."""

    stable: int | None
    canary: int | None
    mirror: int | None
    stable_revision: str | None
    canary_revision: str | None


@dataclass(frozen=True)
class Served:
    """What Traefik serves for the ModelDeployment right now, from its own API."""

    stable: int | None
    canary: int | None
    mirror: int
    stable_servers: frozenset[str]
    canary_servers: frozenset[str]


@dataclass
class Follower:
    stack: RealStack
    namespace: str
    name: str
    versions: dict[str, str]  # revision -> model version
    started: float
    clients: LoadGenerator | None = None
    status: dict = field(default_factory=dict)
    _kube: KubeClient | None = None
    _shown: str | None = None
    _printed: set = field(default_factory=set)
    _config: Config | None = None  # what Traefik must serve
    _applied_at: float | None = None  # since when it does
    _confirmed_at: float | None = None  # when it last did
    _clients_at: float = 0.0  # when the last clients' line was printed
    _settled: bool = False  # a clients' line was printed for the current configuration
    _last_error: str = ""

    def __post_init__(self) -> None:
        configuration = load_configuration(str(self.stack.cluster.kubeconfig))
        self._kube = KubeClient(k8s_client.ApiClient(configuration), timeout=5.0)

    def close(self) -> None:
        if self._kube is not None:
            self._kube.close()

    # --- reading ------------------------------------------------------------------------------------------

    def _read_status(self) -> dict | None:
        try:
            body = self._kube.get(MODEL_DEPLOYMENT, self.namespace, self.name)
        except Exception as error:  # noqa: BLE001 - transient (apiserver busy): retried until the deadline
            self._last_error = f"reading the ModelDeployment: {error}"
            return None
        return (body or {}).get("status") or {}

    def _pod_ips(self) -> dict[str, set[str]]:
        ips: dict[str, set[str]] = {}
        for pod in self._kube.list(POD, self.namespace):
            revision = (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)
            ip = (pod.get("status") or {}).get("podIP")
            if revision and ip:
                ips.setdefault(revision, set()).add(ip)
        return ips

    def _served(self) -> Served:
        with urllib.request.urlopen(f"{self.stack.traefik.api_url}/http/services", timeout=5) as response:
            services = {service["name"]: service for service in json.load(response)}
        prefix = f"{self.namespace}-{self.name}"
        weights = {
            member["name"]: member.get("weight", 1)
            for member in ((services.get(f"{prefix}-split@kubernetescrd") or {}).get("weighted") or {}).get(
                "services", []
            )
        }
        mirrors = ((services.get(f"{prefix}@kubernetescrd") or {}).get("mirroring") or {}).get("mirrors") or []

        def member(track: str) -> tuple[int | None, frozenset[str]]:
            names = [name for name in weights if name.startswith(f"{prefix}-{track}-")]
            if not names:
                return None, frozenset()
            balancer = (services.get(f"{names[0]}@kubernetescrd") or {}).get("loadBalancer") or {}
            hosts = {server["url"].split("//", 1)[-1].rsplit(":", 1)[0] for server in balancer.get("servers", [])}
            return weights[names[0]], frozenset(hosts)

        (stable, stable_servers), (canary, canary_servers) = member("stable"), member("canary")
        mirror = sum(int(m.get("percent", 0)) for m in mirrors if f"{self.name}-canary" in m.get("name", ""))
        return Served(stable, canary, mirror, stable_servers, canary_servers)

    def _serving_as_reported(self, status: dict) -> bool:
        """Traefik serves the reported weights and mirror, each to pods of the reported revision only."""
        weights = status.get("weights") or {}
        canary, mirror = weights.get("canary", 0), weights.get("mirror", 0)
        stable = weights.get("stable", 100 - canary)
        served = self._served()
        if (served.stable, served.canary, served.mirror) != (stable, canary, mirror):
            return False
        ips = self._pod_ips()
        routes = [(stable, served.stable_servers, status.get("stableRevision"))]
        routes.append((canary + mirror, served.canary_servers, status.get("canaryRevision")))
        return all(
            servers and servers <= ips.get(revision or "", set()) for share, servers, revision in routes if share
        )

    def _mirrored_per_second(self, revision: str) -> float | None:
        """Requests per second the shadow's servers counted themselves (MLServer's counter, via Prometheus)."""
        query = (
            f'sum(rate(rest_server_requests_total{{namespace="{self.namespace}",revision="{revision}",'
            f'path=~"/v2/models/.+/infer"}}[{WINDOW:.0f}s]))'
        )
        url = f"{self.stack.prometheus.url}/api/v1/query?query={urllib.parse.quote(query)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                result = json.load(response)["data"]["result"]
        except (OSError, ValueError, KeyError):
            return None
        return float(result[0]["value"][1]) if result else None

    # --- printing -------------------------------------------------------------------------------------------

    def _stamp(self) -> str:
        return f"  [{time.monotonic() - self.started:6.1f}s]"

    def _print_status(self, status: dict) -> None:
        weights = status.get("weights")
        if weights is None:
            split = "no traffic yet"
        else:
            split = f"stable {weights.get('stable', 0):>3}%    canary {weights.get('canary', 0):>3}%"
        if weights and weights.get("mirror"):
            split += f"   mirror {weights['mirror']}% to the shadow"
        line = f"{status.get('phase', 'Pending'):<11} operator   {split}   {status.get('message', '')}".rstrip()
        # A countdown ("4s left") changes every second: only its first value is worth a line.
        key = COUNTDOWN.sub("…", line)
        if key != self._shown:
            print(f"{self._stamp()} {line}", flush=True)
            self._shown = key
        for run in status.get("analysisRuns") or []:
            for metric in run.get("metrics", []):
                for measured in metric.get("measurements") or []:
                    seen = (run["key"], metric["name"], measured.get("time", ""))
                    if seen not in self._printed:
                        self._printed.add(seen)
                        value = measured.get("value", "no data")
                        print(
                            f"{'':24}measured {metric['name']:<29} {value:>22}  {measured.get('phase', '')}",
                            flush=True,
                        )

    def clients_line(self, config: Config, since: float, until: float, partial: bool = False) -> str:
        """The clients' line for requests sent in [since, until] (monotonic times) under `config`; `partial`:
        that is all the time Traefik served `config`."""
        answers = [a for a in self.clients.snapshot().answers if since <= a.at - a.seconds <= until]
        answered = [a for a in answers if a.status != CONNECTION_ERROR]
        versions = Counter(a.version for a in answered if 200 <= a.status < 300)
        errors = sum(1 for a in answered if a.status >= 500)
        total = len(answered) or 1
        stable = versions[self.versions.get(config.stable_revision or "", "")]
        canary = versions[self.versions.get(config.canary_revision or "", "")]
        shares = f"stable {100 * stable / total:5.1f}%  canary {100 * canary / total:5.1f}%"
        detail = ", ".join(f"{version}: {count}" for version, count in sorted(versions.items()))
        if errors:
            detail += f", 5xx: {errors}"
        lost = len(answers) - len(answered)
        if lost:
            detail += f", no answer: {lost}"
        line = (
            f"{'':<11} clients    {shares}   5xx {100 * errors / total:4.1f}%"
            f"   ({'all' if partial else 'last'} {until - since:.0f}s at this split, {len(answered)} answers: {detail})"
        )
        if config.mirror and config.canary_revision:
            rate = self._mirrored_per_second(config.canary_revision)
            if rate is not None:
                line += f"; the shadow's servers counted {rate:.1f} requests/s"
        return line

    def _track(self, status: dict) -> None:
        """Before the status line: a new configuration first closes the clients' view of the old one."""
        weights = status.get("weights") or {}
        config = Config(
            weights.get("stable"),
            weights.get("canary"),
            weights.get("mirror"),
            status.get("stableRevision"),
            status.get("canaryRevision"),
        )
        if config == self._config:
            return
        old, applied, confirmed = self._config, self._applied_at, self._confirmed_at
        if self.clients and old and not self._settled and applied and confirmed and confirmed - applied >= PARTIAL:
            # It changed before a full window: what the clients got while Traefik served it is still worth a line.
            print(f"{self._stamp()} {self.clients_line(old, applied, confirmed, partial=True)}", flush=True)
        self._config, self._applied_at, self._confirmed_at, self._settled = config, None, None, False

    def _observe_clients(self, status: dict) -> None:
        """After the status line: a clients' line once a full window was served as reported (then every REPEAT)."""
        if self.clients is None or self._config is None:
            return
        now = time.monotonic()
        try:
            if self._serving_as_reported(status):
                self._applied_at = self._applied_at or now
                self._confirmed_at = now
        except Exception as error:  # noqa: BLE001 - Traefik's API or the apiserver busy: next poll
            self._last_error = f"reading what Traefik serves: {error}"
        if self._applied_at is None or self._confirmed_at is None:
            return
        until = min(now - IN_FLIGHT, self._confirmed_at)
        since = until - WINDOW
        if since < self._applied_at or (self._settled and now - self._clients_at < REPEAT):
            return
        print(f"{self._stamp()} {self.clients_line(self._config, since, until)}", flush=True)
        self._clients_at, self._settled = now, True

    # --- following -----------------------------------------------------------------------------------------

    def follow(self, done: Callable[[dict], bool], what: str, timeout: float = 300.0) -> dict:
        """Print every change until `done(status)` and, once clients send, a clients' line measured after
        Traefik serves that final state; DemoFailed names what did not happen (or which component died)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_components(what)
            status = self._read_status()
            if status is not None:
                self.status = status
                self._track(status)
                self._print_status(status)
                self._observe_clients(status)
                if done(status) and (self.clients is None or self._settled):
                    return status
            time.sleep(POLL)
        raise DemoFailed(self._timeout_message(what, timeout), self._logs_for_timeout())

    def wait_served(self, what: str, timeout: float = 120.0) -> None:
        """Until Traefik serves what the operator reports (before clients start: no 404 or 503 for them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_components(what)
            status = self._read_status()
            if status is not None:
                self.status = status
                try:
                    if self._serving_as_reported(status):
                        return
                except Exception as error:  # noqa: BLE001 - retried until the deadline
                    self._last_error = f"reading what Traefik serves: {error}"
            time.sleep(POLL)
        raise DemoFailed(self._timeout_message(what, timeout), [("traefik", self.stack.traefik.log)])

    def _check_components(self, what: str) -> None:
        failed = self.stack.failed()
        if failed is not None:
            name, how, log = failed
            raise DemoFailed(f"{name} {how} while waiting for {what}", [(name, log)])

    def _timeout_message(self, what: str, timeout: float) -> str:
        status = self.status
        message = (
            f"{what} did not happen within {timeout:.0f}s; the ModelDeployment is {status.get('phase', 'unknown')}:"
            f" {status.get('message', '')}"
        )
        if self._last_error:
            message += f"\nlast error: {self._last_error}"
        return message

    def _logs_for_timeout(self) -> list[tuple[str, Any]]:
        """The operator decides what happens next; the harness says whether model servers started."""
        return [("operator", self.stack.operator_log), ("model-server harness", self.stack.harness.log)]
