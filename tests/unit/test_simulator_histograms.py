"""The traffic simulator's prediction-score and input-feature histograms: cumulative, monotonic, shaped by Behaviour."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from modelrollout.core import distributions as d
from modelrollout.core.distributions import Histogram
from modelrollout.simulator.exporter import Behaviour, TrafficSimulator, normal_shares, score_shares

SERIES = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def buckets(text: str, name: str, revision: str) -> dict[str, float]:
    """le -> value of `name`_bucket for one revision, from the exposition text."""
    found = {}
    for line in text.splitlines():
        match = SERIES.match(line)
        if match and match.group(1) == f"{name}_bucket" and f'revision="{revision}"' in match.group(2):
            found[re.search(r'le="([^"]+)"', match.group(2)).group(1)] = float(match.group(3))
    return found


def value(text: str, series: str) -> float:
    return float(re.search(re.escape(series) + r" (\S+)", text).group(1))


@pytest.fixture
def simulator():
    clock = Clock()
    simulator = TrafficSimulator(clock=clock)
    simulator.clock = clock
    yield simulator
    simulator.stop()


def test_normal_shares_add_up_to_one_and_follow_the_mean():
    shares = normal_shares((10.0, 20.0, 30.0), mean=20.0, stddev=5.0)
    assert sum(shares) == pytest.approx(1.0)
    assert shares[1] == pytest.approx(shares[2])  # symmetric around the mean
    assert normal_shares((10.0, 20.0), mean=15.0, stddev=0.0) == (0.0, 1.0, 0.0)
    assert sum(score_shares(Behaviour(score_mean=0.95, score_stddev=0.2))) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "count_series"),
    [
        ("model_prediction_score", 'model_predictions_total{namespace="ns",revision="r1",outcome="ok"}'),
        ("model_input_feature_value", 'model_requests_total{namespace="ns",revision="r1",code="200"}'),
    ],
)
def test_histograms_are_cumulative_and_count_every_observation(simulator, name, count_series):
    simulator.set("ns", "r1", Behaviour(null_ratio=0.1))
    simulator.clock.now = 10.0
    text = simulator.render()
    found = buckets(text, name, "r1")
    cumulative = list(found.values())
    assert list(found)[-1] == "+Inf" and cumulative == sorted(cumulative)
    assert found["+Inf"] == pytest.approx(value(text, count_series), abs=0.002)


def test_a_behaviour_change_shifts_new_observations_and_keeps_every_bucket_monotonic(simulator):
    simulator.set("ns", "r1", Behaviour())
    simulator.clock.now = 10.0
    before = buckets(simulator.render(), "model_prediction_score", "r1")
    simulator.set("ns", "r1", Behaviour(score_mean=0.6))
    simulator.clock.now = 20.0
    after = buckets(simulator.render(), "model_prediction_score", "r1")
    assert all(after[le] >= before[le] for le in before)
    window = Histogram.from_buckets((float(le), after[le] - before[le]) for le in after)
    first = Histogram.from_buckets((float(le), count) for le, count in before.items())
    shares = window.shares()
    assert shares[:-1] == pytest.approx(score_shares(Behaviour(score_mean=0.6)), abs=1e-5)
    assert d.psi(first, window) > 0.25


def test_the_put_api_takes_the_distribution_fields(simulator):
    simulator.start()
    request = urllib.request.Request(
        f"http://{simulator.address}/revisions/ns/r2",
        method="PUT",
        data=json.dumps({"score_mean": 0.7, "feature_mean": 80.0}).encode(),
    )
    assert urllib.request.urlopen(request, timeout=5).status == 200
    simulator.clock.now = 10.0
    with urllib.request.urlopen(f"http://{simulator.address}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert value(text, 'model_prediction_score_sum{namespace="ns",revision="r2"}') == pytest.approx(0.7 * 500)
    assert value(text, 'model_input_feature_value_sum{namespace="ns",revision="r2",feature="amount"}') == (
        pytest.approx(80.0 * 500)
    )
