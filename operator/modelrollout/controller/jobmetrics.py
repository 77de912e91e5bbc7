"""Job metrics in the shell: a template's `provider.job` resolved, and its Jobs read and written.

Rules:
- `{{args.NAME}}` is replaced in every string of the Job's spec (no PromQL escaping: these are
  command lines and environment values), with the same arguments as a query.
- The Job belongs to the ModelDeployment (controller owner reference) and carries its labels; its
  pods are found by the Job controller's `batch.kubernetes.io/job-name` label.
- A Job still running is no measurement (the metric stays due); `providers.job` says what a finished
  one measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelrollout.core.analysis import Measurement
from modelrollout.core.spec import parse_meta
from modelrollout.kube.client import POD, Kind, KubeClient, KubeError
from modelrollout.providers import ProviderError
from modelrollout.providers.job import (
    DEFAULT_TIMEOUT_SECONDS,
    JOB_NAME_LABEL,
    JobConfig,
    JobProvider,
    Pending,
    job_name,
)
from modelrollout.render.workloads import common_labels, owner_reference

JOB = Kind("batch", "v1", "jobs", "Job")


@dataclass(frozen=True)
class JobTemplate:
    """A metric's Job, arguments substituted; one Job is made from it per measurement."""

    spec: Mapping[str, Any]
    timeout: int = DEFAULT_TIMEOUT_SECONDS


def job_template(job: Mapping[str, Any], substitute: Callable[[str], str]) -> JobTemplate:
    if not isinstance(job.get("spec"), Mapping) or not job["spec"].get("template"):
        raise ValueError("provider.job.spec must be a JobSpec with a pod template")
    return JobTemplate(_substituted(job["spec"], substitute), int(job.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)))


def _substituted(value: Any, substitute: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return substitute(value)
    if isinstance(value, Mapping):
        return {key: _substituted(item, substitute) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, substitute) for item in value]
    return value


def measure_job(
    kube: KubeClient,
    body: Mapping[str, Any],
    run_key: str,
    metric: str,
    number: int,
    template: JobTemplate,
    now: datetime,
) -> Measurement | None:
    """The measurement of this metric's `number`th Job, or None while it runs (started if absent)."""
    meta = parse_meta(dict(body))
    name = job_name(meta.name, metric, run_key, number)
    config = JobConfig(
        name=name,
        namespace=meta.namespace,
        spec=template.spec,
        timeout=template.timeout,
        labels=common_labels(meta),
        owner=owner_reference(meta),
    )
    provider = JobProvider(
        config,
        read=lambda job: kube.get(JOB, meta.namespace, job),
        create=lambda job: _create(kube, meta.namespace, job),
        pods=lambda job: kube.list(POD, meta.namespace, f"{JOB_NAME_LABEL}={job}"),
        delete=lambda job: kube.delete(JOB, meta.namespace, job),
        now=now,
    )
    try:
        measured = provider.measure()
    except Pending:
        return None
    except ProviderError as error:
        return Measurement(now, None, str(error))
    except KubeError as error:
        return Measurement(now, None, f"Job {name}: {error.message}")
    return Measurement(now, measured.value, failure=measured.failure)


def _create(kube: KubeClient, namespace: str, job: dict[str, Any]) -> None:
    try:
        kube.create(JOB, namespace, job)
    except KubeError as error:
        if error.status != 409:  # made by a reconcile before this one: it runs already
            raise
