"""The Argo CD health check (Lua, run by Lua 5.1 like Argo CD's gopher-lua) on statuses the real core produces."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.world import World, make_spec

HEALTH = Path(__file__).resolve().parents[2] / "manifests" / "gitops" / "argocd-health.lua"


def lua_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value if v is not None) + "}"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items() if v is not None) + "}"
        )
    raise TypeError(value)


def health(obj: dict) -> tuple[str, str]:
    script = "\n".join(
        [
            f"obj = {lua_literal(obj)}",
            f"local hs = dofile({lua_literal(str(HEALTH))})",
            "io.write(hs.status, '\\t', hs.message or '')",
        ]
    )
    result = subprocess.run(["lua5.1", "-"], input=script, capture_output=True, text=True, check=True)
    status, _, message = result.stdout.partition("\t")
    return status, message


def md(status: dict | None, generation: int = 1) -> dict:
    body = {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "generation": generation},
        "spec": {},
    }
    if status is not None:
        body["status"] = status
    return body


def status_in(phase: str) -> dict:
    world = World(make_spec())
    world.run()
    if phase == "Healthy":
        return world.status
    world.spec = make_spec(version="2")
    world.run()
    if phase == "Progressing":
        return world.status
    if phase == "Paused":
        world.advance(601)
        return world.run().status
    world.ask("abort")
    return world.status


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("Healthy", "Healthy"), ("Progressing", "Progressing"), ("Paused", "Suspended"), ("Degraded", "Degraded")],
)
def test_each_phase_maps_to_an_argo_health(phase, expected):
    status = status_in(phase)
    assert status["phase"] == phase
    got, message = health(md(status))
    assert got == expected
    assert message == status["message"]


def test_no_status_or_a_stale_generation_is_progressing():
    assert health(md(None)) == ("Progressing", "Waiting for the modelrollout operator")
    assert health(md(status_in("Healthy"), generation=2)) == (
        "Progressing",
        "Waiting for the operator to see generation 2",
    )
