"""Hook calls: the payload every hook gets, the gating calls made in a reconcile, the others handed off.

Rules:
- One payload for every point (`payload`), documented in the README: what the hook is told is the
  same whether it gates or not; `event` is there only for `onEvent`, `step` only for
  `preTrafficIncrease` (1-based, as people count steps).
- A gating call is made in the reconcile that asks for it, with the hook's timeout, and answered to
  the next decision: 2xx passes; any other status, no answer in time or no connection fails, with the
  start of the body or the error as its message and the latency measured either way.
- Calls that gate nothing go to the notifier's threads after the status is written, retried like
  notifications; a success is a `HookSucceeded` Event with its latency (not for `onEvent`, which
  would double every Event), a call never taken a `HookFailed` Warning. A Job hook that gates nothing
  is created then and not waited for.
- A gating Job hook's Job is made and read by `controller.jobmetrics.hook_job`: pending while it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from modelrollout.controller import metrics
from modelrollout.controller.events import Events
from modelrollout.controller.notify import Outgoing, regarding
from modelrollout.core.conditions import format_time
from modelrollout.core.enums import EventReason, EventType
from modelrollout.core.hooks import HookAnswer, HookCall, HookPoint
from modelrollout.core.rollout import Event
from modelrollout.core.spec import ModelDeploymentSpec, ObjectMeta
from modelrollout.kube.client import KubeError
from modelrollout.providers import ProviderError
from modelrollout.providers.http import send

BODY_SHOWN = 200  # characters of an answer's body kept in status and Events

Post = Callable[[str, Mapping[str, Any], float], tuple[int, str]]  # (url, payload, timeout) -> (status, body)
JobCall = Callable[[HookCall, Mapping[str, Any]], HookAnswer]  # a Job hook's call and payload -> its Job's state
NO_JOBS = "Job hooks need the operator's Kubernetes client"


def payload(call: HookCall, meta: ObjectMeta, spec: ModelDeploymentSpec, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": call.hook.name,
        "point": call.point.value,
        "modelDeployment": {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid},
        "revision": call.revision,
        "stableRevision": call.stable_revision,
        "model": {"name": spec.model.name, "version": spec.model.version, "uri": spec.model.uri},
        "canaryWeight": call.canary_weight,
        "metadata": dict(call.hook.metadata),
        "time": format_time(now),
    }
    if call.step is not None:
        body["step"] = call.step + 1
    if call.event:
        body["event"] = dict(call.event)
    return body


def post(url: str, body: Mapping[str, Any], timeout: float) -> tuple[int, str]:
    answer = send(f"hook {url}", "POST", url, timeout, json=dict(body))
    return answer.status_code, answer.text


def call_gating(
    calls: tuple[HookCall, ...],
    meta: ObjectMeta,
    spec: ModelDeploymentSpec,
    now: datetime,
    post: Post = post,
    clock: Callable[[], float] = time.monotonic,
    job: JobCall | None = None,
) -> dict[str, HookAnswer]:
    """Make each call now, one after the other, and say how each went (a Job hook: how its Job stands)."""
    answers = {}
    for call in calls:
        body = payload(call, meta, spec, now)
        if call.hook.job is not None:
            answer = job(call, body) if job else HookAnswer(False, 0.0, None, NO_JOBS)
        else:
            answer = _call_webhook(call, body, post, clock)
        if not answer.pending:
            count_hook(call.point, "sent" if answer.ok else "failed")
        answers[call.key] = answer
    return answers


def _call_webhook(call: HookCall, body: Mapping[str, Any], post: Post, clock: Callable[[], float]) -> HookAnswer:
    started = clock()
    try:
        code, text = post(call.hook.url, body, call.hook.timeout)
    except ProviderError as error:
        return HookAnswer(False, clock() - started, None, str(error))
    return HookAnswer(200 <= code < 300, clock() - started, code, " ".join(text.split())[:BODY_SHOWN])


def count_hook(point: HookPoint, result: str) -> None:
    metrics.HOOK_CALLS.labels(point.value, result).inc()


def outgoing(calls: tuple[HookCall, ...], meta: ObjectMeta, spec: ModelDeploymentSpec, now: datetime) -> list[Outgoing]:
    """The webhook calls that gate nothing, for the notifier's threads (Job hooks: `start_jobs`)."""
    subject = regarding(meta.namespace, meta.name, meta.uid)
    return [
        Outgoing(
            f"hook {call.hook.name} ({call.point}) for revision {call.revision}",
            meta.namespace,
            subject,
            payload(call, meta, spec, now),
            url=call.hook.url,
            failed=EventReason.HOOK_FAILED,
            advice="check the hook's URL and that it answers 2xx; the rollout did not wait for it",
            count=partial(count_hook, call.point),
            sent=None if call.point is HookPoint.ON_EVENT else EventReason.HOOK_SUCCEEDED,
            timeout=call.hook.timeout,
        )
        for call in calls
        if call.hook.job is None
    ]


def start_jobs(
    calls: tuple[HookCall, ...],
    meta: ObjectMeta,
    spec: ModelDeploymentSpec,
    now: datetime,
    start: Callable[[HookCall, Mapping[str, Any]], str],
    events: Events,
) -> None:
    """Start the Job hooks that gate nothing; one that cannot be started is a Warning Event."""
    for call in calls:
        if call.hook.job is None:
            continue
        try:
            start(call, payload(call, meta, spec, now))
            count_hook(call.point, "sent")
        except KubeError as error:
            count_hook(call.point, "failed")
            message = f"hook {call.hook.name} ({call.point}): its Job could not be created: {error.message}"
            events.emit(
                regarding(meta.namespace, meta.name, meta.uid),
                Event(EventType.WARNING, EventReason.HOOK_FAILED, message),
                now,
            )
