"""Pure helpers of the analysis shell: Prometheus result parsing, argument substitution, alarms."""

from datetime import UTC, datetime, timedelta

import pytest

from modelrollout.controller.alertpoller import alerts_query
from modelrollout.controller.alerts import WebhookAlerts, alarm_arguments
from modelrollout.controller.analysis import ResolutionError, escape_promql, substitute
from modelrollout.core.spec import AlertMatcher, parse_spec
from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.prometheus import parse_histogram, parse_result

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ([1795391774.0, "0.25"], 0.25),
        ([{"metric": {}, "value": [1795391774.0, "0.01"]}], 0.01),
        ([{"metric": {"a": "1"}, "value": [1, "1"]}, {"metric": {"a": "2"}, "value": [1, "2"]}], (1.0, 2.0)),
    ],
    ids=["scalar", "one-series", "two-series"],
)
def test_parse_result(result, expected):
    assert parse_result(result) == expected


def test_parse_result_keeps_nan_for_the_analysis_to_judge():
    value = parse_result([{"metric": {}, "value": [1, "NaN"]}])
    assert value != value  # NaN


def test_empty_vector_is_no_data_and_range_vectors_are_refused():
    with pytest.raises(NoDataError):
        parse_result([])
    with pytest.raises(ProviderError, match="range vector"):
        parse_result([{"metric": {}, "values": [[1, "1"], [2, "2"]]}])


def bucket(le: str, value: str, **labels: str) -> dict:
    return {"metric": {"le": le, **labels}, "value": [1795391774.0, value]}


def test_parse_histogram_pairs_each_le_with_its_value_in_bound_order():
    result = [bucket("+Inf", "120"), bucket("0.5", "70.5"), bucket("0.1", "12")]
    assert parse_histogram(result) == ((0.1, 12.0), (0.5, 70.5), (float("inf"), 120.0))


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        ([], NoDataError, "no series"),
        ([1795391774.0, "3"], ProviderError, "not a scalar"),
        ([bucket("0.1", "1"), {"metric": {"revision": "abc"}, "value": [1, "2"]}], ProviderError, "no le label"),
        (
            [bucket("0.1", "1", pod="a"), bucket("0.1", "2", pod="b")],
            ProviderError,
            "several series have le=0.1; aggregate them with sum by",
        ),
        ([bucket("small", "1")], ProviderError, "le='small', not a number"),
        ([{"metric": {"le": "0.1"}, "values": [[1, "1"]]}], ProviderError, "range vector"),
    ],
    ids=["empty", "scalar", "no-le", "repeated-le", "bad-le", "range"],
)
def test_parse_histogram_refuses_what_is_not_one_histogram(result, error, message):
    with pytest.raises(error, match=message) as raised:
        parse_histogram(result)
    # Only an empty vector is "no data"; a malformed answer is an error.
    assert isinstance(raised.value, NoDataError) == (error is NoDataError)


def test_arguments_cannot_break_out_of_a_label_matcher():
    query = 'up{revision="{{args.revision}}"}'
    hostile = 'x"} or vector(1) or up{a="'
    assert substitute(query, {"revision": hostile}, "t") == 'up{revision="x\\"} or vector(1) or up{a=\\""}'
    assert escape_promql("a\\b") == "a\\\\b"


def test_unknown_argument_names_the_template():
    with pytest.raises(ResolutionError, match=r"ModelAnalysisTemplate t, metric m: unknown argument \{\{args.nope\}\}"):
        substitute("{{args.nope}}", {}, "ModelAnalysisTemplate t, metric m")


def test_conditions_get_unescaped_values():
    assert substitute("result <= {{ args.max }}", {"max": "0.01"}, "t", escape=False) == "result <= 0.01"


def test_alerts_query_selects_firing_alerts_with_the_labels():
    matcher = AlertMatcher("Errors", (("namespace", "models"), ("severity", "page")))
    assert alerts_query(matcher) == 'ALERTS{alertname="Errors",alertstate="firing",namespace="models",severity="page"}'


