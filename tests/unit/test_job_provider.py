"""The Job provider: one Job per measurement, made once; running is no measurement; a finished Job's
termination message is the value, a failed Job a failed measurement, a Job past its deadline an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelrollout.controller.jobmetrics import job_template
from modelrollout.providers import ProviderError
from modelrollout.providers.job import JobConfig, JobProvider, Pending, job_name

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OWNER = {
    "apiVersion": "modelrollout.io/v1alpha1",
    "kind": "ModelDeployment",
    "name": "fraud",
    "uid": "u",
    "controller": True,
}
SPEC = {"template": {"spec": {"containers": [{"name": "evaluate", "image": "eval", "command": ["python"]}]}}}


class Cluster:
    """Jobs and pods by name, as the provider's read/create/pods/delete functions see them."""

    def __init__(self, job: dict | None = None, pods: list[dict] | None = None) -> None:
        self.job, self.pods, self.created, self.deleted = job, pods or [], [], []

    def provider(self, timeout=300) -> JobProvider:
        config = JobConfig("fraud-golden-set-0123456789", "models", SPEC, timeout, {"app": "fraud"}, OWNER)
        return JobProvider(
            config,
            read=lambda name: self.job,
            create=self.created.append,
            pods=lambda name: self.pods,
            delete=self.deleted.append,
            now=NOW,
        )


def job(*conditions: tuple[str, str, str], age: float = 10) -> dict:
    created = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = [
        {"type": kind, "status": "True", "reason": reason, "message": message} for kind, reason, message in conditions
    ]
    return {"metadata": {"name": "j", "creationTimestamp": created}, "status": {"conditions": status}}


def pod(message: str | None, phase="Succeeded") -> dict:
    terminated = {"exitCode": 0} | ({"message": message} if message is not None else {})
    return {"status": {"phase": phase, "containerStatuses": [{"state": {"terminated": terminated}}]}}


def test_a_missing_job_is_made_once_with_deadline_ttl_owner_and_no_retries():
    cluster = Cluster()
    with pytest.raises(Pending):
        cluster.provider().measure()
    (body,) = cluster.created
    assert body["metadata"] == {
        "name": "fraud-golden-set-0123456789",
        "namespace": "models",
        "labels": {"app": "fraud"},
        "ownerReferences": [OWNER],
    }
    assert {key: body["spec"][key] for key in ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished")} == {
        "activeDeadlineSeconds": 300,
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 600,
    }
    assert body["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "restartPolicy" not in SPEC["template"]["spec"]  # the template itself is left as it was


def test_a_running_job_is_no_measurement_and_is_not_made_again():
    cluster = Cluster(job())
    with pytest.raises(Pending):
        cluster.provider().measure()
    assert cluster.created == []


@pytest.mark.parametrize(("message", "value"), [("0.9824\n", 0.9824), ("evaluating...\n0.5", 0.5), (None, 1.0)])
def test_a_completed_job_measures_its_termination_message(message, value):
    cluster = Cluster(job(("Complete", "", "")), [pod("ignored", phase="Failed"), pod(message)])
    assert cluster.provider().measure().value == value


def test_a_termination_message_that_is_not_a_number_or_no_pod_to_read_is_an_error():
    with pytest.raises(ProviderError, match=r"termination message 'accuracy: high' is not a number"):
        Cluster(job(("Complete", "", "")), [pod("accuracy: high")]).provider().measure()
    with pytest.raises(ProviderError, match="no pod of it succeeded or is left"):
        Cluster(job(("Complete", "", ""))).provider().measure()


def test_a_failed_job_is_a_failed_measurement_and_one_past_its_deadline_an_error():
    failed = Cluster(job(("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))).provider()
    assert failed.measure().failure == (
        "Job fraud-golden-set-0123456789 failed (BackoffLimitExceeded: Job has reached the specified backoff limit)"
    )
    with pytest.raises(ProviderError, match="did not finish within 300s"):
        Cluster(job(("Failed", "DeadlineExceeded", ""))).provider().measure()


def test_a_job_the_controller_never_finished_is_deleted_and_an_error_well_past_its_deadline():
    cluster = Cluster(job(age=300 + 61))
    with pytest.raises(ProviderError, match="has not finished 360s after it was created"):
        cluster.provider().measure()
    assert cluster.deleted == ["fraud-golden-set-0123456789"]
    still = Cluster(job(age=300 + 59))
    with pytest.raises(Pending):
        still.provider().measure()


def test_job_names_are_stable_per_measurement_and_fit_a_label():
    name = job_name("a-very-long-model-deployment-name-indeed", "golden-set-accuracy-metric", "rev-step-1", 0)
    assert name == job_name("a-very-long-model-deployment-name-indeed", "golden-set-accuracy-metric", "rev-step-1", 0)
    assert name != job_name("a-very-long-model-deployment-name-indeed", "golden-set-accuracy-metric", "rev-step-1", 1)
    assert len(name) <= 63


def test_arguments_are_substituted_in_every_string_of_the_job_spec():
    template = job_template(
        {"timeoutSeconds": 120, "spec": {"template": {"spec": {"containers": [{"args": ["--url", "{{x}}"], "n": 3}]}}}},
        lambda text: text.replace("{{x}}", "http://fraud-canary.models.svc"),
    )
    assert template.timeout == 120
    assert template.spec["template"]["spec"]["containers"][0] == {
        "args": ["--url", "http://fraud-canary.models.svc"],
        "n": 3,
    }
    with pytest.raises(ValueError, match="must be a JobSpec with a pod template"):
        job_template({"spec": {}}, str)
