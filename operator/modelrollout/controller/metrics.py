"""The operator's own Prometheus metrics (served on /metrics).

Names are API: dashboards and alerts use them. Label values are the ModelDeployment's namespace
and name, the analysis metric's name and outcome; revisions are not labels (they change with every
rollout and would grow series without bound).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelrollout.core.enums import Phase
from modelrollout.kube.tally import TALLY, RequestTally

PHASES = tuple(Phase)

REGISTRY = CollectorRegistry()
PHASE = Gauge(
    "modelrollout_rollout_phase",
    "1 for the ModelDeployment's current phase, 0 for the others",
    ["namespace", "name", "phase"],
    registry=REGISTRY,
)
CANARY_WEIGHT = Gauge(
    "modelrollout_canary_weight_percent",
    "Percent of live traffic on the canary",
    ["namespace", "name"],
    registry=REGISTRY,
)
MIRROR_WEIGHT = Gauge(
    "modelrollout_mirror_percent",
    "Percent of live traffic mirrored to the new revision",
    ["namespace", "name"],
    registry=REGISTRY,
)
STEP = Gauge("modelrollout_rollout_step", "Index of the current canary step", ["namespace", "name"], registry=REGISTRY)
MEASUREMENT = Gauge(
    "modelrollout_analysis_measurement_value",
    "Last measured value of an analysis metric",
    ["namespace", "name", "metric"],
    registry=REGISTRY,
)
MEASUREMENTS = Counter(
    "modelrollout_analysis_measurements",
    "Analysis measurements by outcome",
    ["namespace", "name", "metric", "phase"],
    registry=REGISTRY,
)
ABORTS = Counter(
    "modelrollout_rollout_aborts", "Rollouts aborted, by reason", ["namespace", "name", "reason"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "modelrollout_reconcile_duration_seconds",
    "Time one reconcile takes",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter(
    "modelrollout_reconcile_errors", "Reconciles that failed and will be retried", registry=REGISTRY
)
LEADER = Gauge(
    "modelrollout_leader",
    "1 on the replica that reconciles (active, or peering off), 0 on a standby replica",
    registry=REGISTRY,
)
ALERT_POLLS = Counter(
    "modelrollout_alert_polls", "Polls of a rollout's rollbackOn alerts in Prometheus' ALERTS series", registry=REGISTRY
)
EVENTS_DROPPED = Counter(
    "modelrollout_events_dropped",
    "Kubernetes Events not written: the sender's queue was full, or the apiserver refused them",
    ["cause"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "modelrollout_notifications",
    "Notification sends by result: sent, retried (one failed attempt), failed (gave up), dropped (queue full)",
    ["result"],
    registry=REGISTRY,
)
HOOK_CALLS = Counter(
    "modelrollout_hook_calls",
    "Hook calls by point and result: sent (2xx), failed; for hooks that gate nothing also retried and dropped",
    ["point", "result"],
    registry=REGISTRY,
)
HURRIED_RECONCILES = Counter(
    "modelrollout_hurried_reconciles",
    "Reconciles that wrote only what moves traffic or adds pods, and their status, because safety work for other "
    "ModelDeployments waited; the rest followed in a later reconcile",
    registry=REGISTRY,
)
WEBHOOK_ALERTS = Counter(
    "modelrollout_webhook_alerts", "Alertmanager webhook alerts received, by status", ["status"], registry=REGISTRY
)


class ApiRequests(Collector):
    """`modelrollout_kube_api_requests_total{client, verb, resource}`: every request the process sent.

    Read from the process's tally at scrape time; `client` is `operator` (reconciles, Events, peering
    reads) or `kopf` (its lists, watches and keep-alives). With
    `modelrollout_reconcile_duration_seconds_count` it gives the API requests one reconcile costs.
    """

    def __init__(self, tally: RequestTally = TALLY) -> None:
        self.tally = tally

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "modelrollout_kube_api_requests",
            "Requests this process sent to the apiserver, by client, verb and resource",
            labels=["client", "verb", "resource"],
        )
        for key, count in sorted(self.tally.counts().items()):
            family.add_metric(list(key), count)
        yield family


API_REQUESTS = ApiRequests()
REGISTRY.register(API_REQUESTS)


class CacheSizes(Collector):
    """What the watch caches hold, per resource: objects, bytes, and how often the informers listed.

    `modelrollout_cache_lists_total` is 1 per informer at start, plus 1 per watch gap (410 Gone).
    """

    def __init__(self) -> None:
        self.sizes: Callable[[], dict[str, tuple[int, int, int]]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        objects = GaugeMetricFamily("modelrollout_cache_objects", "Objects in the watch caches", labels=["resource"])
        size = GaugeMetricFamily("modelrollout_cache_bytes", "Bytes of JSON in the watch caches", labels=["resource"])
        lists = CounterMetricFamily("modelrollout_cache_lists", "Full lists by the informers", labels=["resource"])
        for resource, (count, held, listed) in sorted(self.sizes().items()):
            objects.add_metric([resource], count)
            size.add_metric([resource], held)
            lists.add_metric([resource], listed)
        yield from (objects, size, lists)


CACHE_SIZES = CacheSizes()
REGISTRY.register(CACHE_SIZES)


def record_status(namespace: str, name: str, status: dict) -> None:
    for phase in PHASES:
        PHASE.labels(namespace, name, phase).set(1 if status.get("phase") == phase else 0)
    weights = status.get("weights") or {}
    CANARY_WEIGHT.labels(namespace, name).set(weights.get("canary", 0))
    MIRROR_WEIGHT.labels(namespace, name).set(weights.get("mirror", 0))
    STEP.labels(namespace, name).set(status.get("currentStepIndex") or 0)


def record_measurement(namespace: str, name: str, metric: str, phase: str, value: float | None) -> None:
    MEASUREMENTS.labels(namespace, name, metric, phase).inc()
    if value is not None:
        MEASUREMENT.labels(namespace, name, metric).set(value)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted ModelDeployment's series."""
    for phase in PHASES:
        _remove(PHASE, namespace, name, phase)
    for gauge in (CANARY_WEIGHT, MIRROR_WEIGHT, STEP):
        _remove(gauge, namespace, name)


def _remove(metric, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
