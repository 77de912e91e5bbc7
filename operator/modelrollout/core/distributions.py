"""Distances between two distributions given as Prometheus histogram buckets.

Why: a new model can keep the old one's latency and error rate and still answer differently. The
distance between its prediction-score distribution and the stable revision's, on the same traffic and
window, shows that; the distance between live inputs and a baseline window shows input drift. A model
server exports both as Prometheus histograms, so these statistics work on bins, not on samples.

Rules:
- Input is what `sum by (le) (increase(x_bucket[window]))` returns: (le, cumulative count) pairs in any
  order. A +Inf bucket is required (it is the total: without it, observations above the last bound
  would vanish silently) and no bound may repeat.
- Cumulative counts must not decrease as le grows. `increase()` extrapolates each bucket series on
  its own, so small decreases and small negatives are rounding: up to `rounding_tolerance` (one
  observation, or 1% of the largest count if that is more) they make an empty bin. Anything larger is
  not one histogram (series mixed together, or a counter reset read without `increase()`): an error.
- Both histograms must have the same bounds, or their bins cannot be compared: an error naming both.
- When either histogram has fewer than `min_samples` observations there is no value ("insufficient
  data"); the analysis judges it as no data, inconclusive by default and never a pass.
- Statistics, with p and q the two histograms' shares per bin and P, Q their cumulative shares:
  - psi, the population stability index: Σ (p_i - q_i)·ln(p_i/q_i), the symmetric Kullback-Leibler
    divergence. A bin empty on one side would make it infinite, so shares are floored at
    `EMPTY_BIN_SHARE` and renormalised first. Rule of thumb: < 0.1 no shift, 0.1-0.25 moderate,
    > 0.25 major.
  - ks, the Kolmogorov-Smirnov distance at the bucket bounds: max_k |P_k - Q_k|, in [0, 1]. The raw
    samples' KS distance is at least this (the bounds are the only points a histogram can see).
  - jensenShannon, the Jensen-Shannon distance in base 2: sqrt(½KL(p‖m) + ½KL(q‖m)) with
    m = (p + q)/2, in [0, 1]; finite with empty bins, so no smoothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PSI = "psi"
KS = "ks"
JENSEN_SHANNON = "jensenShannon"

# The share an empty bin counts as in the PSI: 0.01%, small enough not to matter for a populated bin,
# large enough that one bin empty on one side gives a large but finite term (about 0.09 per 1% of share).
EMPTY_BIN_SHARE = 1e-4


class HistogramError(ValueError):
    """The buckets are not one histogram, or two histograms cannot be compared; the message says why."""


def rounding_tolerance(largest_count: float) -> float:
    """How far a cumulative count may fall below the one before it and still be `increase()` rounding."""
    return max(1.0, 0.01 * largest_count)


@dataclass(frozen=True)
class Histogram:
    """Observations per bin: `counts[i]` fell in (bounds[i-1], bounds[i]]; the last bound is +Inf."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.counts)

    def shares(self) -> tuple[float, ...]:
        total = self.total
        if total <= 0:
            raise HistogramError("the histogram has no observations")
        return tuple(count / total for count in self.counts)

    @classmethod
    def from_buckets(cls, buckets: Iterable[tuple[float, float]]) -> Histogram:
        """Per-bin counts from Prometheus' cumulative (le, count) buckets, in any order."""
        pairs = sorted((float(le), float(count)) for le, count in buckets)
        if not pairs:
            raise HistogramError("no buckets")
        bounds = tuple(le for le, _ in pairs)
        if any(math.isnan(le) for le in bounds):
            raise HistogramError("a bucket has le=NaN")
        repeated = sorted({le for le in bounds if bounds.count(le) > 1})
        if repeated:
            raise HistogramError(f"bucket le={_bound(repeated[0])} appears more than once; aggregate with sum by (le)")
        if bounds[-1] != math.inf:
            raise HistogramError("no +Inf bucket: the total is unknown")
        cumulative = [count for _, count in pairs]
        if not all(math.isfinite(count) for count in cumulative):
            raise HistogramError("a bucket count is NaN or infinite")
        tolerance = rounding_tolerance(max(cumulative))
        counts = []
        running = 0.0
        for le, count in pairs:
            if count < running - tolerance:
                reason = "negative" if count < 0 else f"below the previous bucket's {running:g}"
                raise HistogramError(
                    f"bucket le={_bound(le)} has count {count:g}, {reason}: not one histogram "
                    "(series mixed, or a counter reset; query increase(..._bucket[window]))"
                )
            counts.append(max(0.0, count - running))
            running = max(running, count)
        return cls(bounds, tuple(counts))


