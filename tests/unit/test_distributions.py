"""Distribution distances from histogram buckets: by hand, against SciPy on the same data, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, ks_2samp

from modelrollout.core import distributions as d
from modelrollout.core.distributions import Histogram, HistogramError

INF = math.inf
BOUNDS = (0.25, 0.5, 0.75, 1.0, INF)


def cumulative(bounds: tuple[float, ...], counts: tuple[float, ...]) -> list[tuple[float, float]]:
    """Prometheus' view of per-bin counts: (le, cumulative count), +Inf last."""
    return list(zip(bounds, np.cumsum(counts).tolist(), strict=True))


def histogram(counts: tuple[float, ...], bounds: tuple[float, ...] = BOUNDS) -> Histogram:
    return Histogram.from_buckets(cumulative(bounds, counts))


# --- reading buckets ---------------------------------------------------------------------------------


def test_cumulative_buckets_in_any_order_become_bins():
    buckets = [(INF, 100.0), (0.5, 80.0), (0.25, 50.0)]
    assert Histogram.from_buckets(buckets) == Histogram((0.25, 0.5, INF), (50.0, 30.0, 20.0))


def test_le_may_be_the_strings_prometheus_uses():
    assert Histogram.from_buckets([("+Inf", 10), ("0.1", 4)]) == Histogram((0.1, INF), (4.0, 6.0))


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ([], "no buckets"),
        ([(0.5, 10.0), (1.0, 20.0)], r"no \+Inf bucket"),
        ([(0.5, 10.0), (0.5, 12.0), (INF, 20.0)], "le=0.5 appears more than once; aggregate with sum by"),
        ([(0.5, 10.0), (INF, float("nan"))], "NaN or infinite"),
        ([(float("nan"), 1.0), (INF, 2.0)], "le=NaN"),
        ([(0.5, 50.0), (1.0, 30.0), (INF, 100.0)], r"le=1 has count 30, below the previous bucket's 50"),
        ([(0.5, -5.0), (INF, 100.0)], "le=0.5 has count -5, negative"),
    ],
    ids=["empty", "no-inf", "repeated-le", "nan-count", "nan-le", "decreasing", "negative"],
)
def test_buckets_that_are_not_one_histogram_are_refused(buckets, message):
    with pytest.raises(HistogramError, match=message):
        Histogram.from_buckets(buckets)


def test_increase_rounding_makes_an_empty_bin_not_an_error():
    # increase() extrapolates every bucket series on its own: a bucket may come out a little below the
    # one before it (here 0.4 of an observation), and the +Inf bucket a little below the last.
    rounded = Histogram.from_buckets([(0.5, 100.4), (1.0, 100.0), (2.0, 150.0), (INF, 149.8), (0.1, -0.3)])
    assert rounded.counts == pytest.approx((0.0, 100.4, 0.0, 49.6, 0.0))
    assert rounded.total == pytest.approx(150.0)


def test_rounding_tolerance_is_one_observation_or_one_percent():
    assert d.rounding_tolerance(10.0) == 1.0
    assert d.rounding_tolerance(1000.0) == 10.0
    Histogram.from_buckets([(0.5, 1000.0), (INF, 990.0)])  # 1%: still rounding
    with pytest.raises(HistogramError, match="below the previous"):
        Histogram.from_buckets([(0.5, 1000.0), (INF, 989.0)])


# --- statistics by hand ------------------------------------------------------------------------------

# p = (0.5, 0.3, 0.2), q = (0.3, 0.3, 0.4) over three bins
HAND_BASELINE = (50.0, 30.0, 20.0)
HAND_CANDIDATE = (30.0, 30.0, 40.0)
HAND_BOUNDS = (0.5, 1.0, INF)
HAND = {
    # Σ (p - q) ln(p/q); the middle bin is equal and adds nothing
    d.PSI: 0.2 * math.log(0.5 / 0.3) + (-0.2) * math.log(0.2 / 0.4),
    # cumulative: (0.5, 0.8, 1.0) against (0.3, 0.6, 1.0)
    d.KS: 0.2,
    # sqrt of the mean of KL(p||m) and KL(q||m), base 2, with m = (p + q)/2 = (0.4, 0.3, 0.3)
    d.JENSEN_SHANNON: math.sqrt(
        (
            (0.5 * math.log2(0.5 / 0.4) + 0.2 * math.log2(0.2 / 0.3))
            + (0.3 * math.log2(0.3 / 0.4) + 0.4 * math.log2(0.4 / 0.3))
        )
        / 2
    ),
}


