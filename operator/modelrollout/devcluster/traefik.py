"""Traefik as the local stack's real data plane: built from the Go module proxy, run outside the cluster.

Rules:
- Traefik's go.mod carries `replace` (and `exclude`) directives that only its own main module honours.
  A wrapper module copies them from the go.mod the proxy serves for the pinned release, never by hand.
- The binary lands in `<cache>/bin/traefik-<version>/`; a complete directory is a cache hit.
- It runs as a process on this host with the control plane's kubeconfig (no pod, no kube-proxy: it
  routes straight to EndpointSlice addresses, which are real inside the private network, see `netns`).
  Every port is on 127.0.0.1; the Gateway's listener port is the `web` entry point's port, because
  Traefik binds a listener to the entry point with that port.
- Its GatewayClass carries a label only this instance selects, so two Traefiks on one control plane
  (a test run beside the demo) never fight over each other's Gateways.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelrollout import lifetime
from modelrollout.devcluster import versions
from modelrollout.devcluster.build import (
    cache_root,
    go_env,
    go_run,
    install_atomically,
    is_complete,
    module_dir,
    module_info,
)
from modelrollout.devcluster.cluster import Cluster, Process, free_port, wait_until

MODULE = "github.com/traefik/traefik/v3"
COMMAND = f"{MODULE}/cmd/traefik"
VERSION_PACKAGE = f"{MODULE}/pkg/version"
CONTROLLER_NAME = "traefik.io/gateway-controller"  # fixed in Traefik's Gateway API provider
GATEWAY_API = "gateway.networking.k8s.io/v1"
INSTANCE_LABEL = "modelrollout.io/traefik"


def wrapper_gomod(traefik_gomod: Path, version: str) -> str:
    """The wrapper go.mod: upstream's go line, replaces and excludes, requiring Traefik at `version`.

    `go mod edit -json` parses upstream's file, so comments and block syntax need no regex of ours.
    """
    parsed = json.loads(
        subprocess.run(
            ["go", "mod", "edit", "-json", str(traefik_gomod)],
            env=go_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    replaces = parsed.get("Replace") or []
    if not replaces:
        raise ValueError(f"no replace directives in {traefik_gomod}: has Traefik {version} changed how it builds?")
    lines = ["module modelrollout.local/traefik-build", ""]
    if parsed.get("Go"):
        lines.append(f"go {parsed['Go']}")
    lines += ["", f"require {MODULE} {version}", "", "replace ("]
    for replace in replaces:
        old, new = replace["Old"], replace["New"]
        old_text = old["Path"] + (f" {old['Version']}" if old.get("Version") else "")
        if not new.get("Version"):
            raise ValueError(f"{traefik_gomod} replaces {old_text} with a local path; a wrapper cannot follow it")
        lines.append(f"\t{old_text} => {new['Path']} {new['Version']}")
    lines.append(")")
    excludes = parsed.get("Exclude") or []
    if excludes:
        lines += ["", "exclude ("]
        lines += [f"\t{exclude['Path']} {exclude['Version']}" for exclude in excludes]
        lines.append(")")
    return "\n".join(lines) + "\n"


def build_traefik(root: Path, log: Path) -> Path:
    """Build `cmd/traefik` at the pinned version into the cache (about 10 CPU-minutes cold)."""
    version = versions.TRAEFIK
    final = root / "bin" / f"traefik-{version}"
    if is_complete(final, ("traefik",)):
        return final / "traefik"
    work = root / "build" / f"traefik-{version}"
    work.mkdir(parents=True, exist_ok=True)
    info = module_info(MODULE, version, work, log)
    (work / "go.mod").write_text(wrapper_gomod(Path(info["GoMod"]), version))
    (work / "go.sum").unlink(missing_ok=True)
    go_run(["go", "get", f"{COMMAND}@{version}"], work, log)
    staging_dir = work / "out"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir()
    ldflags = f"-s -w -X {VERSION_PACKAGE}.Version={version} -X {VERSION_PACKAGE}.Codename=modelrollout"
    go_run(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(staging_dir / "traefik"), COMMAND],
        work,
        log,
    )
    install_atomically(staging_dir, final)
    return final / "traefik"


def ensure_traefik(root: Path | None = None) -> Path:
    """The Traefik binary, built first if the cache lacks it; prints how long a cold build took."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        binary = build_traefik(root, root / "build.log")
    except (RuntimeError, ValueError, subprocess.CalledProcessError) as error:
        raise RuntimeError(
            f"building Traefik {versions.TRAEFIK} from the Go module proxy failed (it needs the proxy, so run "
            f"`modelrollout dev-cluster build` outside the private network): {error}"
        ) from error
    elapsed = time.monotonic() - started
    if elapsed > 5:
        print(f"modelrollout: built Traefik {versions.TRAEFIK} in {elapsed:.0f}s (cache {root})", file=sys.stderr)
    return binary


