"""The private network: pod IPs become bindable inside it, and a machine without the tools is told what to do."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelrollout.devcluster import netns

PROBE = "from modelrollout.devcluster.netns import pod_ips_bindable; print(pod_ips_bindable())"


def private_network(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modelrollout.cli", "private-network", "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pod_ips_are_bindable_inside_the_private_network():
    result = private_network(sys.executable, "-c", PROBE)
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr


def test_a_command_nested_in_a_second_private_network_call_runs_in_the_same_one():
    namespace = "readlink /proc/self/ns/net"
    nested = [sys.executable, "-m", "modelrollout.cli", "private-network", "--", "sh", "-c", namespace]
    result = private_network("sh", "-c", f'{namespace}; exec "$@"', "sh", *nested)
    outer, inner = result.stdout.split()
    assert outer == inner, "the nested call must run in the same namespace, not make another inside it"


def test_the_exit_status_of_the_command_passes_through():
    assert private_network("sh", "-c", "exit 7").returncode == 7


def test_a_missing_command_is_named():
    result = private_network("no-such-command-here")
    assert result.returncode == 2
    assert "command not found: no-such-command-here" in result.stderr


def test_no_command_says_how_to_call_it():
    result = subprocess.run(
        [sys.executable, "-m", "modelrollout.cli", "private-network"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "modelrollout private-network -- COMMAND" in result.stderr


def test_without_unshare_the_error_names_the_package(monkeypatch):
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    with pytest.raises(netns.PrivateNetworkUnavailable, match="util-linux"):
        netns.unshare_command()
