"""Job metrics on the local control plane: the built-in `model-golden-set-evaluation` template, as shipped,
evaluates a real canary. Real parts: the Job controller makes the pod, the job runner runs it as a real
process (kwok runs nothing), which sends every row of the scikit-learn golden set to the canary's real
MLServer through its Service; the accuracy it writes as its termination message passes one canary and
fails another (a model answering 500 on 30% of the rows), which is rolled back."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import yaml

from modelrollout.modelserver import behaviour as behaviours
from modelrollout.modelserver import models
from modelrollout.modelserver.settings import model_deployment
from tests.conftest import FIGURES
from tests.integration.conftest import REPO, get_json, wait_for
from tests.integration.helpers import apply, healthy, wait_status
from tests.loopback import LoopbackServer

NAME = "classifier"
TEMPLATE = "model-golden-set-evaluation"
ROUTE = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}  # written, not served: the Job calls the canary Service


def shipped_template(namespace: str) -> dict:
    """The built-in template as shipped, as a namespaced copy."""
    path = REPO / "manifests" / "analysis-templates" / "evaluation-templates.yaml"
    template = copy.deepcopy(next(t for t in yaml.safe_load_all(path.read_text()) if t["metadata"]["name"] == TEMPLATE))
    template["kind"] = "ModelAnalysisTemplate"
    template["metadata"] = {"name": TEMPLATE, "namespace": namespace}
    return template


@pytest.fixture(scope="module")
def golden_set(model_servers) -> Iterator[str]:
    """The labelled data set the models were trained on, served over HTTP as the template expects."""
    dataset = models.ensure_models().dataset_file.read_bytes()
    server = LoopbackServer(lambda request: (200, dataset))
    try:
        yield server.url + "/golden-set.json"
    finally:
        server.stop()


def released(namespace: str, version: str, behaviour: str, dataset: str) -> dict:
    steps = [
        {"setWeight": 50},
        {"analysis": {"templates": [{"name": TEMPLATE}], "args": [{"name": "dataset", "value": dataset}]}},
    ]
    return model_deployment(NAME, namespace, version, behaviour, ROUTE, {"canary": {"steps": steps}})


def test_the_golden_set_job_passes_a_sound_canary_and_fails_one_that_errors(
    control_plane, model_servers, job_runner, golden_set, operator, namespace
):
    assert apply(control_plane, namespace, shipped_template(namespace)).returncode == 0
    assert apply(control_plane, namespace, released(namespace, "v1", behaviours.GOOD, golden_set)).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace, NAME), timeout=120, what="v1 serving")

    assert apply(control_plane, namespace, released(namespace, "v2", behaviours.GOOD, golden_set)).returncode == 0
    promoted = wait_status(
        control_plane,
        namespace,
        lambda s: (
            s.get("currentRevision") == s.get("stableRevision")
            and s["phase"] == "Healthy"
            and any(run.get("phase") == "Successful" for run in s.get("analysisRuns") or [])
        ),
        "v2 promoted after the golden set",
        name=NAME,
        timeout=240,
    )["status"]
    (passed,) = [run for run in promoted["analysisRuns"] if run["phase"] == "Successful"]
    (accuracy,) = passed["metrics"][0]["measurements"]
    assert accuracy["phase"] == "Successful" and float(accuracy["value"]) >= 0.9

    assert (
        apply(control_plane, namespace, released(namespace, "v3", behaviours.HOTFIX_ERRORS, golden_set)).returncode == 0
    )
    aborted = wait_status(
        control_plane, namespace, lambda s: s.get("abort"), "v3 rolled back by the golden set", name=NAME, timeout=240
    )["status"]
    assert aborted["abort"]["reason"] == "AnalysisFailed"
    assert aborted["stableRevision"] == promoted["stableRevision"]
    assert (
        "golden-set-accuracy" in aborted["abort"]["message"]
        and "did not meet successCondition result >= 0.9" in (aborted["abort"]["message"])
    )
    (failed,) = [run for run in aborted["analysisRuns"] if run["phase"] == "Failed"]
    value = float(failed["metrics"][0]["measurements"][-1]["value"])
    assert 0.5 < value < 0.9  # rows above the error threshold got no answer; the rest were scored
    FIGURES["golden-set Job accuracy: sound canary / canary answering 500 on 30% of rows"] = (
        f"{float(accuracy['value']):.4f} / {value:.4f}"
    )

    jobs = get_json(control_plane, "jobs", "-n", namespace)["items"]
    assert len(jobs) == 2
    for job in jobs:
        owner = job["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", NAME, True)
        assert job["spec"]["ttlSecondsAfterFinished"] == 600 and job["spec"]["activeDeadlineSeconds"] == 300
