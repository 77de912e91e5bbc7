"""The operator image, built for real from the project's Dockerfile, once per tree, cached.

Why here: `dev-cluster build` is the one step that may use the network. The image's `pip install` needs
PyPI, and the base image would need a registry, which this project may not reach. So the base is made
from Debian packages with mmdebstrap (Python 3.11, as the Dockerfile's `python:3.11-slim`) and imported
under the very name the Dockerfile's FROM uses; buildah then builds the Dockerfile unchanged, with the vfs
storage driver and chroot isolation (no overlay mounts, no user namespace, no runtime daemon), and pushes
the result to an OCI layout in the cache. The tests unpack that layout offline (`unpack`) and run the
operator inside it (tests/integration/test_image.py).

Cache keys:
- the base, `<cache>/image/base-<key>.tar`: a hash of the mmdebstrap command and the image config;
- the image, `<cache>/image/operator-<key>/`: a hash of the base's key, the Dockerfile, pyproject.toml and
  every file under operator/ (README.md is copied in too, but only as the package's long description, so
  editing it does not rebuild). A facts file written last (`image.json`) makes the directory a cache hit.
buildah's own storage is a scratch directory deleted after each build: vfs copies every layer in full.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from modelrollout.devcluster.build import cache_root

REPO = Path(__file__).resolve().parents[3]
BASE_SUITE = "bookworm"  # its python3 is 3.11, the version the Dockerfile's base names
BASE_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# No docs, manuals, info pages or translations; no device nodes (a runtime provides /dev); merged /usr
# without the usrmerge package, which would pull in perl (about 45 MB).
BASE_OPTIONS = (
    "--variant=essential",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--skip=output/dev",
    *(f"--dpkgopt=path-exclude=/usr/share/{part}/*" for part in ("doc", "man", "info", "locale")),
)
BASE_CONFIG = ("--env", "LANG=C.UTF-8", "--cmd", "python3")
IMAGE_TAG = "localhost/modelrollout/operator:dev"
OCI_REF = "modelrollout"  # the reference name inside the OCI layout's index.json
FACTS = "image.json"
# Where the host's CA bundle and a pip.conf naming it appear during the build (bind mounts, never in a layer).
BUILD_CA = "/etc/ssl/modelrollout-build-ca.crt"
BUILD_PIP_CONF = "/etc/pip.conf"


class ImageBuildError(RuntimeError):
    """mmdebstrap or buildah failed; the message carries the tool's own error and what to do."""


@dataclass(frozen=True)
class Image:
    """A built operator image in an OCI layout, with the facts measured when it was built."""

    layout: Path
    digest: str  # the manifest's digest
    compressed_bytes: int  # the layers as a registry would transfer them
    uncompressed_bytes: int  # the layers' tar streams, as `buildah images` counts SIZE
    base_name: str  # the name the Dockerfile's FROM uses, under which the local base was imported
    build_seconds: float


def base_name(dockerfile: Path = REPO / "Dockerfile") -> str:
    """The one external image every stage of the Dockerfile starts FROM, fully qualified.

    A stage may start from an earlier stage (`FROM build`); those names are not images.
    """
    stages: set[str] = set()
    images: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        names = [word for word in words[1:] if not word.startswith("--")]
        if names[0] not in stages:
            images.add(names[0])
        if len(names) >= 3 and names[1].upper() == "AS":
            stages.add(names[2])
    if len(images) != 1:
        raise ImageBuildError(
            f"{dockerfile} starts from {sorted(images) or 'no image'}; the local build makes exactly one base "
            f"image from Debian packages, so every stage must start FROM the same image (or an earlier stage)"
        )
    return _qualified(images.pop())


def _qualified(name: str) -> str:
    """Docker's short-name rule: `python:3.11-slim` is `docker.io/library/python:3.11-slim`."""
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


def mmdebstrap_command(output: Path) -> list[str]:
    return [
        "mmdebstrap",
        *BASE_OPTIONS,
        f"--include={','.join(BASE_PACKAGES)}",
        BASE_SUITE,
        str(output),
        BASE_MIRROR,
    ]


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()[:16]


def base_key() -> str:
    """Changes exactly when the base would come out different: its mmdebstrap command or its config."""
    return _digest(json.dumps([mmdebstrap_command(Path("-")), BASE_CONFIG]).encode())


def _source_files(repo: Path) -> list[Path]:
    """The files the Dockerfile's COPY lines bring in that change what is installed."""
    files = [repo / "Dockerfile", repo / "pyproject.toml"]
    for path in sorted((repo / "operator").rglob("*")):
        parts = path.relative_to(repo).parts
        if path.is_file() and "__pycache__" not in parts and not any(p.endswith(".egg-info") for p in parts):
            files.append(path)
    return files


