"""The alert poller: each running rollout's alerts polled on a fixed cadence, apart from reconciles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from modelrollout.controller.alertpoller import AlertPoller
from modelrollout.controller.alerts import AlarmChecker, WebhookAlerts
from modelrollout.core.spec import parse_spec
from modelrollout.providers import NoDataError, ProviderError

KEY = ("models", "fraud-scorer")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def spec(interval: str = "100ms", alerts=("Errors",)) -> object:
    return parse_spec(
        {
            "model": {"name": "fraud", "version": "v2", "uri": "s3://models/fraud/v2"},
            "template": {"spec": {"containers": [{"name": "server", "image": "server:1"}]}},
            "rollbackOn": {"pollInterval": interval, "alerts": [{"alertname": name} for name in alerts]},
        }
    )


class Prometheus:
    """Answers ALERTS queries: the alerts in `firing` fire; counts every query."""

    def __init__(self) -> None:
        self.firing: set[str] = set()
        self.queries: list[str] = []
        self.down = False

    def __call__(self, config) -> Prometheus:
        return self

    def query(self, query: str) -> float:
        self.queries.append(query)
        if self.down:
            raise ProviderError("connection refused")
        if not any(f'alertname="{name}"' in query for name in self.firing):
            raise NoDataError("empty vector")
        return 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poller(prometheus: Prometheus, clock: Clock, woken: list) -> AlertPoller:
    """A poller that runs each poll inline when it is due (no threads)."""
    return AlertPoller("http://prometheus:9090", woken.append, prometheus, clock, submit=lambda poll: poll())


def test_polls_start_at_once_then_keep_their_interval_whatever_reconciles_do():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    checker = AlarmChecker(WebhookAlerts(), polls)
    checker.firing(KEY, spec("100ms"), NOW, running=True)
    assert polls.poll_due() == pytest.approx(0.1) and len(prometheus.queries) == 1  # polled at once; next in 100 ms
    for _ in range(5):  # reconciles in between read the last answer and never query
        clock.now += 0.02
        checker.firing(KEY, spec("100ms"), NOW, running=True)
        polls.poll_due()
    assert len(prometheus.queries) == 1
    clock.now = 1000.1
    assert polls.poll_due() == pytest.approx(0.1) and len(prometheus.queries) == 2
    clock.now = 1000.25  # late (a busy machine): one poll now, the next on the original cadence
    assert polls.poll_due() == pytest.approx(0.05) and len(prometheus.queries) == 3


def test_a_firing_alert_wakes_the_reconcile_and_is_reported_until_the_rollout_ends():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    checker = AlarmChecker(WebhookAlerts(), polls)
    assert checker.firing(KEY, spec(), NOW, running=True) == ()
    polls.poll_due()
    assert woken == []
    prometheus.firing.add("Errors")
    clock.now += 0.1
    polls.poll_due()
    assert woken == [KEY]
    assert checker.firing(KEY, spec(), NOW, running=True) == ("Errors",)
    assert checker.firing(KEY, spec(), NOW, running=False) == ()  # aborted: polling stops
    clock.now += 10
    assert polls.poll_due() is None and len(prometheus.queries) == 2


def test_only_running_rollouts_with_alerts_and_a_prometheus_are_polled():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    polls.track(KEY, spec(), running=False)
    polls.track(("models", "quiet"), spec(alerts=()), running=True)
    assert polls.poll_due() is None and prometheus.queries == []
    nowhere = AlertPoller("", woken.append, prometheus, clock, submit=lambda poll: poll())
    nowhere.track(KEY, spec(), running=True)
    assert nowhere.poll_due() is None and prometheus.queries == []


def test_a_new_interval_takes_effect_by_the_next_beat():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    polls.track(KEY, spec("15s"), running=True)
    assert polls.poll_due() == 15.0
    clock.now += 1
    polls.track(KEY, spec("250ms"), running=True)
    assert polls.poll_due() == pytest.approx(0.25)


def test_an_unreachable_prometheus_counts_as_no_alert_known_and_polling_goes_on():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    prometheus.down = True
    polls.track(KEY, spec(), running=True)
    polls.poll_due()
    assert polls.found(KEY) == () and woken == []
    prometheus.down, prometheus.firing = False, {"Errors"}
    clock.now += 0.1
    polls.poll_due()
    assert polls.found(KEY) == ("Errors",) and woken == [KEY]


def test_a_poll_still_running_is_not_stacked_by_the_next_beat():
    prometheus, clock, woken = Prometheus(), Clock(), []
    pending = []
    polls = AlertPoller("http://prometheus:9090", woken.append, prometheus, clock, submit=pending.append)
    polls.track(KEY, spec(), running=True)
    polls.poll_due()
    clock.now += 0.5  # five beats pass while the first poll hangs
    polls.poll_due()
    assert len(pending) == 1
    pending.pop()()
    assert polls.poll_due() == pytest.approx(0.1) and len(pending) == 1  # one new poll, due again in 100 ms


def test_the_poller_thread_polls_on_its_own():
    prometheus, woken = Prometheus(), threading.Event()
    prometheus.firing.add("Errors")
    polls = AlertPoller("http://prometheus:9090", lambda key: woken.set(), prometheus).start()
    try:
        polls.track(KEY, spec(), running=True)
        assert woken.wait(timeout=10) and polls.found(KEY) == ("Errors",)
    finally:
        polls.stop()


def test_a_deleted_model_deployment_is_no_longer_polled():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    polls.track(KEY, spec(), running=True)
    polls.poll_due()
    polls.forget(KEY)
    clock.now += 1
    assert polls.poll_due() is None and len(prometheus.queries) == 1 and polls.found(KEY) == ()


def scoped_spec() -> object:
    """Rolls back on `Errors` only when the alert is about the rollout's canary revision."""
    return parse_spec(
        {
            "model": {"name": "fraud", "version": "v2", "uri": "s3://models/fraud/v2"},
            "template": {"spec": {"containers": [{"name": "server", "image": "server:1"}]}},
            "rollbackOn": {
                "pollInterval": "100ms",
                "alerts": [{"alertname": "Errors", "labels": {"revision": "{{args.canary-revision}}"}}],
            },
        }
    )


