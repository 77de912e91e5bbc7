"""Resolve the analysis runs the core asks for, and measure the metrics that are due.

Rules:
- Templates are read fresh each reconcile (namespaced, or cluster-wide with `clusterScope`);
  Secrets are read from the ModelDeployment's namespace.
- `{{args.NAME}}` is replaced by, in increasing priority: the template's default, the built-in
  arguments (namespace, name, model-name, model-version, model-uri, canary-service (the Service
  selecting the new revision alone, when one does), revision, canary-revision, stable-revision,
  canary-weight, stable-weight), and the values the ModelDeployment passes. Values are escaped for
  PromQL string literals (backslash and double quote), so an argument cannot close the label
  matcher it sits in.
- A `job` metric's measurement is a Job (`controller.jobmetrics`): while it runs the metric has no
  measurement and is reported pending, so the core looks again shortly instead of at once.
- Anything that keeps a run from being resolved (a missing template, Secret or argument, a condition
  that does not compile) becomes the run's `error`, naming the template and metric; the core aborts
  with that message (the stable model keeps serving).
- Only metrics that are due are queried; each query is one attempt with its timeout.
- A `distribution` metric queries two histograms (arguments substituted and escaped as in `query`)
  and measures the distance between them (`core.distributions`). An empty vector or fewer than
  `minSamples` observations on either side is no data (inconclusive by default, never a pass);
  buckets that do not form one histogram, or differ between the two, are an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from modelrollout.controller.jobmetrics import JobTemplate, job_template, measure_job
from modelrollout.core import analysis as runs
from modelrollout.core.analysis import AnalysisInput, DistributionSpec, Measurement, MetricSpec
from modelrollout.core.distributions import STATISTICS, Histogram, HistogramError, distance
from modelrollout.core.durations import parse_duration
from modelrollout.core.enums import ServiceRole
from modelrollout.core.expressions import ConditionError, compile_condition
from modelrollout.core.rollout import AnalysisRun, Decision
from modelrollout.core.spec import ARGUMENT
from modelrollout.kube.client import Kind, KubeClient, SecretMissing, secret_value
from modelrollout.providers import MetricProvider, NoDataError, ProviderError
from modelrollout.providers.datadog import AGGREGATORS as DATADOG_AGGREGATORS
from modelrollout.providers.datadog import DEFAULT_ADDRESS as DATADOG_ADDRESS
from modelrollout.providers.datadog import DatadogConfig, DatadogProvider
from modelrollout.providers.prometheus import PrometheusConfig, PrometheusProvider
from modelrollout.providers.web import WebConfig, WebProvider, parse_path
from modelrollout.render.workloads import service_name

TEMPLATE = Kind("modelrollout.io", "v1alpha1", "modelanalysistemplates", "ModelAnalysisTemplate")
CLUSTER_TEMPLATE = Kind(
    "modelrollout.io", "v1alpha1", "clustermodelanalysistemplates", "ClusterModelAnalysisTemplate", namespaced=False
)

ProviderFactory = Callable[[PrometheusConfig], MetricProvider]
ProviderConfig = PrometheusConfig | WebConfig | DatadogConfig | JobTemplate
PROVIDERS = ("prometheus", "web", "datadog", "job")  # `provider.<kind>` of a template's metric: exactly one


def metric_spec(
    metric: Mapping[str, Any], conditions: Mapping[str, str], default_count: int, **measured: Any
) -> MetricSpec:
    """The provider-independent part of a template's metric (`measured`: the provider's own fields)."""
    return MetricSpec(
        name=metric["name"],
        interval=parse_duration(metric.get("interval", "1m")),
        initial_delay=parse_duration(metric["initialDelay"]) if metric.get("initialDelay") else 0.0,
        count=int(metric["count"]) if "count" in metric else default_count,
        failure_limit=int(metric.get("failureLimit", 0)),
        inconclusive_limit=int(metric.get("inconclusiveLimit", 0)),
        consecutive_error_limit=int(metric.get("consecutiveErrorLimit", 4)),
        success_condition=conditions.get("successCondition", ""),
        failure_condition=conditions.get("failureCondition", ""),
        no_data_policy=runs.NoDataPolicy(metric.get("noDataPolicy", runs.NO_DATA_INCONCLUSIVE)),
        dry_run=bool(metric.get("dryRun", False)),
        retention=int(metric.get("measurementRetention", runs.MEASUREMENTS_KEPT)),
        **measured,
    )


NO_CANARY_SERVICE = (
    ": no Service selects the new revision alone; set a traffic router (its canary Service) or use "
    "blue/green (its preview Service)"
)


class ResolutionError(Exception):
    """The run cannot be resolved; the message says what to fix."""


def escape_promql(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def substitute(text: str, args: Mapping[str, str], where: str, escape: bool = True) -> str:
    """Replace `{{args.NAME}}`; PromQL text gets string-literal escaping, CEL conditions do not."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in args:
            hint = NO_CANARY_SERVICE if name == "canary-service" else ""
            raise ResolutionError(f"{where}: unknown argument {{{{args.{name}}}}}{hint}")
        return escape_promql(args[name]) if escape else args[name]

    return ARGUMENT.sub(replace, text)