def image_key(repo: Path = REPO) -> str:
    """A hash of the base's key and every input file's path and content: an unchanged tree is a cache hit."""
    parts = [base_key().encode()]
    for path in _source_files(repo):
        parts += [str(path.relative_to(repo)).encode(), path.read_bytes()]
    return _digest(*parts)


def image_dir(root: Path | None = None, repo: Path = REPO) -> Path:
    return (root or cache_root()) / "image" / f"operator-{image_key(repo)}"


def cached_image(root: Path | None = None, repo: Path = REPO) -> Image | None:
    """The image built from this tree, if `dev-cluster build` made it; None otherwise."""
    layout = image_dir(root, repo)
    facts = layout / FACTS
    if not facts.is_file():
        return None
    return Image(layout=layout, **json.loads(facts.read_text()))


def _run(args: list[str], log: Path, what_to_do: str) -> str:
    """Run a tool, keep its output in `log`; on failure raise with its own stderr and `what_to_do`."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
    try:
        result = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as error:
        raise ImageBuildError(
            f"{args[0]} is not installed ({error}); install it with `bash .ci/install-system-packages` "
            f"(Debian packages mmdebstrap and buildah)"
        ) from error
    with log.open("a") as out:
        out.write(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-3000:]
        raise ImageBuildError(
            f"{' '.join(args[:3])} ... failed (exit {result.returncode}):\n{tail}\n"
            f"Full log: {log}. {what_to_do} A failed build is never a cache hit; the next run starts over."
        )
    return result.stdout


def ensure_base(root: Path | None = None) -> Path:
    """The base's root filesystem as a tar made by mmdebstrap, built first if the cache lacks it."""
    directory = (root or cache_root()) / "image"
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"base-{base_key()}.tar"
    if final.is_file():
        return final
    started = time.monotonic()
    partial = final.with_suffix(".partial.tar")
    partial.unlink(missing_ok=True)
    log = directory / "base.log"
    log.write_text("")
    _run(
        mmdebstrap_command(partial),
        log,
        f"mmdebstrap needs root (or user namespaces) and {BASE_MIRROR}: run `modelrollout dev-cluster build` "
        f"outside the private network.",
    )
    partial.rename(final)
    for old in directory.glob("base-*.tar"):
        if old != final:
            old.unlink()
    print(f"modelrollout: made the base image in {time.monotonic() - started:.0f}s ({final})", file=sys.stderr)
    return final


def _pip_trust(scratch: Path) -> list[str]:
    """Bind mounts that make pip in the build trust what pip on this host trusts, and use its index.

    Why: behind a proxy that re-signs TLS, the base's CA bundle rejects PyPI. The mounts are not in any
    layer and the Dockerfile stays as a user builds it.
    """
    bundle = next(
        (
            Path(value)
            for value in (
                os.environ.get("PIP_CERT"),
                os.environ.get("REQUESTS_CA_BUNDLE"),
                os.environ.get("SSL_CERT_FILE"),
                "/etc/ssl/certs/ca-certificates.crt",
            )
            if value and Path(value).is_file()
        ),
        None,
    )
    lines = ["[global]"]
    mounts: list[str] = []
    if bundle:
        lines.append(f"cert = {BUILD_CA}")
        mounts += ["--volume", f"{bundle}:{BUILD_CA}:ro"]
    for variable, key in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url")):
        if os.environ.get(variable):
            lines.append(f"{key} = {os.environ[variable]}")
    conf = scratch / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    return [*mounts, "--volume", f"{conf}:{BUILD_PIP_CONF}:ro"]


