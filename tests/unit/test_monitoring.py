"""Shipped monitoring: the example alerts pass promtool's checks and unit tests, the PrometheusRule holds the
same groups, and every query of the Grafana dashboard is valid PromQL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": "fraud", "$name": "fraud-scorer"}


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd)


def test_alert_rules_pass_promtool_check():
    result = promtool("check", "rules", str(MONITORING / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_alert_rules_fire_on_model_series():
    result = promtool("test", "rules", "rules_test.yml", cwd=REPO / "tests" / "monitoring")
    assert result.returncode == 0, result.stdout + result.stderr


def test_real_server_alerts_read_traefik_and_mlserver_and_ignore_near_zero_traffic():
    """A 5xx ratio per Traefik Service and per MLServer revision, like the local stack's error_rate_alert:
    only where there is traffic (rules_test.yml shows each firing, and not firing on a trickle)."""
    (group,) = [
        g
        for g in yaml.safe_load((MONITORING / "rules.yml").read_text())["groups"]
        if g["name"] == "modelrollout-real-servers"
    ]
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert set(rules) == {"TraefikServiceErrorRateHigh", "MLServerErrorRateHigh"}
    traefik, mlserver = rules["TraefikServiceErrorRateHigh"]["expr"], rules["MLServerErrorRateHigh"]["expr"]
    assert "traefik_service_requests_total" in traefik and "sum by (service)" in traefik
    assert "rest_server_requests_total" in mlserver and "sum by (namespace, revision)" in mlserver
    for rule in rules.values():
        ratio, traffic = rule["expr"].split("\nand ")
        assert ratio.rstrip().endswith("> 0.05") and traffic.strip().endswith("> 0.5"), rule["alert"]
        assert rule["labels"] == {"severity": "page"} and rule["for"] == "1m"
    tested = yaml.safe_load((REPO / "tests" / "monitoring" / "rules_test.yml").read_text())
    cases = [case for test in tested["tests"] for case in test.get("alert_rule_test", [])]
    for alert in rules:
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert}
        assert outcomes == {True, False}, f"{alert}: rules_test.yml must show it firing and not firing"


def test_prometheusrule_holds_the_same_groups():
    plain = yaml.safe_load((MONITORING / "rules.yml").read_text())["groups"]
    custom = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert custom["kind"] == "PrometheusRule" and custom["spec"]["groups"] == plain


def test_every_dashboard_query_is_valid_promql(tmp_path):
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    expressions += [annotation["expr"] for annotation in dashboard["annotations"]["list"]]
    assert len(expressions) >= 10
    rules = []
    for index, expression in enumerate(expressions):
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        rules.append({"record": f"dashboard:query{index}", "expr": expression})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Software metrics", "Input metrics", "Output metrics", "Rollout"} <= titles