def _taken(run: Mapping[str, Any] | None, metric: str) -> int:
    """How many measurements of `metric` the run has taken: the next one's number."""
    return next((int(m.get("count", 0)) for m in (run or {}).get("metrics", []) if m.get("name") == metric), 0)


def _new_revision_service(name: str, decision: Decision, revision: str) -> dict[str, str]:
    """`canary-service`: the Service that selects the new revision alone (a router's canary Service, or
    blue/green's preview Service); absent when none does (no router, a canary in its steps)."""
    for role in (ServiceRole.CANARY, ServiceRole.PREVIEW):
        if decision.services.get(role) == revision:
            return {"canary-service": service_name(name, role)}
    return {}


def builtin_args(body: dict[str, Any], decision: Decision, revision: str) -> dict[str, str]:
    model = (body.get("spec") or {}).get("model") or {}
    name = body["metadata"]["name"]
    return {
        "namespace": body["metadata"]["namespace"],
        "name": name,
        "model-name": str(model.get("name", "")),
        "model-version": str(model.get("version", "")),
        "model-uri": str(model.get("uri", "")),
        **_new_revision_service(name, decision, revision),
        "revision": revision,
        "canary-revision": revision,
        "stable-revision": decision.stable_revision,
        "canary-weight": str(decision.weights.canary),
        "stable-weight": str(decision.weights.stable),
    }