def _layer_sizes(layout: Path) -> tuple[str, int, int]:
    """The manifest digest, and the layers' compressed and uncompressed sizes, read from the OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(_blob(layout, digest).read_text())
    compressed = uncompressed = 0
    for layer in manifest["layers"]:
        compressed += layer["size"]
        with _open_layer(layout, layer) as stream:
            while chunk := stream.read(1 << 20):
                uncompressed += len(chunk)
    return digest, compressed, uncompressed


def build_image(root: Path | None = None, repo: Path = REPO) -> Image:
    """Make the base, import it under the FROM name, build the Dockerfile with buildah, push an OCI layout."""
    root = root or cache_root()
    final = image_dir(root, repo)
    directory = final.parent
    base = ensure_base(root)
    started = time.monotonic()
    name = base_name(repo / "Dockerfile")
    scratch = directory / "scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    storage = [
        f"--root={scratch / 'storage'}",
        f"--runroot={scratch / 'run'}",
        "--storage-driver=vfs",
    ]
    log = directory / "build.log"
    log.write_text("")
    partial = directory / "operator.partial"
    if partial.exists():
        shutil.rmtree(partial)
    hint = "buildah needs root (or subuids for rootless use)."
    try:
        container = _run(["buildah", *storage, "from", "scratch"], log, hint).strip()
        _run(["buildah", *storage, "add", container, str(base), "/"], log, hint)
        _run(["buildah", *storage, "config", *BASE_CONFIG, container], log, hint)
        _run(["buildah", *storage, "commit", "--rm", container, name], log, hint)
        _run(
            [
                "buildah",
                *storage,
                "bud",
                "--isolation=chroot",
                "--pull=never",
                "--layers=false",
                *_pip_trust(scratch),
                f"--tag={IMAGE_TAG}",
                f"--file={repo / 'Dockerfile'}",
                str(repo),
            ],
            log,
            "The Dockerfile's pip install needs PyPI: run `modelrollout dev-cluster build` outside the private "
            "network; if pip's error is about certificates or the index, check the host's pip settings.",
        )
        _run(["buildah", *storage, "push", IMAGE_TAG, f"oci:{partial}:{OCI_REF}"], log, hint)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    digest, compressed, uncompressed = _layer_sizes(partial)
    seconds = round(time.monotonic() - started, 1)
    facts = {
        "digest": digest,
        "compressed_bytes": compressed,
        "uncompressed_bytes": uncompressed,
        "base_name": name,
        "build_seconds": seconds,
    }
    (partial / FACTS).write_text(json.dumps(facts, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    for old in directory.glob("operator-*"):
        if old != final:
            shutil.rmtree(old)
    print(
        f"modelrollout: built the operator image in {seconds:.0f}s ({compressed / 1e6:.0f} MB compressed, "
        f"{uncompressed / 1e6:.0f} MB unpacked; {final})",
        file=sys.stderr,
    )
    return Image(layout=final, **facts)


def ensure_image(root: Path | None = None) -> Path:
    """The OCI layout of the image for this tree, built first if the cache lacks it (`dev-cluster build`)."""
    image = cached_image(root) or build_image(root)
    return image.layout


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, value = digest.partition(":")
    return layout / "blobs" / algorithm / value


def _open_layer(layout: Path, layer: dict[str, object]) -> IO[bytes]:
    path = _blob(layout, str(layer["digest"]))
    media_type = str(layer["mediaType"])
    if media_type.endswith("+gzip"):
        return gzip.open(path, "rb")
    if media_type.endswith(".tar") or media_type.endswith("diff.tar"):
        return path.open("rb")
    raise ImageBuildError(f"layer {layer['digest']} has media type {media_type}, which unpack() cannot read")


def config(layout: Path) -> dict[str, object]:
    """The image's config (`config` holds User, Env, Entrypoint, Cmd) from the OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(_blob(layout, index["manifests"][0]["digest"]).read_text())
    return json.loads(_blob(layout, manifest["config"]["digest"]).read_text())


def unpack(layout: Path, destination: Path) -> dict[str, object]:
    """Unpack the image's layers in order into `destination` (as a runtime would) and return its config.

    Whiteouts (`.wh.NAME` deletes NAME, `.wh..wh..opq` empties a directory) hide lower layers' files, so
    each layer's whiteouts apply before its files. Owners stay numeric (needs root, as chroot does).
    """
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(_blob(layout, index["manifests"][0]["digest"]).read_text())
    destination.mkdir(parents=True, exist_ok=True)
    top = destination.resolve()
    for layer in manifest["layers"]:
        # Two streamed passes (a gzip stream cannot seek back): whiteouts first, then the files.
        with _open_layer(layout, layer) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                path = _inside(top, member.name, str(layer["digest"]))
                if path.name == ".wh..wh..opq":
                    for child in list(path.parent.iterdir()) if path.parent.is_dir() else []:
                        _remove(child)
                elif path.name.startswith(".wh."):
                    _remove(path.parent / path.name.removeprefix(".wh."))
        with _open_layer(layout, layer) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not Path(member.name).name.startswith(".wh."):
                    target = _inside(top, member.name, str(layer["digest"]))
                    if not (member.isdir() and target.is_dir() and not target.is_symlink()):
                        _remove(target)  # a lower layer's entry is replaced, never written through
                    archive.extract(member, top, numeric_owner=True, filter="fully_trusted")
    return config(layout)


def _inside(top: Path, name: str, layer: str) -> Path:
    """`name` under `top`, refusing one whose directory resolves outside it (through `..` or a symlink)."""
    relative = Path(name.lstrip("/"))
    if not relative.parts:  # the layer's own root, "./"
        return top
    path = top / relative
    parent = path.parent.resolve()
    if parent != top and top not in parent.parents:
        raise ImageBuildError(f"layer {layer}: {name} leaves the root filesystem")
    return parent / path.name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
