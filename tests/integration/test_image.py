"""The operator image that `dev-cluster build` made from the Dockerfile runs the operator, offline.

The image is unpacked from its cached OCI layout as a runtime would (layers in order, whiteouts, numeric
owners) and its own entry point runs in a chroot as the image's user, with the image's environment, on a
read-only bind of the root filesystem with a writable /tmp (the shipped pod sets readOnlyRootFilesystem and
mounts an emptyDir at /tmp). No network: the
build ran outside the private network; this needs only root, for chroot and for unpacking owners.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelrollout.devcluster import image

REPO = Path(__file__).resolve().parents[2]
# Loaded by MLServer from a model folder beside its sibling `behaviour.py`, never imported as part of the
# package (see its docstring), so it is not importable inside the operator image either.
NOT_PACKAGE_MODULES = {"modelrollout.modelserver.runtime"}
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys, modelrollout
skip = set(sys.argv[1:])
names = sorted(m.name for m in pkgutil.walk_packages(modelrollout.__path__, "modelrollout.") if m.name not in skip)
for name in names:
    importlib.import_module(name)
print(modelrollout.__file__)
print(len(names) + 1)
"""


@dataclass(frozen=True)
class Unpacked:
    built: image.Image
    rootfs: Path
    config: dict


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Iterator[Unpacked]:
    if os.geteuid() != 0:
        pytest.skip("unpacking the image's owners and chroot need root (the private network runs as root)")
    built = image.cached_image()
    if built is None:
        pytest.fail(
            f"no operator image is cached for this tree (expected {image.image_dir()}): run "
            f"`modelrollout dev-cluster build` outside the private network first (it needs PyPI)"
        )
    rootfs = tmp_path_factory.mktemp("image") / "rootfs"
    try:
        yield Unpacked(built, rootfs, image.unpack(built.layout, rootfs))
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)  # about 300 MB; pytest would keep three runs of it


def run_in_image(unpacked: Unpacked, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the image as its user, with only its environment, on a read-only root filesystem.

    /tmp is a fresh writable tmpfs, as the shipped Deployment mounts an emptyDir there: the operator needs
    one (providers/prometheus.py asks `tempfile.gettempdir()` at import, which fails with none writable).
    """
    settings = unpacked.config["config"]
    env = dict(item.split("=", 1) for item in settings["Env"])
    script = (
        'r="$1"; u="$2"; shift 2; '
        'mount --bind "$r" "$r" && mount -o remount,bind,ro "$r" && mount -t tmpfs -o mode=1777 tmpfs "$r/tmp" && '
        'exec chroot --userspec="$u" "$r" "$@"'
    )
    command = ["unshare", "--mount", "sh", "-c", script, "sh", str(unpacked.rootfs), settings["User"], *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_image_is_the_one_for_this_tree_and_says_how_it_runs(unpacked):
    settings = unpacked.config["config"]
    assert unpacked.built.layout == image.image_dir()
    assert unpacked.built.base_name == "docker.io/library/python:3.11-slim"
    assert settings["User"] == "65532:65532"
    assert settings["Entrypoint"] == ["modelrollout"]
    assert settings["Cmd"] == ["run"]
    assert any(item.startswith("PATH=/opt/modelrollout/bin:") for item in settings["Env"])
    # Installed into the venv the Dockerfile copies between stages, without the installer.
    venv = unpacked.rootfs / "opt" / "modelrollout"
    assert (venv / "bin" / "modelrollout").is_file()
    assert not (venv / "bin" / "pip").exists()
    assert not (unpacked.rootfs / "usr" / "local" / "local").exists()


def test_the_entry_point_runs_as_the_image_user(unpacked):
    settings = unpacked.config["config"]
    shown = run_in_image(unpacked, *settings["Entrypoint"], "--help")
    assert shown.returncode == 0, shown.stderr
    assert "{run,dev-cluster,private-network,demo}" in shown.stdout
    run_help = run_in_image(unpacked, *settings["Entrypoint"], *settings["Cmd"], "--help")
    assert run_help.returncode == 0, run_help.stderr
    assert "--namespace" in run_help.stdout
    who = run_in_image(unpacked, "python3", "-c", "import os; print(os.getuid(), os.getgid(), *os.getgroups())")
    assert who.stdout.split() == ["65532", "65532"], who.stderr  # and no supplementary groups (root's gone)
    written = run_in_image(unpacked, "python3", "-c", "open('/tmp/probe', 'w'); open('/opt/probe', 'w')")
    assert "Read-only file system: '/opt/probe'" in written.stderr  # all checks run on a read-only root


def test_modelrollout_version_is_the_projects(unpacked):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    shown = run_in_image(unpacked, *unpacked.config["config"]["Entrypoint"], "--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"modelrollout {project['version']}"


def test_every_module_of_the_package_imports_inside_the_image(unpacked):
    package = REPO / "operator" / "modelrollout"
    in_tree = {
        ".".join(("modelrollout", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    shown = run_in_image(unpacked, "python3", "-c", IMPORT_EVERY_MODULE, *sorted(NOT_PACKAGE_MODULES))
    assert shown.returncode == 0, f"an import failed inside the image:\n{shown.stderr[-3000:]}"
    location, count = shown.stdout.split()
    assert location == "/opt/modelrollout/lib/python3.11/site-packages/modelrollout/__init__.py"
    assert int(count) == len(in_tree - NOT_PACKAGE_MODULES)
    # The runtime module really is outside the package's imports, as the exclusion claims.
    runtime = ast.parse((package / "modelserver" / "runtime.py").read_text())
    assert any(isinstance(node, ast.Import) and node.names[0].name == "behaviour" for node in runtime.body)