def traefik_crds() -> list[Path]:
    """Traefik's own CRDs (IngressRoute, TraefikService, Middleware, ...) from its module's reference docs."""
    directory = module_dir(MODULE, versions.TRAEFIK) / "docs" / "content" / "reference" / "dynamic-configuration"
    crds = sorted(directory.glob("traefik.io_*.yaml"))
    if not any(path.name == "traefik.io_traefikservices.yaml" for path in crds):
        raise FileNotFoundError(f"no TraefikService CRD in {directory}")
    return crds


@dataclass
class Traefik:
    """A running Traefik: where clients, Prometheus and HTTPRoutes reach it. Call `stop()` when done."""

    cluster: Cluster
    process: Process
    workdir: Path
    web_port: int
    metrics_port: int
    ping_port: int
    gateway_name: str
    gateway_namespace: str
    gateway_class: str
    remove_workdir: bool = True

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def api_url(self) -> str:
        """Traefik's read-only API (`/api/http/services`, `/api/http/routers`): what it has applied."""
        return f"http://127.0.0.1:{self.ping_port}/api"

    @property
    def metrics_address(self) -> str:
        """host:port of `/metrics`, ready for a Prometheus static target."""
        return f"127.0.0.1:{self.metrics_port}"

    @property
    def log(self) -> Path:
        return self.process.log

    def parent_ref(self) -> dict:
        """The HTTPRoute `parentRefs` entry that attaches a route to this Traefik's Gateway."""
        return {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": self.gateway_name,
            "namespace": self.gateway_namespace,
        }

    def gateway_class_status(self) -> dict:
        result = self.cluster.kubectl("get", "gatewayclass", self.gateway_class, "-o", "json")
        return json.loads(result.stdout).get("status", {})

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""

    def stop(self, grace: float = 10.0) -> None:
        """TERM then KILL the process, and remove this instance's Gateway and GatewayClass if the cluster is up."""
        self.process.stop(grace)
        for args in (
            ("gateway", self.gateway_name, "-n", self.gateway_namespace),
            ("gatewayclass", self.gateway_class),
        ):
            self.cluster.kubectl(
                "delete", *args, "--ignore-not-found", "--wait=false", "--request-timeout=5s", check=False
            )
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Traefik:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def arguments(
    binary: Path, web_port: int, metrics_port: int, ping_port: int, instance: str, workdir: Path
) -> list[str]:
    """Static configuration as flags: both Kubernetes providers, loopback entry points, metrics, ping, API."""
    return [
        str(binary),
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
        f"--accesslog.filepath={workdir / 'access.log'}",
        f"--entryPoints.web.address=127.0.0.1:{web_port}",
        # IngressRoutes without entryPoints attach to the default ones: only `web`, never metrics or ping.
        "--entryPoints.web.asDefault=true",
        f"--entryPoints.metrics.address=127.0.0.1:{metrics_port}",
        f"--entryPoints.traefik.address=127.0.0.1:{ping_port}",
        "--ping=true",
        "--ping.entryPoint=traefik",
        # Its API on the same loopback port shows what Traefik applied (e.g. a split's weights), read-only.
        "--api.insecure=true",
        "--api.dashboard=false",
        "--metrics.prometheus=true",
        "--metrics.prometheus.entryPoint=metrics",
        "--metrics.prometheus.addServicesLabels=true",
        "--providers.kubernetesGateway=true",
        f"--providers.kubernetesGateway.labelSelector={INSTANCE_LABEL}={instance}",
        "--providers.kubernetesGateway.statusAddress.ip=127.0.0.1",
        "--providers.kubernetesCRD=true",
        "--providers.kubernetesCRD.allowCrossNamespace=true",
        # A TraefikService whose Service has no ready endpoint yet answers 503 instead of dropping the route.
        "--providers.kubernetesCRD.allowEmptyServices=true",
    ]


