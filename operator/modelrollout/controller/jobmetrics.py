"""Jobs in the shell: a template's `provider.job` resolved, Job hooks' Jobs, and both read and written.

Rules:
- `{{args.NAME}}` is replaced in every string of the Job's spec (no PromQL escaping: these are
  command lines and environment values), with the same arguments as a query.
- The Job belongs to the ModelDeployment (controller owner reference) and carries its labels; its
  pods are found by the Job controller's `batch.kubernetes.io/job-name` label.
- A Job still running is no measurement (the metric stays due); `providers.job` says what a finished
  one measured.
- A Job hook gets the hook's payload as JSON in `MODELROLLOUT_HOOK_PAYLOAD` in each container, one Job
  per attempt; it passes when the Job completes (its termination message is not read).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelrollout.core.analysis import Measurement
from modelrollout.core.hooks import HookAnswer, HookCall
from modelrollout.core.spec import ObjectMeta, parse_meta
from modelrollout.kube.client import POD, Kind, KubeClient, KubeError
from modelrollout.providers import ProviderError
from modelrollout.providers.job import (
    DEFAULT_TIMEOUT_SECONDS,
    JOB_NAME_LABEL,
    JobConfig,
    JobProvider,
    Pending,
    job_body,
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
    config = _owned(meta, name, template.spec, template.timeout)
    try:
        measured = _provider(kube, config, now).measure()
    except Pending:
        return None
    except ProviderError as error:
        return Measurement(now, None, str(error))
    except KubeError as error:
        return Measurement(now, None, f"Job {name}: {error.message}")
    return Measurement(now, measured.value, failure=measured.failure)


def _provider(kube: KubeClient, config: JobConfig, now: datetime) -> JobProvider:
    namespace = config.namespace
    return JobProvider(
        config,
        read=lambda job: kube.get(JOB, namespace, job),
        create=lambda job: _create(kube, namespace, job),
        pods=lambda job: kube.list(POD, namespace, f"{JOB_NAME_LABEL}={job}"),
        delete=lambda job: kube.delete(JOB, namespace, job),
        now=now,
    )


def _create(kube: KubeClient, namespace: str, job: dict[str, Any]) -> None:
    try:
        kube.create(JOB, namespace, job)
    except KubeError as error:
        if error.status != 409:  # made by a reconcile before this one: it runs already
            raise


PAYLOAD_ENV = "MODELROLLOUT_HOOK_PAYLOAD"


def hook_job_config(meta: ObjectMeta, call: HookCall, payload: Mapping[str, Any]) -> JobConfig:
    """A Job hook's Job for one attempt: its spec, with the payload as JSON in every container's env."""
    spec = copy.deepcopy(dict(call.hook.job or {}))
    containers = spec.get("template", {}).get("spec", {}).get("containers") or []
    for container in containers:
        env = [item for item in container.get("env") or [] if item.get("name") != PAYLOAD_ENV]
        container["env"] = [*env, {"name": PAYLOAD_ENV, "value": json.dumps(payload)}]
    return _owned(meta, job_name(meta.name, call.hook.name, call.key, call.attempt), spec, int(call.hook.timeout))


def _owned(meta: ObjectMeta, name: str, spec: Mapping[str, Any], timeout: int) -> JobConfig:
    """A Job of the ModelDeployment: in its namespace, with its labels and its controller reference."""
    return JobConfig(name, meta.namespace, spec, timeout, common_labels(meta), owner_reference(meta))


def hook_job(
    kube: KubeClient, meta: ObjectMeta, call: HookCall, payload: Mapping[str, Any], now: datetime
) -> HookAnswer:
    """A gating Job hook's answer: pending while its Job runs (started if absent), ok once it completed."""
    config = hook_job_config(meta, call, payload)
    try:
        measured = _provider(kube, config, now).measure(read_value=False)
    except Pending as running:
        return HookAnswer(False, 0.0, None, str(running), pending=True)
    except ProviderError as error:
        return HookAnswer(False, 0.0, None, str(error))
    except KubeError as error:
        return HookAnswer(False, 0.0, None, f"Job {config.name}: {error.message}")
    if measured.failure:
        return HookAnswer(False, 0.0, None, measured.failure)
    return HookAnswer(True, 0.0, None, f"Job {config.name} completed")


def start_hook_job(kube: KubeClient, meta: ObjectMeta, call: HookCall, payload: Mapping[str, Any]) -> str:
    """Start a Job hook that gates nothing, and do not wait for it; returns the Job's name."""
    config = hook_job_config(meta, call, payload)
    _create(kube, meta.namespace, job_body(config))
    return config.name
