"""The web metric provider against a real HTTP server on loopback: values read by JSON path, and the
no-data / error split (a missing path is no data; a 500, a timeout or an answer that is not JSON is an
error), then a template's web metric resolved and measured by the analysis runner."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime

import pytest

from modelrollout.controller.analysis import AnalysisRunner
from modelrollout.core.rollout import AnalysisRun, Decision, Weights
from modelrollout.core.spec import AnalysisRef, TemplateRef
from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.web import WebConfig, WebProvider, parse_path
from tests.loopback import LoopbackServer, Request
from tests.unit.fake_kube import ObjectsByName

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Evaluator:
    """An evaluation service on loopback: answers each path from `answers` ((status, text)); `/slow`
    answers only once `release` is set."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers, self.release = answers, threading.Event()
        self.server = LoopbackServer(self.answer)
        self.url = self.server.url

    def answer(self, request: Request) -> tuple[int, str]:
        if request.path.startswith("/slow"):
            self.release.wait(30)
        return self.answers.get(request.path.split("?")[0], (404, "not found"))

    def close(self) -> None:
        self.release.set()
        self.server.stop()


@pytest.fixture
def evaluator():
    server = Evaluator(
        {
            "/score": (200, json.dumps({"data": {"score": 0.93, "samples": 500}})),
            "/scores": (200, json.dumps({"scores": [0.9, 0.8], "label": "v2", "passed": True, "text": "0.5"})),
            "/null": (200, json.dumps({"data": {"score": None}})),
            "/broken": (500, "evaluator crashed"),
            "/html": (200, "<html>maintenance</html>"),
        }
    )
    yield server
    server.close()


@pytest.mark.parametrize(
    ("path", "json_path", "value"),
    [
        ("/score", "$.data.score", 0.93),
        ("/score", "$['data']['samples']", 500.0),
        ("/scores", "$.scores[1]", 0.8),
        ("/scores", "$.scores", (0.9, 0.8)),
        ("/scores", "$.passed", 1.0),
        ("/scores", "$.text", 0.5),
    ],
)
def test_the_value_at_the_json_path_is_the_measurement(evaluator, path, json_path, value):
    assert WebProvider(WebConfig(evaluator.url + path, json_path=json_path)).measure() == value


@pytest.mark.parametrize(
    ("path", "json_path", "error", "message"),
    [
        ("/score", "$.data.accuracy", NoDataError, "the answer has no $.data.accuracy"),
        ("/null", "$.data.score", NoDataError, "the answer has null at $.data.score"),
        ("/broken", "$", ProviderError, "answered 500: 'evaluator crashed'"),
        ("/html", "$", ProviderError, "did not answer JSON: '<html>maintenance</html>'"),
        ("/scores", "$.label", ProviderError, "the answer has 'v2' at $.label, not a number"),
        ("/score", "$.data", ProviderError, 'the answer has {"score": 0.93, "samples": 500} at $.data, not a number'),
    ],
)
def test_a_missing_value_is_no_data_and_a_bad_answer_is_an_error(evaluator, path, json_path, error, message):
    with pytest.raises(error) as raised:
        WebProvider(WebConfig(evaluator.url + path, json_path=json_path)).measure()
    assert message in str(raised.value)
    assert type(raised.value) is error  # NoDataError is a ProviderError: the exact kind matters


def test_an_endpoint_that_does_not_answer_in_time_is_an_error(evaluator):
    with pytest.raises(ProviderError, match=r"GET http://127\.0\.0\.1:\d+/slow did not answer within 0\.2s"):
        WebProvider(WebConfig(evaluator.url + "/slow", timeout=0.2)).measure()


def test_a_refused_connection_is_an_error_naming_the_url(evaluator):
    url = evaluator.url + "/score"
    evaluator.close()
    with pytest.raises(ProviderError, match=f"GET {url} is unreachable: ConnectionError"):
        WebProvider(WebConfig(url)).measure()


@pytest.mark.parametrize("path", ["data.score", "$.data..score", "$[x]"])
def test_a_path_outside_the_subset_is_refused(path):
    with pytest.raises(ValueError, match="jsonPath"):
        parse_path(path)


def web_template(url: str, **web) -> dict:
    return {
        "spec": {
            "args": [{"name": "min-accuracy", "value": "0.9"}],
            "metrics": [
                {
                    "name": "golden-set-accuracy",
                    "successCondition": "result >= {{args.min-accuracy}}",
                    "provider": {"web": {"url": url, "jsonPath": "$.data.score", **web}},
                }
            ],
        }
    }


def test_a_template_web_metric_is_resolved_with_arguments_and_a_secret_header_then_measured(evaluator):
    token = base64.b64encode(b"s3cret\n").decode()
    kube = ObjectsByName(
        {
            "accuracy": web_template(
                evaluator.url + "/score?revision={{args.canary-revision}}",
                method="POST",
                headers=[
                    {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "evaluator", "key": "token"}}},
                    {"name": "X-Model", "value": "{{args.name}}"},
                ],
                body='{"revision": "{{args.canary-revision}}"}',
            ),
            "evaluator": {"data": {"token": token}},
        }
    )
    run = AnalysisRun("step-1", "canary-1", AnalysisRef((TemplateRef("accuracy"),)))
    decision = Decision((), (), "stable-1", "canary-1", Weights(80, 20), {}, analysis_runs=(run,))
    body = {"metadata": {"namespace": "fraud", "name": "fraud-scorer"}, "status": {}}

    measured = AnalysisRunner(kube)(body, decision, NOW)["step-1"]

    assert measured.error == ""
    assert measured.measurements["golden-set-accuracy"].value == 0.93
    assert measured.metrics[0].success_condition == "result >= 0.9"
    sent = evaluator.server.requests[-1]
    assert (sent.method, sent.path, sent.body) == ("POST", "/score?revision=canary-1", b'{"revision": "canary-1"}')
    assert (sent.headers["Authorization"], sent.headers["X-Model"]) == ("s3cret", "fraud-scorer")


def test_a_web_metric_whose_endpoint_fails_is_measured_as_an_error(evaluator):
    kube = ObjectsByName({"accuracy": web_template(evaluator.url + "/broken")})
    run = AnalysisRun("step-1", "canary-1", AnalysisRef((TemplateRef("accuracy"),)))
    decision = Decision((), (), "stable-1", "canary-1", Weights(80, 20), {}, analysis_runs=(run,))
    body = {"metadata": {"namespace": "fraud", "name": "fraud-scorer"}, "status": {}}

    measurement = AnalysisRunner(kube)(body, decision, NOW)["step-1"].measurements["golden-set-accuracy"]

    assert measurement.value is None and "answered 500" in measurement.error
