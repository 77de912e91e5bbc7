"""The Datadog provider against a local stand-in of Datadog's v2 scalar query API: the request it sends
(path, key headers, body shape and time window) and each kind of answer (one value, one per tag, a
formula, nothing in the window, bad keys, rate limited, a query Datadog refuses)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from modelrollout.controller.analysis import AnalysisRunner
from modelrollout.core.rollout import AnalysisRun, Decision, Weights
from modelrollout.core.spec import AnalysisRef, TemplateRef
from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.datadog import DatadogConfig, DatadogProvider, parse_scalar
from tests.loopback import LoopbackServer, Request
from tests.unit.fake_kube import ObjectsByName

NOW = 1_795_400_000.0  # the provider's clock: 2026-11-23
API_KEY, APP_KEY = "api-key-1", "app-key-1"


def number(name: str, *values: float | None) -> dict:
    return {"name": name, "type": "number", "values": list(values), "meta": {"unit": None}}


class StandIn:
    """Answers POST /api/v2/query/scalar as Datadog does, from `columns` by query text; checks the keys."""

    def __init__(self) -> None:
        self.columns: dict[str, list[dict]] = {}
        self.status: dict[str, tuple[int, dict]] = {}  # query -> a non-2xx answer
        self.server = LoopbackServer(self.answer)
        self.address = self.server.url

    def answer(self, request: Request) -> tuple[int, dict]:
        query = request.json()["data"]["attributes"]["queries"][0]["query"]
        if request.headers.get("DD-API-KEY") != API_KEY or request.headers.get("DD-APPLICATION-KEY") != APP_KEY:
            return 403, {"errors": ["Forbidden"]}
        if query in self.status:
            return self.status[query]
        columns = self.columns.get(query, [])
        return 200, {"data": {"type": "scalar_response", "attributes": {"columns": columns}}}

    def sent(self) -> tuple[str, dict, dict]:
        """The last request: its path, headers and JSON body."""
        last = self.server.requests[-1]
        return last.path, last.headers, last.json()

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def datadog():
    server = StandIn()
    yield server
    server.close()


def provider(datadog: StandIn, query: str, **config) -> DatadogProvider:
    settings = {"api_key": API_KEY, "app_key": APP_KEY, "address": datadog.address, **config}
    return DatadogProvider(DatadogConfig(query=query, **settings), clock=lambda: NOW)


def test_one_value_over_the_window_and_the_request_datadog_expects(datadog):
    query = "sum:model.errors{revision:r2}.as_count()"
    datadog.columns[query] = [number("query1", 0.02)]

    assert provider(datadog, query, window=600.0, aggregator="avg").measure() == 0.02

    path, headers, body = datadog.sent()
    assert path == "/api/v2/query/scalar" and headers["Content-Type"] == "application/json"
    assert body == {
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": int((NOW - 600) * 1000),
                "to": int(NOW * 1000),
                "queries": [{"data_source": "metrics", "name": "query1", "query": query, "aggregator": "avg"}],
            },
        }
    }


def test_a_query_by_tag_gives_a_value_per_group_and_a_formula_its_own_column(datadog):
    datadog.columns["avg:latency{*} by {revision}"] = [
        {"name": "revision", "type": "group", "values": [["r1"], ["r2"]]},
        number("query1", 0.12, 0.31),
    ]
    assert provider(datadog, "avg:latency{*} by {revision}").measure() == (0.12, 0.31)
    datadog.columns["sum:errors{*}"] = [number("query1 * 100", 2.5)]
    assert provider(datadog, "sum:errors{*}", formula="query1 * 100").measure() == 2.5
    assert datadog.sent()[2]["data"]["attributes"]["formulas"] == [{"formula": "query1 * 100"}]


@pytest.mark.parametrize(
    ("columns", "message"),
    [([], "no number column"), ([number("query1")], "no value"), ([number("query1", None, None)], "no value")],
)
def test_nothing_in_the_window_is_no_data(datadog, columns, message):
    datadog.columns["sum:errors{*}"] = columns
    with pytest.raises(NoDataError, match=message):
        provider(datadog, "sum:errors{*}").measure()


@pytest.mark.parametrize(
    ("status", "answer", "message"),
    [
        (400, {"errors": ["Error parsing query: unexpected token"]}, "answered 400: Error parsing query"),
        (429, {"errors": ["Too many requests"]}, r"rate-limits the queries \(429\); measure less often"),
        (500, {}, "answered 500"),
    ],
)
def test_an_answer_that_is_not_2xx_is_an_error_with_datadogs_words(datadog, status, answer, message):
    datadog.status["sum:errors{*}"] = (status, answer)
    with pytest.raises(ProviderError, match=message) as raised:
        provider(datadog, "sum:errors{*}").measure()
    assert type(raised.value) is ProviderError


def test_wrong_keys_are_an_error_that_never_shows_them(datadog):
    with pytest.raises(ProviderError) as raised:
        provider(datadog, "sum:errors{*}", api_key="wrong-key", app_key="wrong-app").measure()
    assert "answered 403: Forbidden" in str(raised.value)
    assert "wrong-key" not in str(raised.value) and "wrong-app" not in str(raised.value)


def test_parse_scalar_reads_the_last_number_column():
    answer = {"data": {"attributes": {"columns": [number("query1", 1.0), number("query1 / 2", 0.5)]}}}
    assert parse_scalar(answer) == 0.5


def test_a_template_datadog_metric_is_resolved_with_its_keys_from_secrets_and_measured(datadog):
    query = "sum:model.errors{revision:canary-1}.as_count()"
    datadog.columns[query] = [number("query1", 0.004)]
    keys = {"api": base64.b64encode(API_KEY.encode()).decode(), "app": base64.b64encode(APP_KEY.encode()).decode()}
    template = {
        "spec": {
            "metrics": [
                {
                    "name": "errors",
                    "successCondition": "result < 0.01",
                    "provider": {
                        "datadog": {
                            "address": datadog.address,
                            "query": "sum:model.errors{revision:{{args.canary-revision}}}.as_count()",
                            "apiKeySecretRef": {"name": "datadog", "key": "api"},
                            "appKeySecretRef": {"name": "datadog", "key": "app"},
                        }
                    },
                }
            ]
        }
    }
    kube = ObjectsByName({"dd-errors": template, "datadog": {"data": keys}})
    run = AnalysisRun("step-1", "canary-1", AnalysisRef((TemplateRef("dd-errors"),)))
    decision = Decision((), (), "stable-1", "canary-1", Weights(80, 20), {}, analysis_runs=(run,))
    body = {"metadata": {"namespace": "fraud", "name": "fraud-scorer"}, "status": {}}

    measured = AnalysisRunner(kube)(body, decision, datetime(2026, 11, 23, 12, 0, tzinfo=UTC))["step-1"]

    assert measured.error == "" and measured.measurements["errors"].value == 0.004
    assert datadog.sent()[2]["data"]["attributes"]["queries"][0]["query"] == query