def _bound(le: float) -> str:
    return "+Inf" if le == math.inf else f"{le:g}"


def require_same_bounds(baseline: Histogram, candidate: Histogram) -> None:
    if baseline.bounds != candidate.bounds:
        shown = ", ".join(_bound(le) for le in baseline.bounds), ", ".join(_bound(le) for le in candidate.bounds)
        raise HistogramError(f"the histograms have different buckets: baseline [{shown[0]}], candidate [{shown[1]}]")


def _shares(baseline: Histogram, candidate: Histogram) -> tuple[tuple[float, ...], tuple[float, ...]]:
    require_same_bounds(baseline, candidate)
    return baseline.shares(), candidate.shares()


def _floored(shares: tuple[float, ...]) -> tuple[float, ...]:
    floored = [max(share, EMPTY_BIN_SHARE) for share in shares]
    total = sum(floored)
    return tuple(share / total for share in floored)


def psi(baseline: Histogram, candidate: Histogram) -> float:
    p, q = (_floored(shares) for shares in _shares(baseline, candidate))
    return sum((p_i - q_i) * math.log(p_i / q_i) for p_i, q_i in zip(p, q, strict=True))


def ks_distance(baseline: Histogram, candidate: Histogram) -> float:
    p, q = _shares(baseline, candidate)
    largest = cumulative_p = cumulative_q = 0.0
    for p_i, q_i in zip(p, q, strict=True):
        cumulative_p += p_i
        cumulative_q += q_i
        largest = max(largest, abs(cumulative_p - cumulative_q))
    return min(largest, 1.0)


def _kullback_leibler_base2(p: tuple[float, ...], m: tuple[float, ...]) -> float:
    return sum(p_i * math.log2(p_i / m_i) for p_i, m_i in zip(p, m, strict=True) if p_i > 0)


def jensen_shannon_distance(baseline: Histogram, candidate: Histogram) -> float:
    p, q = _shares(baseline, candidate)
    m = tuple((p_i + q_i) / 2 for p_i, q_i in zip(p, q, strict=True))
    divergence = (_kullback_leibler_base2(p, m) + _kullback_leibler_base2(q, m)) / 2
    return math.sqrt(max(0.0, divergence))  # rounding can leave -1e-17 for identical histograms


STATISTICS: dict[str, Callable[[Histogram, Histogram], float]] = {
    PSI: psi,
    KS: ks_distance,
    JENSEN_SHANNON: jensen_shannon_distance,
}


@dataclass(frozen=True)
class Distance:
    """A statistic between two histograms, or no value when either has too few observations."""

    statistic: str
    value: float | None
    baseline_samples: float
    candidate_samples: float
    min_samples: float

    @property
    def insufficient_data(self) -> str:
        """Why there is no value ('' when there is one)."""
        short = [
            f"{side} has {samples:.0f} observations"
            for side, samples in (("baseline", self.baseline_samples), ("candidate", self.candidate_samples))
            if samples < self.min_samples
        ]
        if not short:
            return ""
        return f"{' and '.join(short)}, fewer than minSamples {self.min_samples:g}"


def distance(statistic: str, baseline: Histogram, candidate: Histogram, min_samples: float) -> Distance:
    """`statistic` between the two histograms; mismatched buckets raise, too few samples give no value."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected one of {', '.join(STATISTICS)}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, not {min_samples:g}")
    require_same_bounds(baseline, candidate)
    enough = baseline.total >= min_samples and candidate.total >= min_samples
    value = STATISTICS[statistic](baseline, candidate) if enough else None
    return Distance(statistic, value, baseline.total, candidate.total, min_samples)
