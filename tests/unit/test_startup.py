"""Start-up: the operator waits out a freshly installed CRD's 429s quietly, and listens on loopback off-cluster."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from modelrollout.controller.apiready import wait_until_served
from modelrollout.handlers import default_http_address, number_setting
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, KubeError


class Apiserver:
    """Refuses the first `refusals` lists with `status`, then answers; records each list."""

    def __init__(self, refusals: int, status: int = 429) -> None:
        self.refusals, self.status = refusals, status
        self.lists: list[str] = []

    def request(self, method: str, path: str, query=None) -> dict:
        self.lists.append(path)
        if self.refusals:
            self.refusals -= 1
            raise KubeError(self.status, "TooManyRequests", "storage is (re)initializing")
        return {"items": []}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_crd_still_initializing_is_waited_out_at_info(caplog):
    apiserver, clock = Apiserver(refusals=3), Clock()
    with caplog.at_level(logging.DEBUG):
        served = wait_until_served(apiserver, (MODEL_DEPLOYMENT, DEPLOYMENT), [None], 60, clock, clock.sleep)
    assert (
        served and apiserver.lists.count(MODEL_DEPLOYMENT.path(None)) == 4 and DEPLOYMENT.path(None) in apiserver.lists
    )
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "waiting for the apiserver to serve modeldeployments: storage is (re)initializing" in caplog.text


def test_every_served_namespace_is_listed():
    apiserver = Apiserver(refusals=0)
    assert wait_until_served(apiserver, (MODEL_DEPLOYMENT,), ["a", "b"])
    assert apiserver.lists == [MODEL_DEPLOYMENT.path("a"), MODEL_DEPLOYMENT.path("b")]


def test_after_the_deadline_it_starts_anyway_and_says_so(caplog):
    apiserver, clock = Apiserver(refusals=10**6, status=503), Clock()
    assert not wait_until_served(apiserver, (MODEL_DEPLOYMENT,), [None], 5, clock, clock.sleep)
    assert clock.now == pytest.approx(5.0) and "does not serve modeldeployments after 5s" in caplog.text


def test_a_refusal_that_waiting_cannot_fix_is_raised_at_once():
    apiserver = Apiserver(refusals=1, status=403)
    with pytest.raises(KubeError) as raised:
        wait_until_served(apiserver, (MODEL_DEPLOYMENT,), [None])
    assert raised.value.status == 403 and len(apiserver.lists) == 1


def test_the_http_address_is_loopback_off_cluster_and_every_interface_in_a_pod():
    assert default_http_address({}) == "127.0.0.1:8080"
    assert default_http_address({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) == "0.0.0.0:8080"


def test_a_crd_that_is_not_installed_is_named_with_what_to_do():
    apiserver = Apiserver(refusals=1, status=404)
    with pytest.raises(RuntimeError, match=r"does not serve modeldeployments .* install the CRDs first"):
        wait_until_served(apiserver, (MODEL_DEPLOYMENT,), [None])


@pytest.mark.parametrize(
    ("text", "whole", "message"),
    [
        ("four", True, "MODELROLLOUT_X must be a whole number above 0, not 'four'"),
        ("2.5", True, "MODELROLLOUT_X must be a whole number above 0, not '2.5'"),
        ("0", False, "MODELROLLOUT_X must be a number above 0, not '0'"),
    ],
)
def test_a_numeric_setting_that_cannot_be_used_names_itself_and_what_it_needs(text, whole, message):
    with pytest.raises(ValueError) as raised:
        number_setting("MODELROLLOUT_X", "4", whole, {"MODELROLLOUT_X": text})
    assert str(raised.value) == message
    assert number_setting("MODELROLLOUT_X", "4", whole, {}) == 4


def test_the_operator_refuses_a_bad_worker_count_at_start_without_a_traceback():
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from modelrollout import cli; sys.exit(cli.main(['run']))"],
        env={**os.environ, "MODELROLLOUT_WORKERS": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stderr) == (
        2,
        "modelrollout run: MODELROLLOUT_WORKERS must be a whole number above 0, not 'lots'; "
        "fix the operator's environment and start it again\n",
    )
