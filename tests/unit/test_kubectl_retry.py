"""The local stack's kubectl calls ride out a control plane that is starting or busy, and fail with kubectl's words."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from modelrollout.devcluster import cluster


def control_plane(answers: list[tuple[int, str]]) -> cluster.Cluster:
    """A Cluster whose kubectl gives `answers` in turn (exit code, stderr), then succeeds."""
    running = cluster.Cluster.__new__(cluster.Cluster)
    running.workdir = Path("/tmp/cluster-under-test")
    calls: list[tuple[str, ...]] = []

    def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        calls.append(args)
        code, stderr = answers.pop(0) if answers else (0, "")
        return subprocess.CompletedProcess(["kubectl", *args], code, "done" if code == 0 else "", stderr)

    running.kubectl = kubectl
    running.calls = calls
    return running


def test_a_transient_refusal_is_retried_until_kubectl_succeeds():
    running = control_plane(
        [
            (1, "error: the server is currently unable to handle the request (get customresourcedefinitions)"),
            (1, "Error from server (TooManyRequests): storage is (re)initializing"),
        ]
    )
    assert running.kubectl_retrying("wait", "--for=condition=Established", "crd", "--all") == "done"
    assert len(running.calls) == 3


def test_a_real_error_fails_at_once_with_kubectls_own_message():
    running = control_plane([(1, "error: error parsing crds/x.yaml: error converting YAML to JSON: line 3")])
    with pytest.raises(cluster.KubectlFailed) as failed:
        running.kubectl_retrying("apply", "-f", "crds/x.yaml")
    assert len(running.calls) == 1
    assert "kubectl apply -f crds/x.yaml exited with 1: error: error parsing crds/x.yaml" in str(failed.value)
    assert "/tmp/cluster-under-test/logs" in str(failed.value)


def test_a_refusal_that_outlasts_the_deadline_says_how_long_it_was_retried():
    running = control_plane([(1, "dial tcp 127.0.0.1:6443: connect: connection refused")] * 1000)
    with pytest.raises(cluster.KubectlFailed) as failed:
        running.kubectl_retrying("get", "nodes", timeout=0)
    assert "still failing after 0s of retries" in str(failed.value) and "connection refused" in str(failed.value)
