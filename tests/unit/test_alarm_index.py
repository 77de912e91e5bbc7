"""The alert indexes: a webhook wakes only the ModelDeployments it could roll back, and a reconcile
looks only at the alerts its matchers could match; both agree with matching every alert against
every matcher (the definition)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from modelrollout.controller.alerts import AlarmIndex, WebhookAlerts
from modelrollout.core.spec import AlertMatcher

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
IN_CI = bool(os.environ.get("CI"))


def firing(*alerts: dict[str, str], ends: str = "0001-01-01T00:00:00Z") -> dict:
    return {"alerts": [{"status": "firing", "labels": labels, "endsAt": ends} for labels in alerts]}


def test_a_webhook_wakes_only_the_model_deployments_its_alerts_name_among_a_thousand():
    index = AlarmIndex()
    for i in range(1000):
        index.set(("scale", f"model-{i:04d}"), (AlertMatcher("ScaleAlarm", (("md", str(i)),)),))
    alerts = [{"alertname": "ScaleAlarm", "md": str(i)} for i in (3, 500, 999)] + [{"alertname": "Other", "md": "7"}]
    assert index.woken_by(alerts) == {("scale", "model-0003"), ("scale", "model-0500"), ("scale", "model-0999")}


def test_a_scoped_matcher_wakes_for_its_own_namespace_and_any_revision():
    index = AlarmIndex()
    scoped = AlertMatcher("Errors", (("namespace", "{{args.namespace}}"), ("revision", "{{args.canary-revision}}")))
    index.set(("team-a", "fraud"), (scoped,))
    index.set(("team-b", "fraud"), (scoped,))
    assert index.woken_by([{"alertname": "Errors", "namespace": "team-a", "revision": "r9"}]) == {("team-a", "fraud")}
    assert index.woken_by([{"alertname": "Errors", "namespace": "team-c", "revision": "r9"}]) == set()


def test_a_matcher_waiting_only_for_revision_arguments_is_found_by_its_alertname():
    index = AlarmIndex()
    index.set(("models", "fraud"), (AlertMatcher("Errors", (("revision", "{{args.canary-revision}}"),)),))
    assert index.woken_by([{"alertname": "Errors", "revision": "anything"}]) == {("models", "fraud")}
    assert index.woken_by([{"alertname": "Latency", "revision": "anything"}]) == set()


def test_changed_and_forgotten_matchers_no_longer_wake():
    index = AlarmIndex()
    key = ("models", "fraud")
    index.set(key, (AlertMatcher("Errors", (("team", "a"),)),))
    index.set(key, (AlertMatcher("Errors", (("team", "b"),)),))
    assert index.woken_by([{"alertname": "Errors", "team": "a"}]) == set()
    assert index.woken_by([{"alertname": "Errors", "team": "b"}]) == {key}
    index.forget(key)
    assert index.woken_by([{"alertname": "Errors", "team": "b"}]) == set()


def test_an_alert_sent_again_with_other_labels_is_matched_by_its_new_labels_only():
    store = WebhookAlerts()
    store.receive({"alerts": [{"status": "firing", "fingerprint": "f", "labels": {"alertname": "E", "rev": "1"}}]})
    store.receive({"alerts": [{"status": "firing", "fingerprint": "f", "labels": {"alertname": "E", "rev": "2"}}]})
    assert store.matching((AlertMatcher("E", (("rev", "1"),)),), NOW) == []
    assert store.matching((AlertMatcher("E", (("rev", "2"),)),), NOW) == ['E{rev="2"}']


def test_an_alert_past_its_end_is_forgotten_at_the_next_webhook_even_if_no_matcher_looks_at_it():
    store = WebhookAlerts()
    store.receive(firing({"alertname": "Unwatched"}, ends="2026-11-24T12:05:00Z"), now=NOW)
    assert len(store) == 1
    store.receive(firing({"alertname": "Other"}), now=NOW + timedelta(minutes=10))
    assert len(store) == 1  # only Other is left
    assert store.matching((AlertMatcher("Other"),), NOW + timedelta(minutes=10)) == ["Other"]


LABELS = st.dictionaries(st.sampled_from(["team", "revision", "md"]), st.sampled_from(["a", "b", "c"]), max_size=3)
ALERTS = st.builds(lambda name, labels: {"alertname": name, **labels}, st.sampled_from(["E", "L"]), LABELS)
VALUES = st.sampled_from(["a", "b", "{{args.canary-revision}}", "{{args.namespace}}", "{{args.name}}"])
MATCHERS = st.builds(
    lambda name, labels: AlertMatcher(name, tuple(sorted(labels.items()))),
    st.sampled_from(["E", "L"]),
    st.dictionaries(st.sampled_from(["team", "revision", "md"]), VALUES, max_size=2),
)
KEYS = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["a", "c"]))
PROFILE = settings(max_examples=300, deadline=None, derandomize=IN_CI)


@PROFILE
@given(st.dictionaries(KEYS, st.lists(MATCHERS, max_size=3).map(tuple), max_size=4), st.lists(ALERTS, max_size=5))
def test_the_wake_index_wakes_exactly_those_a_full_scan_would(matchers, alerts):
    index = AlarmIndex()
    for key, owned in matchers.items():
        index.set(key, owned)
    expected = {
        key
        for key, owned in matchers.items()
        if any(m.filled({"namespace": key[0], "name": key[1]}).may_match(a) for m in owned for a in alerts)
    }
    assert index.woken_by(alerts) == expected


@PROFILE
@given(st.lists(st.tuples(st.sampled_from(["f1", "f2", "f3"]), st.booleans(), ALERTS), max_size=8), MATCHERS)
def test_the_alert_store_matches_exactly_what_a_full_scan_would(received, matcher):
    store, held = WebhookAlerts(), {}
    for fingerprint, fires, labels in received:
        status = "firing" if fires else "resolved"
        store.receive({"alerts": [{"status": status, "fingerprint": fingerprint, "labels": labels}]}, now=NOW)
        if fires:
            held[fingerprint] = labels
        else:
            held.pop(fingerprint, None)
    expected = [matcher.describe()] if any(matcher.matches(labels) for labels in held.values()) else []
    assert store.matching((matcher,), NOW) == expected
