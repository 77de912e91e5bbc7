"""The Flux Kustomization in the README is the file the GitOps integration test applies, and its health
check expressions read only status fields and condition types the operator writes.

How the expressions behave is proven by tests/integration/test_gitops.py with kustomize-controller itself.
"""

from __future__ import annotations

import re

import yaml

from modelrollout.core.conditions import ConditionType
from modelrollout.docs import REPO, shown_in

KUSTOMIZATION = REPO / "manifests" / "gitops" / "flux-kustomization.yaml"
CRD = REPO / "crds" / "modeldeployment.yaml"


def health_check() -> dict:
    (check,) = yaml.safe_load(KUSTOMIZATION.read_text())["spec"]["healthCheckExprs"]
    return check


def test_the_readme_shows_the_file_the_test_applies():
    shown = shown_in((REPO / "README.md").read_text(), "flux-kustomization")
    assert shown == f"```yaml\n{KUSTOMIZATION.read_text().strip()}\n```"


def test_the_kustomization_waits_and_checks_model_deployments():
    spec = yaml.safe_load(KUSTOMIZATION.read_text())["spec"]
    crd = yaml.safe_load(CRD.read_text())
    check = health_check()
    assert spec["wait"] is True
    assert check["apiVersion"].split("/")[0] == crd["spec"]["group"]
    assert check["kind"] == crd["spec"]["names"]["kind"]
    assert {"current", "failed", "inProgress"} <= set(check)


def test_the_expressions_read_only_what_the_operator_writes():
    crd = yaml.safe_load(CRD.read_text())
    (served,) = crd["spec"]["versions"]
    status_fields = set(served["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"])
    expressions = " ".join(health_check()[key] for key in ("current", "failed", "inProgress"))
    read = set(re.findall(r"\bstatus\.(\w+)", expressions))
    assert read and read <= status_fields
    named_types = set(re.findall(r"c\.type == '(\w+)'", expressions))
    assert named_types == {"Ready", "Reconciling", "Stalled"}
    assert named_types <= {kind.value for kind in ConditionType}