@pytest.mark.parametrize("statistic", list(HAND))
def test_statistics_match_hand_computed_values(statistic):
    baseline = histogram(HAND_BASELINE, HAND_BOUNDS)
    candidate = histogram(HAND_CANDIDATE, HAND_BOUNDS)
    assert d.STATISTICS[statistic](baseline, candidate) == pytest.approx(HAND[statistic], rel=1e-12)
    assert d.STATISTICS[statistic](candidate, baseline) == pytest.approx(HAND[statistic], rel=1e-12)  # symmetric


def test_hand_values_in_numbers():
    # The formulas above, evaluated once on paper, so a typo in them cannot hide.
    assert HAND[d.PSI] == pytest.approx(0.240795, abs=1e-6)
    assert HAND[d.JENSEN_SHANNON] == pytest.approx(0.206731, abs=1e-6)


@pytest.mark.parametrize("statistic", list(d.STATISTICS))
def test_identical_shapes_are_at_distance_zero_whatever_the_volume(statistic):
    small = histogram((5.0, 3.0, 0.0, 2.0, 0.0))
    large = histogram((500.0, 300.0, 0.0, 200.0, 0.0))
    assert d.STATISTICS[statistic](small, large) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_histograms_are_at_the_maximum_distance():
    left, right = histogram((10.0, 0.0, 0.0, 0.0, 0.0)), histogram((0.0, 0.0, 0.0, 0.0, 10.0))
    assert d.ks_distance(left, right) == 1.0
    assert d.jensen_shannon_distance(left, right) == pytest.approx(1.0)


def test_an_empty_bin_gives_a_large_finite_psi_with_the_documented_floor():
    # p = (0.5, 0.5, 0), q = (0.5, 0.25, 0.25): the empty bin counts as EMPTY_BIN_SHARE, then renormalised.
    baseline, candidate = histogram((50.0, 50.0, 0.0), HAND_BOUNDS), histogram((50.0, 25.0, 25.0), HAND_BOUNDS)
    eps = d.EMPTY_BIN_SHARE
    p = (0.5 / (1 + eps), 0.5 / (1 + eps), eps / (1 + eps))
    q = (0.5, 0.25, 0.25)
    by_hand = sum((p_i - q_i) * math.log(p_i / q_i) for p_i, q_i in zip(p, q, strict=True))
    assert d.psi(baseline, candidate) == pytest.approx(by_hand, rel=1e-12)
    assert 1.5 < d.psi(baseline, candidate) < 3.0  # dominated by the empty bin: large, not infinite


# --- statistics against SciPy on the same data --------------------------------------------------------


def seeded_counts(seed: int, bins: int = len(BOUNDS), empty: int = 0) -> tuple[float, ...]:
    counts = np.random.default_rng(seed).integers(1, 400, size=bins).astype(float)
    counts[:empty] = 0.0
    return tuple(counts.tolist())


PAIRS = [
    ("no-empty-bins", seeded_counts(1), seeded_counts(2)),
    ("similar", seeded_counts(3), tuple(c + 1 for c in seeded_counts(3))),
    ("empty-bins-on-one-side", seeded_counts(4, empty=2), seeded_counts(5)),
    ("empty-bins-on-both-sides", seeded_counts(6, empty=1), seeded_counts(7, empty=2)),
]


def samples_at_upper_bounds(counts: tuple[float, ...]) -> np.ndarray:
    """One sample per observation, placed at its bucket's upper bound (the +Inf bucket's just past the last)."""
    places = [*BOUNDS[:-1], BOUNDS[-2] + 1.0]
    return np.repeat(places, np.array(counts, dtype=int))


