"""Flux build wrappers (replace lines read from upstream's go.mod) and the loopback Git server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modelrollout.devcluster import gitserver
from modelrollout.devcluster.flux import KUSTOMIZE_CONTROLLER, SOURCE_CONTROLLER, replace_lines, wrapper_gomod

DIGEST = "github.com/opencontainers/go-digest"
UPSTREAM = """module github.com/fluxcd/source-controller

go 1.26.0

replace github.com/fluxcd/source-controller/api => ./api

// Replace digest lib to master to gather access to BLAKE3.
replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be

require (
\tgithub.com/fluxcd/pkg/artifact v0.18.3
\tgithub.com/fluxcd/source-controller/api v1.9.6
)

// Pin kustomize
replace (
\tsigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1 // a comment
\tgithub.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.3
)
"""


def test_replace_lines_keep_published_targets_and_drop_local_paths():
    assert replace_lines(UPSTREAM) == [
        f"{DIGEST} => {DIGEST} v1.0.1-0.20220411205349-bde1400a84be",
        "sigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1",
        "github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.3",
    ]


def test_wrapper_requires_the_controller_and_our_pin_wins_over_upstreams():
    gomod = wrapper_gomod(SOURCE_CONTROLLER, UPSTREAM)
    assert f"require github.com/fluxcd/source-controller {SOURCE_CONTROLLER.version}" in gomod
    assert "go 1.26.0" in gomod and "./api" not in gomod
    assert "\tsigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1\n" in gomod
    artifact = [line for line in gomod.splitlines() if line.strip().startswith("github.com/fluxcd/pkg/artifact =>")]
    assert artifact == [
        "\tgithub.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.1 // the proxy refuses v0.18.3"
    ]


def test_kustomize_controller_gets_no_extra_pin():
    gomod = wrapper_gomod(KUSTOMIZE_CONTROLLER, UPSTREAM.replace("source-controller", "kustomize-controller"))
    assert "v0.18.1" not in gomod and "github.com/fluxcd/pkg/artifact v0.18.3" in gomod


def test_the_git_server_takes_a_push_and_serves_a_clone(tmp_path: Path):
    with gitserver.start() as server:
        url = server.create_repository("models")
        work = gitserver.WorkingCopy.clone(url, tmp_path / "work")
        sha = work.commit({"fraud-scorer/modeldeployment.yaml": "kind: ModelDeployment\n"}, "first model")
        listed = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, check=True).stdout
        assert f"{sha}\trefs/heads/main" in listed
        subprocess.run(["git", "clone", "--quiet", url, str(tmp_path / "clone")], check=True)
        assert (tmp_path / "clone" / "fraud-scorer" / "modeldeployment.yaml").read_text() == "kind: ModelDeployment\n"
    assert not server.root.exists()