class AnalysisRunner:
    def __init__(
        self,
        kube: KubeClient,
        provider: ProviderFactory = PrometheusProvider,
        web: Callable[[WebConfig], WebProvider] = WebProvider,
        datadog: Callable[[DatadogConfig], DatadogProvider] = DatadogProvider,
    ):
        self._kube = kube
        self._provider = provider
        self._web = web
        self._datadog = datadog

    def __call__(self, body: dict[str, Any], decision: Decision, now: datetime) -> dict[str, AnalysisInput]:
        """Inputs for the runs `decision` asks for, measured at the reconcile's own `now`."""
        previous = {run.get("key"): run for run in (body.get("status") or {}).get("analysisRuns") or []}
        inputs: dict[str, AnalysisInput] = {}
        for run in decision.analysis_runs:
            try:
                metrics = self._resolve(body, decision, run)
            except ResolutionError as error:
                inputs[run.key] = AnalysisInput(error=str(error))
                continue
            specs = tuple(spec for spec, _ in metrics)
            before = previous.get(run.key)
            due = {metric.name for metric in runs.due_metrics(before, specs, now)}
            measurements, pending = {}, set()
            for spec, config in metrics:
                if spec.name not in due:
                    continue
                if isinstance(config, JobTemplate):
                    measured = measure_job(self._kube, body, run.key, spec.name, _taken(before, spec.name), config, now)
                    if measured is None:
                        pending.add(spec.name)
                        continue
                else:
                    measured = self._measure(config, spec, now)
                measurements[spec.name] = measured
            inputs[run.key] = AnalysisInput(specs, measurements, pending=frozenset(pending))
        return inputs

    def _measure(self, config: ProviderConfig, spec: MetricSpec, now: datetime) -> Measurement:
        try:
            if isinstance(config, WebConfig):
                return Measurement(now, self._web(config).measure())
            if isinstance(config, DatadogConfig):
                return Measurement(now, self._datadog(config).measure())
            if spec.distribution is not None:
                return self._measure_distance(self._provider(config), spec.distribution, now)
            return Measurement(now, self._provider(config).query(spec.query))
        except NoDataError as error:
            return Measurement(now, None, no_data_reason=str(error))
        except ProviderError as error:
            return Measurement(now, None, str(error))

    def _measure_distance(self, provider: MetricProvider, spec: DistributionSpec, now: datetime) -> Measurement:
        histograms = {}
        for side, query in (("baseline", spec.baseline_query), ("candidate", spec.candidate_query)):
            try:
                histograms[side] = Histogram.from_buckets(provider.query_histogram(query))
            except NoDataError:
                return Measurement(now, None, no_data_reason=f"the {side} query returned no series")
            except HistogramError as error:
                return Measurement(now, None, f"{side} histogram: {error}")
        try:
            result = distance(spec.statistic, histograms["baseline"], histograms["candidate"], spec.min_samples)
        except HistogramError as error:
            return Measurement(now, None, str(error))
        return Measurement(now, result.value, no_data_reason=result.insufficient_data)

    # --- resolution ------------------------------------------------------------------------------

    def _resolve(self, body: dict[str, Any], decision: Decision, run: AnalysisRun) -> list[tuple[MetricSpec, Any]]:
        namespace = body["metadata"]["namespace"]
        resolved = []
        for ref in run.analysis.templates:
            kind = CLUSTER_TEMPLATE if ref.cluster_scope else TEMPLATE
            template = self._kube.get(kind, None if ref.cluster_scope else namespace, ref.name)
            if template is None:
                where = "cluster-wide" if ref.cluster_scope else f"in namespace {namespace}"
                raise ResolutionError(f"{kind.kind} {ref.name} not found {where}")
            spec = template.get("spec") or {}
            args = {a["name"]: a["value"] for a in spec.get("args") or [] if "value" in a}
            args.update(builtin_args(body, decision, run.revision))
            args.update(dict(run.analysis.args))
            for declared in spec.get("args") or []:
                if declared["name"] not in args:
                    raise ResolutionError(f"{kind.kind} {ref.name}: argument {declared['name']} has no value")
            for metric in spec.get("metrics") or []:
                where = f"{kind.kind} {ref.name}, metric {metric['name']}"
                resolved.append(self._metric(namespace, metric, args, where, run.default_count))
        return resolved

    def _metric(
        self, namespace: str, metric: dict[str, Any], args: Mapping[str, str], where: str, default_count: int
    ) -> tuple[MetricSpec, ProviderConfig]:
        conditions = {}
        for condition in ("successCondition", "failureCondition"):
            if metric.get(condition):
                conditions[condition] = substitute(metric[condition], args, where, escape=False)
                try:
                    compile_condition(conditions[condition])
                except ConditionError as error:
                    raise ResolutionError(f"{where}: {error}") from None
        provider = metric.get("provider") or {}
        kinds = [kind for kind in PROVIDERS if provider.get(kind)]
        if len(kinds) != 1:
            named = f"{', '.join(PROVIDERS[:-1])} or {PROVIDERS[-1]}"
            raise ResolutionError(f"{where}: set exactly one provider: {named}")
        if kinds != ["prometheus"]:
            configure = {"web": self._web_config, "datadog": self._datadog_config, "job": self._job_config}[kinds[0]]
            try:
                config = configure(namespace, provider[kinds[0]], args, where)
                return metric_spec(metric, conditions, default_count), config
            except ValueError as error:
                raise ResolutionError(f"{where}: {error}") from None
        prometheus = provider["prometheus"]
        if ("query" in prometheus) == ("distribution" in prometheus):
            raise ResolutionError(f"{where}: set exactly one of provider.prometheus.query and .distribution")
        try:
            spec = metric_spec(
                metric,
                conditions,
                default_count,
                query=substitute(prometheus["query"], args, where) if "query" in prometheus else "",
                distribution=self._distribution(prometheus.get("distribution"), args, where),
            )
            timeout = parse_duration(prometheus.get("timeout", "10s"))
        except ValueError as error:
            raise ResolutionError(f"{where}: {error}") from None
        return spec, self._prometheus_config(namespace, prometheus, timeout, args, where)

    def _datadog_config(
        self, namespace: str, datadog: dict[str, Any], args: Mapping[str, str], where: str
    ) -> DatadogConfig:
        aggregator = str(datadog.get("aggregator", "last"))
        if aggregator not in DATADOG_AGGREGATORS:
            raise ValueError(f"aggregator {aggregator!r} is not one of {', '.join(DATADOG_AGGREGATORS)}")
        return DatadogConfig(
            query=substitute(datadog["query"], args, where, escape=False),
            api_key=self._secret(namespace, datadog["apiKeySecretRef"], "key", where).strip(),
            app_key=self._secret(namespace, datadog["appKeySecretRef"], "key", where).strip(),
            address=substitute(datadog.get("address", DATADOG_ADDRESS), args, where, escape=False),
            window=parse_duration(datadog.get("window", "5m")),
            aggregator=aggregator,
            formula=str(datadog.get("formula", "")),
            timeout=parse_duration(datadog.get("timeout", "10s")),
        )

    @staticmethod
    def _job_config(namespace: str, job: dict[str, Any], args: Mapping[str, str], where: str) -> JobTemplate:
        return job_template(job, lambda text: substitute(text, args, where, escape=False))

    def _web_config(self, namespace: str, web: dict[str, Any], args: Mapping[str, str], where: str) -> WebConfig:
        headers = []
        for header in web.get("headers") or []:
            if header.get("valueFrom"):
                value = self._secret(namespace, header["valueFrom"]["secretKeyRef"], "key", where).strip()
            else:
                value = substitute(header.get("value", ""), args, where, escape=False)
            headers.append((str(header["name"]), value))
        json_path = str(web.get("jsonPath", "$"))
        parse_path(json_path)  # a path outside the subset is refused here, not at each measurement
        return WebConfig(
            url=substitute(web["url"], args, where, escape=False),
            method=str(web.get("method", "GET")),
            headers=tuple(headers),
            body=substitute(web.get("body", ""), args, where, escape=False),
            json_path=json_path,
            timeout=parse_duration(web.get("timeout", "10s")),
            insecure_skip_verify=bool(web.get("insecureSkipVerify", False)),
        )

    @staticmethod
    def _distribution(
        distribution: dict[str, Any] | None, args: Mapping[str, str], where: str
    ) -> DistributionSpec | None:
        if distribution is None:
            return None
        statistic = distribution.get("statistic", "")
        if statistic not in STATISTICS:
            raise ValueError(f"unknown distribution statistic {statistic!r}; expected one of {', '.join(STATISTICS)}")
        min_samples = int(distribution.get("minSamples", DistributionSpec.min_samples))
        if min_samples < 1:
            raise ValueError(f"distribution minSamples must be at least 1, not {min_samples}")
        return DistributionSpec(
            statistic=statistic,
            baseline_query=substitute(distribution["baselineQuery"], args, where),
            candidate_query=substitute(distribution["candidateQuery"], args, where),
            min_samples=min_samples,
        )

    def _prometheus_config(
        self, namespace: str, prometheus: dict[str, Any], timeout: float, args: Mapping[str, str], where: str
    ) -> PrometheusConfig:
        authentication = prometheus.get("authentication") or {}
        token = username = password = ca_pem = ""
        if authentication.get("bearerTokenSecretRef"):
            token = self._secret(namespace, authentication["bearerTokenSecretRef"], "key", where)
        if authentication.get("basicAuthSecretRef"):
            reference = authentication["basicAuthSecretRef"]
            username = self._secret(
                namespace, {**reference, "key": reference.get("usernameKey", "username")}, "key", where
            )
            password = self._secret(
                namespace, {**reference, "key": reference.get("passwordKey", "password")}, "key", where
            )
        if prometheus.get("caSecretRef"):
            ca_pem = self._secret(namespace, prometheus["caSecretRef"], "key", where)
        return PrometheusConfig(
            address=substitute(prometheus["address"], args, where),
            timeout=timeout,
            bearer_token=token.strip(),
            username=username,
            password=password,
            ca_pem=ca_pem,
            insecure_skip_verify=bool(prometheus.get("insecureSkipVerify", False)),
        )

    def _secret(self, namespace: str, reference: Mapping[str, str], field: str, where: str) -> str:
        try:
            return secret_value(self._kube, namespace, reference["name"], reference[field])
        except SecretMissing as error:
            raise ResolutionError(f"{where}: {error}") from None