def test_matcher_needs_every_listed_label():
    matcher = AlertMatcher("Errors", (("namespace", "models"),))
    assert matcher.matches({"alertname": "Errors", "namespace": "models", "severity": "page"})
    assert not matcher.matches({"alertname": "Errors", "namespace": "other"})
    assert not matcher.matches({"alertname": "Other", "namespace": "models"})


def payload(status: str, ends: str = "0001-01-01T00:00:00Z") -> dict:
    return {
        "version": "4",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "Errors", "namespace": "models"},
                "endsAt": ends,
                "fingerprint": "f1",
            },
        ],
    }


def test_webhook_alerts_fire_until_resolved_or_expired():
    store = WebhookAlerts()
    matcher = (AlertMatcher("Errors", (("namespace", "models"),)),)
    assert store.receive(payload("firing"), now=NOW) == [{"alertname": "Errors", "namespace": "models"}]
    assert store.matching(matcher, NOW) == ['Errors{namespace="models"}']
    store.receive(payload("resolved"), now=NOW)
    assert store.matching(matcher, NOW) == []
    store.receive(payload("firing", ends="2026-11-22T12:30:00Z"), now=NOW)
    assert store.matching(matcher, NOW) == ['Errors{namespace="models"}']
    assert store.matching(matcher, NOW + timedelta(hours=1)) == []  # endsAt has passed


def test_webhook_rejects_what_is_not_an_alertmanager_payload():
    with pytest.raises(ValueError, match="no alerts list"):
        WebhookAlerts().receive({"hello": "world"})


def test_a_scoped_matcher_is_filled_in_from_the_arguments_and_wakes_for_any_value():
    matcher = AlertMatcher("Errors", (("namespace", "{{args.namespace}}"), ("revision", "{{ args.canary-revision }}")))
    filled = matcher.resolve({"namespace": "models", "canary-revision": "r2"})
    assert filled == AlertMatcher("Errors", (("namespace", "models"), ("revision", "r2")))
    assert matcher.resolve({"namespace": "models", "canary-revision": ""}) is None
    assert matcher.may_match({"alertname": "Errors", "namespace": "elsewhere", "revision": "r9"})
    assert not matcher.may_match({"alertname": "Latency", "namespace": "models", "revision": "r2"})
    plain = AlertMatcher("Errors", (("namespace", "models"),))
    assert plain.resolve({}) is plain and not plain.may_match({"alertname": "Errors", "namespace": "other"})


def test_alarm_arguments_come_from_status_and_the_spec_before_the_first_decision():
    spec = parse_spec(
        {
            "model": {"name": "fraud", "version": "v2", "uri": "s3://models/fraud/v2"},
            "template": {"spec": {"containers": [{"name": "server", "image": "server:1"}]}},
        }
    )
    rolling = alarm_arguments("models", "fraud-scorer", spec, {"stableRevision": "r1", "canaryRevision": "r2"})
    assert rolling == {"namespace": "models", "name": "fraud-scorer", "canary-revision": "r2", "stable-revision": "r1"}
    assert alarm_arguments("models", "f", spec, {"stableRevision": "r1"})["canary-revision"] == spec.revision
    settled = alarm_arguments("models", "f", spec, {"stableRevision": spec.revision})
    assert settled["canary-revision"] == ""


def test_a_rollback_label_naming_an_unknown_argument_is_refused_with_the_known_ones():
    body = {
        "model": {"name": "fraud", "version": "v2", "uri": "s3://models/fraud/v2"},
        "template": {"spec": {"containers": [{"name": "server", "image": "server:1"}]}},
        "rollbackOn": {"alerts": [{"alertname": "Errors", "labels": {"revision": "{{args.version}}"}}]},
    }
    with pytest.raises(ValueError, match=r"label revision names unknown argument version.*args.canary-revision"):
        parse_spec(body)
