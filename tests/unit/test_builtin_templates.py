"""The built-in ClusterModelAnalysisTemplates: each metric has one kind of query, and every query, with its
arguments filled in as the operator fills them, is valid PromQL (promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from modelrollout.controller.analysis import substitute

REPO = Path(__file__).resolve().parents[2]
BUILT_INS = REPO / "manifests" / "analysis-templates" / "model-templates.yaml"
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


def templates() -> list[dict]:
    return list(yaml.safe_load_all(BUILT_INS.read_text()))


def queries(template: dict) -> list[str]:
    """Every PromQL text of the template, with arguments substituted (defaults, built-ins, user's)."""
    args = {a["name"]: a["value"] for a in template["spec"].get("args", []) if "value" in a}
    args.update(BUILT_IN_ARGS)
    args.update(PASSED_BY_THE_USER)
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


def test_every_built_in_query_is_valid_promql(tmp_path):
    rules = [
        {"record": f"builtin:query{index}", "expr": text}
        for index, text in enumerate(text for template in templates() for text in queries(template))
    ]
    assert len(rules) == 11  # seven plain queries, two distributions of two queries each
    path = tmp_path / "built-in-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "built-ins", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