def arguments(canary: str) -> dict[str, str]:
    return {"namespace": "models", "name": "fraud-scorer", "canary-revision": canary, "stable-revision": "r1"}


def test_a_scoped_alarm_fires_only_for_the_canary_revision_it_names():
    webhook = WebhookAlerts()
    checker = AlarmChecker(webhook)
    webhook.receive({"alerts": [{"status": "firing", "labels": {"alertname": "Errors", "revision": "r1"}}]})
    assert checker.firing(KEY, scoped_spec(), NOW, running=True, arguments=arguments("r2")) == ()
    webhook.receive({"alerts": [{"status": "firing", "labels": {"alertname": "Errors", "revision": "r2"}}]})
    assert checker.firing(KEY, scoped_spec(), NOW, running=True, arguments=arguments("r2")) == (
        'Errors{revision="r2"}',
    )
    assert checker.firing(KEY, scoped_spec(), NOW, running=True, arguments=arguments("")) == ()  # no canary


def test_a_scoped_alarm_is_polled_with_the_canary_revision_filled_in():
    prometheus, clock, woken = Prometheus(), Clock(), []
    polls = poller(prometheus, clock, woken)
    checker = AlarmChecker(WebhookAlerts(), polls)
    checker.firing(KEY, scoped_spec(), NOW, running=True, arguments=arguments("r2"))
    polls.poll_due()
    assert prometheus.queries == ['ALERTS{alertname="Errors",alertstate="firing",revision="r2"}']
    checker.firing(KEY, scoped_spec(), NOW, running=True, arguments=arguments("r3"))  # superseded by r3
    clock.now += 0.1
    polls.poll_due()
    assert prometheus.queries[-1] == 'ALERTS{alertname="Errors",alertstate="firing",revision="r3"}'
    checker.firing(KEY, scoped_spec(), NOW, running=True, arguments=arguments(""))
    clock.now += 10
    assert polls.poll_due() is None and len(prometheus.queries) == 2  # nothing to poll without a canary
