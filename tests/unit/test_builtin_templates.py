"""The built-in ClusterModelAnalysisTemplates: each metric has one kind of query, and every query, with its
arguments filled in as the operator fills them, is valid PromQL (promtool).

The real-server templates (Traefik, MLServer) are also resolved by the operator's own analysis runner, and
their queries are evaluated by promtool on series shaped like what Traefik v3.6 and MLServer 1.7 export."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from modelrollout.controller.analysis import AnalysisRunner, substitute
from modelrollout.core.rollout import AnalysisRun, Decision, Weights
from modelrollout.core.spec import ARGUMENT, AnalysisRef, TemplateRef

REPO = Path(__file__).resolve().parents[2]
BUILT_INS = REPO / "manifests" / "analysis-templates" / "model-templates.yaml"
REAL_SERVERS = REPO / "manifests" / "analysis-templates" / "real-server-templates.yaml"
BUILT_IN_ARGS = {
    "namespace": "fraud",
    "name": "fraud-scorer",
    "revision": "5d8f7c9b4",
    "canary-revision": "5d8f7c9b4",
    "stable-revision": "7c6b5a4f3",
    "canary-weight": "20",
    "stable-weight": "80",
}
PASSED_BY_THE_USER = {"feature": "amount"}
PASSED_FOR_REAL_SERVERS = {"feature": "mean_radius"}  # MLServer: one histogram per feature, model_feature_<name>


def templates(path: Path = BUILT_INS) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def queries(template: dict, passed: dict[str, str] = PASSED_BY_THE_USER) -> list[str]:
    """Every PromQL text of the template, with arguments substituted (defaults, built-ins, user's)."""
    args = {a["name"]: a["value"] for a in template["spec"].get("args", []) if "value" in a}
    args.update(BUILT_IN_ARGS)
    args.update(passed)
    where = template["metadata"]["name"]
    texts = []
    for metric in template["spec"]["metrics"]:
        prometheus = metric["provider"]["prometheus"]
        distribution = prometheus.get("distribution") or {}
        for text in (prometheus.get("query"), distribution.get("baselineQuery"), distribution.get("candidateQuery")):
            if text:
                texts.append(substitute(text, args, where))
    return texts


def test_the_built_ins_are_the_documented_nine_cluster_templates():
    names = [t["metadata"]["name"] for t in templates()]
    assert {t["kind"] for t in templates()} == {"ClusterModelAnalysisTemplate"}
    assert len(names) == len(set(names)) == 9
    readme = (REPO / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)


def test_each_metric_has_a_query_or_a_distribution_not_both():
    for template in templates():
        for metric in template["spec"]["metrics"]:
            prometheus = metric["provider"]["prometheus"]
            assert ("query" in prometheus) != ("distribution" in prometheus), template["metadata"]["name"]


def test_distribution_templates_compare_canary_with_stable_or_live_with_a_baseline_window():
    by_name = {t["metadata"]["name"]: t for t in templates()}
    shift = by_name["model-prediction-distribution-shift"]["spec"]["metrics"][0]["provider"]["prometheus"]
    assert "{{args.stable-revision}}" in shift["distribution"]["baselineQuery"]
    assert "{{args.canary-revision}}" in shift["distribution"]["candidateQuery"]
    drift = by_name["model-input-distribution-drift"]["spec"]["metrics"][0]["provider"]["prometheus"]
    assert "offset {{args.baseline-offset}}" in drift["distribution"]["baselineQuery"]
    assert "offset" not in drift["distribution"]["candidateQuery"]


def check_promql(texts: list[str], tmp_path: Path) -> None:
    rules = [{"record": f"builtin:query{index}", "expr": text} for index, text in enumerate(texts)]
    path = tmp_path / "built-in-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "built-ins", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_built_in_query_is_valid_promql(tmp_path):
    texts = [text for template in templates() for text in queries(template)]
    assert len(texts) == 11  # seven plain queries, two distributions of two queries each
    check_promql(texts, tmp_path)


# --- real servers: Traefik v3.6 and MLServer 1.7 ---------------------------------------------------------

# name: (threshold argument, its default, the successCondition's comparison, query or distribution)
REAL_SERVER_TEMPLATES = {
    "traefik-error-rate": ("max-error-rate", "0.01", "<=", "query"),
    "traefik-latency-p99": ("max-p99-seconds", "0.5", "<=", "query"),
    "traefik-error-rate-vs-stable": ("max-increase", "0.01", "<=", "query"),
    "mlserver-error-rate": ("max-error-rate", "0.01", "<=", "query"),
    "mlserver-latency-p99": ("max-p99-seconds", "0.5", "<=", "query"),
    "mlserver-inference-failures": ("max-failure-rate", "0.01", "<=", "query"),
    "mlserver-feature-distribution-shift": ("max-psi", "0.25", "<=", "distribution"),
}


def real_server_templates() -> dict[str, dict]:
    return {t["metadata"]["name"]: t for t in templates(REAL_SERVERS)}


def real_server_queries(name: str) -> list[str]:
    return queries(real_server_templates()[name], PASSED_FOR_REAL_SERVERS)


def test_the_real_server_templates_are_the_documented_cluster_templates():
    found = templates(REAL_SERVERS)
    names = [t["metadata"]["name"] for t in found]
    assert {t["kind"] for t in found} == {"ClusterModelAnalysisTemplate"}
    assert len(names) == len(set(names)) and set(names) == set(REAL_SERVER_TEMPLATES)
    assert not set(names) & {t["metadata"]["name"] for t in templates()}  # kubectl apply -f the folder: no clash
    readme = (REPO / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)


def test_real_server_templates_are_shaped_like_the_model_templates():
    model = templates()[0]
    model_args = {a["name"]: a.get("value") for a in model["spec"]["args"]}
    for name, template in real_server_templates().items():
        threshold, default, comparison, kind = REAL_SERVER_TEMPLATES[name]
        assert template["apiVersion"] == model["apiVersion"], name
        assert template["metadata"]["labels"] == model["metadata"]["labels"], name
        assert template["metadata"]["annotations"]["modelrollout.io/description"].strip(), name
        args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
        assert args["prometheus"] == model_args["prometheus"], name
        assert re.fullmatch(r"\d+m", args["window"]), name
        assert args[threshold] == default, name
        (metric,) = template["spec"]["metrics"]
        assert metric["successCondition"] == f"result {comparison} {{{{args.{threshold}}}}}", name
        assert {"interval", "count", "failureLimit"} <= set(metric), name
        assert metric["count"] >= 1 and metric["failureLimit"] >= 1, name
        prometheus = metric["provider"]["prometheus"]
        assert prometheus["address"] == "{{args.prometheus}}" and prometheus["timeout"] == "10s", name
        assert set(prometheus) == {"address", kind, "timeout"}, name
        used = set(ARGUMENT.findall(yaml.safe_dump(template["spec"])))
        assert used <= set(args) | set(BUILT_IN_ARGS), f"{name}: undeclared {used - set(args) - set(BUILT_IN_ARGS)}"
        assert "{{args.window}}" in yaml.safe_dump(prometheus[kind]), name


def test_traefik_templates_read_the_operators_services_and_mlserver_templates_the_revision():
    for name, template in real_server_templates().items():
        texts = yaml.safe_dump(template["spec"]["metrics"][0]["provider"]["prometheus"])
        if name.startswith("traefik-"):
            # <namespace>-<service>-<port>@kubernetescrd, <namespace>-<service>-http-<port>@kubernetesgateway
            assert "{{args.namespace}}-{{args.name}}-canary-(http-)?[0-9]+@.+" in texts, name
            assert "traefik_service_" in texts and "revision" not in texts, name
        else:
            assert 'namespace="{{args.namespace}}"' in texts, name
            assert 'revision="{{args.revision}}"' in texts or "{{args.canary-revision}}" in texts, name
    shift = real_server_templates()["mlserver-feature-distribution-shift"]
    distribution = shift["spec"]["metrics"][0]["provider"]["prometheus"]["distribution"]
    assert distribution["statistic"] == "psi"
    assert "{{args.stable-revision}}" in distribution["baselineQuery"]
    assert "{{args.canary-revision}}" in distribution["candidateQuery"]
    # The feature is part of a metric name: it must sit in a string matcher, where it is escaped.
    assert all(
        '{__name__="model_feature_{{args.feature}}_bucket"' in distribution[q]
        for q in ("baselineQuery", "candidateQuery")
    )
    assert [a for a in shift["spec"]["args"] if a["name"] == "feature"] == [{"name": "feature"}]  # no default


def test_every_real_server_query_is_valid_promql(tmp_path):
    texts = [text for name in REAL_SERVER_TEMPLATES for text in real_server_queries(name)]
    assert len(texts) == 8  # six plain queries, one distribution of two queries
    check_promql(texts, tmp_path)


class TemplatesByName:
    def __init__(self, found: dict[str, dict]) -> None:
        self.found = found

    def get(self, kind, namespace, name):
        assert kind.kind == "ClusterModelAnalysisTemplate" and namespace is None
        return self.found.get(name)


class RecordingPrometheus:
    """Answers every plain query with 0.0 and every histogram with the same ten buckets."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, config):
        self.config = config
        return self

    def query(self, text):
        self.queries.append(text)
        return 0.0

    def query_histogram(self, text):
        self.queries.append(text)
        return [(float(le), 100.0 * le) for le in range(1, 10)] + [(float("inf"), 1000.0)]


@pytest.mark.parametrize("name", sorted(REAL_SERVER_TEMPLATES))
def test_the_operator_resolves_and_measures_each_real_server_template(name):
    prometheus = RecordingPrometheus()
    runner = AnalysisRunner(TemplatesByName(real_server_templates()), prometheus)
    body = {"metadata": {"namespace": BUILT_IN_ARGS["namespace"], "name": BUILT_IN_ARGS["name"]}, "status": {}}
    passed = tuple(PASSED_FOR_REAL_SERVERS.items()) if name.endswith("distribution-shift") else ()
    run = AnalysisRun("step-1", BUILT_IN_ARGS["canary-revision"], AnalysisRef((TemplateRef(name, True),), passed))
    decision = Decision(
        deployments=(),
        delete_revisions=(),
        stable_revision=BUILT_IN_ARGS["stable-revision"],
        canary_revision=BUILT_IN_ARGS["canary-revision"],
        weights=Weights(stable=80, canary=20),
        status={},
        analysis_runs=(run,),
    )
    resolved = runner(body, decision, datetime(2026, 11, 22, 12, 0, tzinfo=UTC))["step-1"]
    assert not resolved.error
    (metric,) = resolved.metrics
    measurement = resolved.measurements[metric.name]
    assert measurement.value is not None and not measurement.error
    assert prometheus.queries == real_server_queries(name)
    assert (prometheus.config.address, prometheus.config.timeout) == ("http://prometheus.monitoring.svc:9090", 10.0)


# Series shaped like what the real servers export, one sample a minute for ten minutes; each query is
# evaluated at 10m. Args as in BUILT_IN_ARGS: namespace fraud, name fraud-scorer, canary revision 5d8f7c9b4,
# stable revision 7c6b5a4f3.
CANARY_CRD = "fraud-fraud-scorer-canary-80@kubernetescrd"  # an IngressRoute / TraefikService backend
CANARY_GATEWAY = "fraud-fraud-scorer-canary-http-80@kubernetesgateway"  # an HTTPRoute backend
STABLE_CRD = "fraud-fraud-scorer-stable-80@kubernetescrd"
INFER = "/v2/models/{model_name}/infer"
INFER_VERSION = "/v2/models/{model_name}/versions/{model_version}/infer"
CANARY = 'namespace="fraud",revision="5d8f7c9b4"'
STABLE = 'namespace="fraud",revision="7c6b5a4f3"'


def traefik_requests(service: str, code: str) -> str:
    return f'traefik_service_requests_total{{service="{service}",code="{code}",method="POST",protocol="http"}}'


def traefik_bucket(service: str, le: str) -> str:
    labels = f'service="{service}",code="200",method="POST",protocol="http",le="{le}"'
    return f"traefik_service_request_duration_seconds_bucket{{{labels}}}"


def mlserver_requests(revision: str, pod: str, path: str, status: str) -> str:
    return f'rest_server_requests_total{{{revision},pod="{pod}",method="POST",path="{path}",status_code="{status}"}}'


def mlserver_bucket(revision: str, path: str, le: str) -> str:
    labels = f'{revision},pod="p1",method="POST",path="{path}",status_code="200",le="{le}"'
    return f"rest_server_request_duration_seconds_bucket{{{labels}}}"


def latency_buckets(bucket, *labels: str) -> dict[str, str]:
    """90 of 100 requests a minute under 0.1 s, 99 under 0.3 s: p99 is 0.3 s."""
    counts = {"0.1": 90, "0.3": 99, "1.2": 100, "5": 100, "+Inf": 100}
    return {bucket(*labels, le): f"0+{count}x10" for le, count in counts.items()}


UNHEALTHY = {
    # Traefik, canary: 100 requests a minute over both providers, 25 answered 5xx (mirrored copies count here).
    traefik_requests(CANARY_CRD, "200"): "0+40x10",
    traefik_requests(CANARY_CRD, "500"): "0+10x10",
    traefik_requests(CANARY_GATEWAY, "200"): "0+35x10",
    traefik_requests(CANARY_GATEWAY, "503"): "0+15x10",
    # Traefik, stable: 200 a minute, 25 answered 5xx.
    traefik_requests(STABLE_CRD, "200"): "0+175x10",
    traefik_requests(STABLE_CRD, "502"): "0+25x10",
    # Other Services: another namespace's, the Service <name>, a Service whose name only starts like ours.
    traefik_requests("other-fraud-scorer-canary-80@kubernetescrd", "500"): "0+1000x10",
    traefik_requests("fraud-fraud-scorer-80@kubernetescrd", "500"): "0+1000x10",
    traefik_requests("fraud-fraud-scorer-canary-shadow-80@kubernetescrd", "500"): "0+1000x10",
    **latency_buckets(traefik_bucket, CANARY_CRD),
    traefik_bucket(STABLE_CRD, "5"): "0+0x10",
    traefik_bucket(STABLE_CRD, "+Inf"): "0+100x10",
    # MLServer, canary revision: 100 inferences a minute over two pods and both infer paths, 25 answered 500.
    mlserver_requests(CANARY, "p1", INFER, "200"): "0+40x10",
    mlserver_requests(CANARY, "p1", INFER, "500"): "0+10x10",
    mlserver_requests(CANARY, "p2", INFER_VERSION, "200"): "0+35x10",
    mlserver_requests(CANARY, "p2", INFER_VERSION, "500"): "0+15x10",
    # Not inference (model metadata), the stable revision, another namespace: none of them counts.
    mlserver_requests(CANARY, "p1", "/v2/models/{model_name}", "500"): "0+1000x10",
    mlserver_requests(STABLE, "p3", INFER, "500"): "0+1000x10",
    mlserver_requests('namespace="other",revision="5d8f7c9b4"', "p4", INFER, "500"): "0+1000x10",
    **latency_buckets(mlserver_bucket, CANARY, INFER),
    mlserver_bucket(CANARY, "/v2/models/{model_name}/ready", "5"): "0+0x10",
    mlserver_bucket(CANARY, "/v2/models/{model_name}/ready", "+Inf"): "0+100x10",
    # MLServer's own inference counters: half of the canary's inferences failed.
    f'model_infer_request_success_total{{{CANARY},pod="p1",model="scorer",version="None"}}': "0+50x10",
    f'model_infer_request_failure_total{{{CANARY},pod="p1",model="scorer",version="None"}}': "0+50x10",
    f'model_infer_request_failure_total{{{STABLE},pod="p3",model="scorer",version="None"}}': "0+1000x10",
    # The runtime's per-feature histograms; another feature of the same revisions must not be read.
    **{
        f'model_feature_mean_radius_bucket{{{STABLE},pod="p3",le="{le}"}}': f"0+{n}x10"
        for le, n in (("10", 30), ("15", 70), ("+Inf", 100))
    },
    **{
        f'model_feature_mean_radius_bucket{{{CANARY},pod="p1",le="{le}"}}': f"0+{n}x10"
        for le, n in (("10", 10), ("15", 50), ("+Inf", 100))
    },
    **{f'model_feature_mean_texture_bucket{{{CANARY},pod="p1",le="{le}"}}': "0+7x10" for le in ("10", "15", "+Inf")},
}
UNHEALTHY_RESULTS = {
    "traefik-error-rate": 0.25,
    "traefik-latency-p99": 0.3,
    "traefik-error-rate-vs-stable": 0.125,  # 0.25 - 0.125
    "mlserver-error-rate": 0.25,
    "mlserver-latency-p99": 0.3,
    "mlserver-inference-failures": 0.5,
}
# Cumulative counts per bucket over the 10m window: baseline (stable), then candidate (canary).
FEATURE_HISTOGRAMS = ({"10": 300, "15": 700, "+Inf": 1000}, {"10": 100, "15": 500, "+Inf": 1000})

# Healthy: no request failed, so neither Traefik nor MLServer has exported a single error series.
HEALTHY = {
    traefik_requests(CANARY_CRD, "200"): "0+50x10",
    traefik_requests(STABLE_CRD, "200"): "0+200x10",
    mlserver_requests(CANARY, "p1", INFER, "200"): "0+50x10",
    f'model_infer_request_success_total{{{CANARY},pod="p1",model="scorer",version="None"}}': "0+50x10",
}
HEALTHY_RESULTS = {
    "traefik-error-rate": 0.0,
    "traefik-error-rate-vs-stable": 0.0,
    "mlserver-error-rate": 0.0,
    "mlserver-inference-failures": 0.0,
}


def close_to(text: str, value: float) -> dict:
    """A promtool expression test: the query's one series is `value`, give or take float rounding."""
    return {
        "expr": f"abs(({text}) - {value}) < bool 1e-9",
        "eval_time": "10m",
        "exp_samples": [{"labels": "{}", "value": 1}],
    }


def no_data(text: str) -> dict:
    """A promtool expression test: the query is empty or NaN, which the operator treats as no data."""
    return {"expr": f"absent(({text}) == ({text}))", "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 1}]}


def expression_tests(results: dict[str, float]) -> list[dict]:
    return [close_to(text, value) for name, value in results.items() for (text,) in [real_server_queries(name)]]


def test_real_server_queries_measure_what_traefik_and_mlserver_export(tmp_path):
    """promtool evaluates every query: each reads only its Services or revision, paths and histograms, a
    healthy revision (no error series at all) measures 0 rather than no data, and no traffic stays no data."""
    baseline, candidate = real_server_queries("mlserver-feature-distribution-shift")
    distribution_tests = [
        {
            "expr": text,
            "eval_time": "10m",
            "exp_samples": [{"labels": f'{{le="{le}"}}', "value": count} for le, count in histogram.items()],
        }
        for text, histogram in zip((baseline, candidate), FEATURE_HISTOGRAMS, strict=True)
    ]
    silent = {'up{job="traefik"}': "1x10"}  # no requests at all: every query is empty or NaN
    no_traffic = [no_data(text) for name in REAL_SERVER_TEMPLATES for text in real_server_queries(name)]

    def group(series: dict[str, str], tests: list[dict]) -> dict:
        return {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": tests,
        }

    assert set(UNHEALTHY_RESULTS) | {"mlserver-feature-distribution-shift"} == set(REAL_SERVER_TEMPLATES)
    unit = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            group(UNHEALTHY, expression_tests(UNHEALTHY_RESULTS) + distribution_tests),
            group(HEALTHY, expression_tests(HEALTHY_RESULTS)),
            group(silent, no_traffic),
        ],
    }
    path = tmp_path / "real-server-queries_test.yml"
    path.write_text(yaml.safe_dump(unit, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", path.name], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
