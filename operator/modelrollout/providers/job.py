"""The Job provider: a measurement is a Kubernetes Job (a golden-set evaluation, an LLM judge, a load test).

Rules:
- One Job per measurement, named from the run, the metric and the measurement's number, so a reconcile
  that finds it already there never starts a second one. It carries the controller owner reference of
  the ModelDeployment (deleted with it), `ttlSecondsAfterFinished` (cleaned up once judged) and
  `activeDeadlineSeconds` from the metric's `timeoutSeconds`, with `backoffLimit` 0 unless the
  template says otherwise.
- While it runs, there is no measurement yet (`Pending`): the metric stays due and is looked at again
  every few seconds. A Job that completes measures the number its pod wrote as its termination message
  (1 when it wrote none), which the metric's conditions judge. A Job that failed is a Failed
  measurement naming its reason. One that ran past its deadline is an Error, as is one the Job
  controller never finished well past it (the Job is then deleted).
- The provider only reads and writes through the functions it is given: the shell owns the client.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelrollout.core.conditions import parse_time
from modelrollout.providers import ProviderError

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
DEFAULT_TIMEOUT_SECONDS = 600
DEFAULT_TTL_SECONDS = 600
STALE_AFTER_SECONDS = 60  # past the deadline, a Job the controller has not finished is given up on


class Pending(Exception):
    """The Job runs: no measurement yet."""


@dataclass(frozen=True)
class JobConfig:
    name: str  # the Job's name for this measurement
    namespace: str
    spec: Mapping[str, Any]  # the JobSpec, arguments substituted
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    labels: Mapping[str, str] = field(default_factory=dict)
    owner: Mapping[str, Any] = field(default_factory=dict)  # the ModelDeployment's controller reference


@dataclass(frozen=True)
class Measured:
    """A finished Job: its value, or the provider's failure verdict."""

    value: float | None = None
    failure: str = ""


def job_name(model: str, metric: str, run_key: str, number: int) -> str:
    """Stable per measurement, at most 63 characters (it becomes a label value on the Job's pods)."""
    digest = hashlib.sha256(f"{run_key}/{metric}/{number}".encode()).hexdigest()[:10]
    return f"{model[:30]}-{metric[:20]}".rstrip("-").lower() + f"-{digest}"


def job_body(config: JobConfig) -> dict[str, Any]:
    """The Job for `config`: its spec with the deadline, no retries, a TTL and a Never restart policy
    unless the spec says otherwise, owned and labelled."""
    spec = copy.deepcopy(dict(config.spec))
    spec["activeDeadlineSeconds"] = config.timeout
    spec.setdefault("backoffLimit", 0)
    spec.setdefault("ttlSecondsAfterFinished", DEFAULT_TTL_SECONDS)
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    metadata: dict[str, Any] = {"name": config.name, "namespace": config.namespace, "labels": dict(config.labels)}
    if config.owner:
        metadata["ownerReferences"] = [dict(config.owner)]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


class JobProvider:
    def __init__(
        self,
        config: JobConfig,
        read: Callable[[str], dict | None],
        create: Callable[[dict], Any],
        pods: Callable[[str], list[dict]],
        delete: Callable[[str], Any],
        now: datetime,
    ) -> None:
        self._config, self._read, self._create, self._pods, self._delete, self._now = (
            config,
            read,
            create,
            pods,
            delete,
            now,
        )

    def measure(self, read_value: bool = True) -> Measured:
        """The finished Job's measurement (its value read only when asked); raises `Pending` while it
        runs, `ProviderError` on an error."""
        config = self._config
        job = self._read(config.name)
        if job is None:
            self._create(job_body(config))
            raise Pending(f"Job {config.name} started")
        conditions = {
            c.get("type"): c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
        }
        if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
            return Measured(self._result() if read_value else None)
        failed = conditions.get("Failed") or conditions.get("FailureTarget")
        if failed is not None:
            reason = failed.get("reason", "")
            if reason == "DeadlineExceeded":
                raise ProviderError(f"Job {config.name} did not finish within {config.timeout}s (timeoutSeconds)")
            detail = f": {failed['message']}" if failed.get("message") else ""
            return Measured(failure=f"Job {config.name} failed ({reason or 'Failed'}{detail})")
        created = parse_time(job["metadata"].get("creationTimestamp"))
        if created is not None and self._now > created + timedelta(seconds=config.timeout + STALE_AFTER_SECONDS):
            self._delete(config.name)
            raise ProviderError(
                f"Job {config.name} has not finished {config.timeout + STALE_AFTER_SECONDS}s after it was created "
                "and its deadline passed; is the Job controller running? The Job was deleted"
            )
        raise Pending(f"Job {config.name} is running")

    def _result(self) -> float:
        """The number a succeeded pod wrote as its termination message; 1 when it wrote none."""
        name = self._config.name
        for pod in self._pods(name):
            if (pod.get("status") or {}).get("phase") != "Succeeded":
                continue
            for status in pod["status"].get("containerStatuses") or []:
                message = ((status.get("state") or {}).get("terminated") or {}).get("message", "").strip()
                if not message:
                    continue
                try:
                    return float(message.splitlines()[-1])
                except ValueError:
                    raise ProviderError(
                        f"Job {name}: the termination message {message[:80]!r} is not a number; write the "
                        "result alone to the container's terminationMessagePath (/dev/termination-log)"
                    ) from None
            return 1.0
        raise ProviderError(f"Job {name} completed but no pod of it succeeded or is left to read its result from")
