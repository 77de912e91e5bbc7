"""The wheel: `pip wheel . --no-deps` builds it from a copy of the sources, it installs into a clean venv with
its dependencies resolved from its own metadata (offline, from the wheelhouse `dev-cluster build` fills), and
from there, outside the source tree, the console scripts work and the installed operator and kubectl plugin
run a canary on the local control plane. The operator and plugin read no file at run time (the CRDs, the
analysis templates and the samples are applied by people, or read by the repo-bound dev tooling), so
importing every module and running the operator from the install is what proves nothing is missing."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import modelrollout
from modelrollout.devcluster.wheelhouse import MARKER, wheelhouse_dir
from tests.integration.conftest import REPO, wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    apply,
    healthy,
    operator_process,
    revision_of,
    sample,
    wait_status,
    with_version,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Loaded by MLServer from a model's folder (modelserver.settings copies it there), never imported as package.
NOT_PACKAGE_MODULES = {"modelrollout.modelserver.runtime"}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # a directory with no sources in it: the working directory of every command

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run(
            args, cwd=self.outside, env=env, capture_output=True, text=True, timeout=120, check=False, **kwargs
        )


def _pip(*args: str, cwd: Path, python: str = sys.executable) -> None:
    """pip offline: only the wheelhouse and what it is given (no index, no PIP_FIND_LINKS of the machine)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run([python, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"pip {' '.join(args)} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    wheelhouse = wheelhouse_dir()
    if not (wheelhouse / MARKER).is_file():
        pytest.fail(
            f"no wheelhouse at {wheelhouse}: run `modelrollout dev-cluster build` (outside the private network)"
        )
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so the build's build/ and egg-info never land in the shared work tree.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    )
    dist = work / "dist"
    _pip("wheel", str(source), "--no-deps", "--no-index", "--find-links", str(wheelhouse), "-w", str(dist), cwd=work)
    (wheel,) = dist.glob("*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no --system-site-packages
    _pip(
        "install", "--no-index", "--find-links", str(wheelhouse), str(wheel), cwd=work, python=str(venv / "bin/python")
    )
    outside = work / "elsewhere"
    outside.mkdir()
    return Installed(wheel, venv, outside)


def test_wheel_holds_the_package_and_its_metadata(installed):
    version = PYPROJECT["project"]["version"]
    assert installed.wheel.name == f"modelrollout-{version}-py3-none-any.whl"
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        info = f"modelrollout-{version}.dist-info"
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    package = REPO / "operator" / "modelrollout"
    # Every file of the package, not only modules: a data file added later (a YAML the code loads) needs
    # [tool.setuptools.package-data] in pyproject.toml, or it is silently left out.
    sources = {
        f"modelrollout/{path.relative_to(package)}"
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert sources - names == set(), "files of the package missing from the wheel (package data in pyproject.toml?)"
    assert not [name for name in names if name.startswith("tests/") or "__pycache__" in name or name.endswith(".pyc")]
    assert {name.split("/")[0] for name in names} == {"modelrollout", info}
    assert "modelrollout = modelrollout.cli:main" in entry_points
    assert "kubectl-modelrollout = modelrollout.plugin:main" in entry_points
    required = {
        str(Requirement(line.removeprefix("Requires-Dist: ")))
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    }
    assert required == {str(Requirement(dependency)) for dependency in PYPROJECT["project"]["dependencies"]}


def test_console_scripts_and_every_module_work_from_the_install(installed):
    version = installed.run("modelrollout", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"modelrollout {PYPROJECT['project']['version']}"
    plugin_help = installed.run("kubectl-modelrollout", "--help")
    assert plugin_help.returncode == 0 and "usage: kubectl modelrollout" in plugin_help.stdout
    assert "promote" in plugin_help.stdout
    run_help = installed.run("modelrollout", "run", "--help")
    assert run_help.returncode == 0 and "--namespace" in run_help.stdout
    # The installed package, not this tree: -I ignores PYTHONPATH, the user site and the working directory.
    where = installed.run(
        str(installed.venv / "bin/python"), "-I", "-c", "import modelrollout; print(modelrollout.__file__)"
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout + where.stderr
    modules = sorted(
        module.name
        for module in pkgutil.walk_packages(modelrollout.__path__, "modelrollout.")
        if module.name not in NOT_PACKAGE_MODULES
    )
    script = (
        "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint(len(sys.argv) - 1)"
    )
    imported = installed.run(str(installed.venv / "bin/python"), "-I", "-c", script, *modules)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == str(len(modules))


def test_installed_operator_and_plugin_roll_out_a_model(installed, control_plane, namespace, tmp_path):
    """The operator from the wheel (its console script, in a pod's command line) reconciles a canary, and the
    plugin from the wheel, found by kubectl on PATH, reports it."""
    first = sample(replicas=2, strategy={"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}})
    second = with_version(first, NEXT_VERSION)
    with operator_process(
        str(installed.venv / "bin" / "modelrollout"),
        "http://127.0.0.1:9",  # no analysis in these steps: Prometheus is never asked
        str(control_plane.kubeconfig),
        str(tmp_path / "operator.log"),
        namespaces=(namespace,),
        env={"POD_ID": f"wheel-test-{namespace}"},
        cwd=str(installed.outside),
    ) as operator:
        wait_for(lambda: operator.metric("modelrollout_leader") == 1, what="the installed operator active")
        assert apply(control_plane, namespace, first).returncode == 0
        wait_for(lambda: healthy(control_plane, namespace), what="first Ready, reconciled by the installed operator")
        assert apply(control_plane, namespace, second).returncode == 0
        wait_status(
            control_plane,
            namespace,
            lambda s: s["phase"] == "Healthy" and s["stableRevision"] == revision_of(second),
            "the canary promoted by the installed operator",
        )
        # KUBECONFIG is the control plane's (the session fixture sets it); the venv's bin/ comes first on PATH.
        kubectl = str(control_plane.binaries.kubectl)
        status = installed.run(kubectl, "modelrollout", "status", "fraud-scorer", "-n", namespace)
    assert status.returncode == 0, status.stderr
    assert "Healthy" in status.stdout and revision_of(second) in status.stdout
