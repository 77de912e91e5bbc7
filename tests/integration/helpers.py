"""Helpers shared by the integration tests: apply and read ModelDeployments, run the plugin."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import yaml

from tests.integration.conftest import REPO, get_json, wait_for

SAMPLE = REPO / "manifests" / "samples" / "fraud-scorer.yaml"


def sample(**spec_overrides) -> dict:
    body = yaml.safe_load(SAMPLE.read_text())
    body["spec"].update(copy.deepcopy(spec_overrides))
    return body


def with_version(body: dict, version: str) -> dict:
    changed = copy.deepcopy(body)
    changed["spec"]["model"]["version"] = version
    return changed


def apply(control_plane, namespace: str, body: dict):
    return control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)


def md(control_plane, namespace: str, name: str = "fraud-scorer") -> dict | None:
    return get_json(control_plane, "modeldeployment", name, "-n", namespace)


def owned_deployments(control_plane, namespace: str, name: str = "fraud-scorer") -> list[dict]:
    listing = get_json(control_plane, "deployments", "-n", namespace, "-l", f"modelrollout.io/deployment={name}")
    return listing["items"]


def replicas_by_revision(control_plane, namespace: str, name: str = "fraud-scorer") -> dict[str, int]:
    return {
        d["metadata"]["labels"]["modelrollout.io/revision"]: d["spec"]["replicas"]
        for d in owned_deployments(control_plane, namespace, name)
    }


def condition(body: dict | None, kind: str) -> dict:
    for found in (body or {}).get("status", {}).get("conditions", []):
        if found["type"] == kind:
            return found
    return {}


def current(body: dict | None) -> bool:
    return bool(body) and body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]


def healthy(control_plane, namespace: str, name: str = "fraud-scorer") -> dict | None:
    body = md(control_plane, namespace, name)
    return body if current(body) and condition(body, "Ready").get("status") == "True" else None


def wait_status(control_plane, namespace: str, predicate, what: str, name: str = "fraud-scorer", timeout=90.0) -> dict:
    """Poll the ModelDeployment until `predicate(status)` holds for the current generation."""

    seen: dict = {}

    def check():
        body = md(control_plane, namespace, name)
        seen["status"] = (body or {}).get("status")
        return body if current(body) and predicate(body["status"]) else None

    try:
        return wait_for(check, timeout=timeout, what=what)
    except TimeoutError as error:
        status = seen.get("status") or {}
        shown = {key: status.get(key) for key in ("phase", "message", "abort", "currentStepIndex", "analysisRuns")}
        raise TimeoutError(f"{error}; last status: {json.dumps(shown)[:3000]}") from None


def events(control_plane, namespace: str, name: str = "fraud-scorer") -> list[dict]:
    return get_json(
        control_plane, "events.events.k8s.io", "-n", namespace, "--field-selector", f"regarding.name={name}"
    )["items"]


def plugin(control_plane, *args: str) -> subprocess.CompletedProcess:
    """Run `kubectl modelrollout ...` through kubectl's plugin discovery, as a person would."""
    env = dict(os.environ, KUBECONFIG=str(control_plane.kubeconfig))
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(control_plane.binaries.kubectl), "modelrollout", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def start_canary(control_plane, namespace: str, body: dict, version: str = "v2") -> tuple[str, str]:
    """Deploy `body`, wait until Ready, apply the next model version, wait for its first pause.

    Returns (stable revision, canary revision).
    """
    assert apply(control_plane, namespace, body).returncode == 0
    stable = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    assert apply(control_plane, namespace, with_version(body, version)).returncode == 0
    paused = wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", f"{version} at its first pause")
    return stable, paused["status"]["canaryRevision"]