def gateway_objects(namespace: str, gateway: str, gateway_class: str, instance: str, port: int) -> list[dict]:
    """A GatewayClass for this instance and a Gateway whose HTTP listener takes routes from every namespace."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": GATEWAY_API,
            "kind": "GatewayClass",
            "metadata": {"name": gateway_class, "labels": {INSTANCE_LABEL: instance}},
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {
            "apiVersion": GATEWAY_API,
            "kind": "Gateway",
            "metadata": {"name": gateway, "namespace": namespace},
            "spec": {
                "gatewayClassName": gateway_class,
                "listeners": [
                    {"name": "web", "protocol": "HTTP", "port": port, "allowedRoutes": {"namespaces": {"from": "All"}}}
                ],
            },
        },
    ]


def start(
    cluster: Cluster,
    namespace: str = "modelrollout-gateway",
    gateway: str = "traefik",
    gateway_class: str | None = None,
    binary: Path | None = None,
    workdir: Path | None = None,
    timeout: float = 60.0,
) -> Traefik:
    """Start Traefik against `cluster` and return once it answers ping and its Gateway is Programmed.

    The cluster must already serve the Gateway API and Traefik CRDs (`routercrds.router_crds()`).
    """
    binary = binary or ensure_traefik()
    remove_workdir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="modelrollout-traefik-"))
    workdir.mkdir(parents=True, exist_ok=True)
    instance = secrets.token_hex(4)
    gateway_class = gateway_class or f"traefik-{namespace}"
    web_port, metrics_port, ping_port = free_port(), free_port(), free_port()
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    # Traefik prefers in-cluster configuration whenever these are set; it runs outside any cluster here.
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.pop("KUBERNETES_SERVICE_PORT", None)
    log = workdir / "traefik.log"
    with log.open("ab") as out:
        popen = lifetime.popen(
            arguments(binary, web_port, metrics_port, ping_port, instance, workdir),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
    process = Process("traefik", popen, log, popen.args)
    running = Traefik(
        cluster, process, workdir, web_port, metrics_port, ping_port, gateway, namespace, gateway_class, remove_workdir
    )
    try:
        _wait_ready(running, instance, timeout)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_ready(running: Traefik, instance: str, timeout: float) -> None:
    def until(check, what: str) -> None:
        # A dead Traefik ends the wait at once and fails with its log, instead of at the deadline.
        try:
            wait_until(lambda: not running.process.alive() or check(), timeout, what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; Traefik log {running.log}:\n{running.log_tail()}") from None
        if not running.process.alive():
            code = running.process.popen.returncode
            raise RuntimeError(
                f"traefik exited with {code} while waiting for {what}; log {running.log}:\n{running.log_tail()}"
            )

    def pinged() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{running.ping_port}/ping", timeout=2) as response:
            return response.status == 200

    until(pinged, "Traefik /ping")
    objects = gateway_objects(
        running.gateway_namespace, running.gateway_name, running.gateway_class, instance, running.web_port
    )
    running.cluster.kubectl_retrying("apply", "-f", "-", input="\n---\n".join(json.dumps(body) for body in objects))
    seen: dict = {}

    def programmed() -> bool:
        result = running.cluster.kubectl(
            "get", "gateway", running.gateway_name, "-n", running.gateway_namespace, "-o", "json"
        )
        seen["conditions"] = json.loads(result.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Programmed" and c["status"] == "True" for c in seen["conditions"])

    try:
        until(programmed, f"Gateway {running.gateway_namespace}/{running.gateway_name} Programmed")
    except TimeoutError as error:
        raise TimeoutError(f"{error}\nthe Gateway's conditions: {json.dumps(seen.get('conditions'))}") from None
