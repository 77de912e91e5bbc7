"""The image build's pure parts: the FROM name it imports the base under, its cache key, and unpacking layers
the way a runtime does (whiteouts), which the real image, two layers with no deletions, does not exercise.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from modelrollout.devcluster import image

REPO = Path(__file__).resolve().parents[2]


def test_the_base_is_imported_under_the_name_the_dockerfile_starts_from(tmp_path):
    assert image.base_name(REPO / "Dockerfile") == "docker.io/library/python:3.11-slim"
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM --platform=linux/amd64 example.org/py:3 AS build\nRUN true\nFROM build\n")
    assert image.base_name(dockerfile) == "example.org/py:3"
    dockerfile.write_text("FROM python:3.11-slim AS build\nFROM debian:bookworm\n")
    with pytest.raises(image.ImageBuildError, match="every stage must start FROM the same image"):
        image.base_name(dockerfile)


@pytest.mark.parametrize(
    ("name", "qualified"),
    [
        ("python:3.11-slim", "docker.io/library/python:3.11-slim"),
        ("bitnami/python:3.11", "docker.io/bitnami/python:3.11"),
        ("localhost/base:1", "localhost/base:1"),
        ("registry:5000/base:1", "registry:5000/base:1"),
    ],
)
def test_short_names_qualify_as_docker_does(name, qualified):
    assert image._qualified(name) == qualified


def copy_inputs(source: Path, target: Path) -> None:
    for relative in ("Dockerfile", "pyproject.toml", "README.md"):
        shutil.copy(source / relative, target / relative)
    shutil.copytree(source / "operator" / "modelrollout" / "core", target / "operator" / "modelrollout" / "core")


def test_the_cache_key_follows_what_is_installed_and_nothing_else(tmp_path):
    copy_inputs(REPO, tmp_path)
    key = image.image_key(tmp_path)
    assert image.image_key(tmp_path) == key
    (tmp_path / "README.md").write_text("only the long description")
    cache = tmp_path / "operator" / "modelrollout" / "core" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert image.image_key(tmp_path) == key
    (tmp_path / "operator" / "modelrollout" / "core" / "new.py").write_text("")
    assert image.image_key(tmp_path) != key
    (tmp_path / "operator" / "modelrollout" / "core" / "new.py").unlink()
    (tmp_path / "Dockerfile").write_text((tmp_path / "Dockerfile").read_text() + "LABEL x=y\n")
    assert image.image_key(tmp_path) != key


def layer(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A gzip tar layer: (name, content) is a file, (name, None) a directory; a name ending `->X` a symlink."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, content in entries:
            if "->" in name:
                path, target = name.split("->")
                info = tarfile.TarInfo(path)
                info.type, info.linkname = tarfile.SYMTYPE, target
                archive.addfile(info)
            elif content is None:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def write_layout(directory: Path, layers: list[bytes]) -> Path:
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    config = json.dumps({"config": {"User": "65532:65532"}}).encode()
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(data), "size": len(data)}
            for data in layers
        ],
    }
    (directory / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [{"digest": blob(json.dumps(manifest).encode())}]})
    )
    return directory


def test_unpack_applies_each_layers_whiteouts_to_the_layers_below(tmp_path):
    layout = write_layout(
        tmp_path / "layout",
        [
            layer([("etc", None), ("etc/keep", b"1"), ("etc/gone", b"2"), ("cache", None), ("cache/old", b"3")]),
            layer([("etc/.wh.gone", b""), ("cache/.wh..wh..opq", b""), ("cache/new", b"4"), ("etc/keep", b"5")]),
        ],
    )
    root = tmp_path / "root"
    settings = image.unpack(layout, root)
    assert settings["config"]["User"] == "65532:65532"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["cache", "cache/new", "etc", "etc/keep"]
    assert (root / "etc" / "keep").read_bytes() == b"5"


def test_unpack_never_writes_through_a_symlink_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    layout = write_layout(
        tmp_path / "layout", [layer([(f"escape->{outside}", None)]), layer([("escape/planted", b"x")])]
    )
    with pytest.raises(image.ImageBuildError, match="leaves the root filesystem"):
        image.unpack(layout, tmp_path / "root")
    assert not (outside / "planted").exists()