@pytest.mark.parametrize(("case", "a", "b"), PAIRS, ids=[p[0] for p in PAIRS])
def test_ks_equals_scipy_ks_2samp_on_samples_at_the_bounds(case, a, b):
    expected = ks_2samp(samples_at_upper_bounds(a), samples_at_upper_bounds(b)).statistic
    assert d.ks_distance(histogram(a), histogram(b)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("case", "a", "b"), PAIRS, ids=[p[0] for p in PAIRS])
def test_psi_equals_scipy_symmetric_kullback_leibler_of_the_floored_shares(case, a, b):
    def floored(counts):
        shares = np.maximum(np.array(counts) / sum(counts), d.EMPTY_BIN_SHARE)
        return shares / shares.sum()

    p, q = floored(a), floored(b)
    assert d.psi(histogram(a), histogram(b)) == pytest.approx(entropy(p, q) + entropy(q, p), rel=1e-9)


@pytest.mark.parametrize(("case", "a", "b"), PAIRS, ids=[p[0] for p in PAIRS])
def test_jensen_shannon_equals_scipy(case, a, b):
    expected = jensenshannon(np.array(a), np.array(b), base=2)  # SciPy normalises the counts itself
    assert d.jensen_shannon_distance(histogram(a), histogram(b)) == pytest.approx(expected, abs=1e-12)


def test_psi_without_empty_bins_is_unsmoothed_symmetric_kullback_leibler():
    a, b = seeded_counts(1), seeded_counts(2)
    p, q = np.array(a) / sum(a), np.array(b) / sum(b)
    assert min(p.min(), q.min()) > 10 * d.EMPTY_BIN_SHARE
    assert d.psi(histogram(a), histogram(b)) == pytest.approx(entropy(p, q) + entropy(q, p), rel=1e-6)


# --- what the analysis gets --------------------------------------------------------------------------


def test_distance_needs_the_same_buckets_on_both_sides():
    with pytest.raises(
        HistogramError, match=r"different buckets: baseline \[0.5, 1, \+Inf\], candidate \[0.5, \+Inf\]"
    ):
        d.distance(d.PSI, histogram((1.0, 1.0, 1.0), HAND_BOUNDS), histogram((1.0, 1.0), (0.5, INF)), 1)


@pytest.mark.parametrize(
    ("baseline_total", "candidate_total", "reason"),
    [
        (99.0, 500.0, "baseline has 99 observations, fewer than minSamples 100"),
        (500.0, 0.0, "candidate has 0 observations, fewer than minSamples 100"),
        (10.0, 20.0, "baseline has 10 observations and candidate has 20 observations, fewer than minSamples 100"),
        (100.0, 100.0, ""),
    ],
    ids=["baseline-short", "candidate-empty", "both-short", "exactly-enough"],
)
def test_too_few_observations_is_no_value_with_the_reason(baseline_total, candidate_total, reason):
    baseline = histogram((baseline_total, 0.0), (0.5, INF))
    candidate = histogram((candidate_total, 0.0), (0.5, INF))
    result = d.distance(d.KS, baseline, candidate, min_samples=100)
    assert result.insufficient_data == reason
    assert (result.value is None) == bool(reason)
    assert (result.baseline_samples, result.candidate_samples) == (baseline_total, candidate_total)


def test_unknown_statistic_and_nonsense_minimum_are_usage_errors():
    one = histogram((1.0, 1.0), (0.5, INF))
    with pytest.raises(ValueError, match="unknown statistic 'kl'"):
        d.distance("kl", one, one, 1)
    with pytest.raises(ValueError, match="at least 1"):
        d.distance(d.PSI, one, one, 0)


def test_only_an_inf_bucket_is_one_bin_and_no_shift():
    only = Histogram.from_buckets([(INF, 500.0)])
    assert d.distance(d.PSI, only, only, 100).value == 0.0
