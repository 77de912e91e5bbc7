"""Gating hooks: the rollout goes past a gating point only once every hook there answered 2xx.

Rules:
- Hooks at a point are called one at a time, in spec order; each call (per rollout, point and, for
  `preTrafficIncrease`, step) is asked for in a decision, made by the shell, and its answer taken in
  by the next decision, which records it in `status.hooks`. A hook that answered 2xx is not called
  again at that point: each hook point fires once per rollout (and step).
- A failure is called again after `retryIntervalSeconds`, up to `retries` times; then `onFailure`
  acts: `abort` (all traffic back on stable in the same decision), `pause` (a person skips it with
  promote, calls it again with retry-analysis, or aborts), or `wait` (called every interval until
  it answers 2xx). Every answer is an Event with its status code and latency.
- Nothing here moves traffic: a stage asks `passed` before it would, and does nothing while False.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modelrollout.core.durations import format_seconds
from modelrollout.core.enums import AbortReason, EventReason, EventType, PauseReason, ProgressReason
from modelrollout.core.hooks import JOB_POLL_SECONDS, Hook, HookCall, HookFailure, HookPhase, HookPoint
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.lifecycle import SHORTEST_INTERVAL_SECONDS, abort
from modelrollout.core.rollout.state import HookRecord

DONE = (HookPhase.SUCCEEDED, HookPhase.SKIPPED)


def hook_key(revision: str, point: HookPoint, hook: str, step: int | None = None) -> str:
    return f"{revision}-{point}" + (f"-step-{step}" if step is not None else "") + f"-{hook}"


def passed(d: Draft, point: HookPoint, label: str, step: int | None = None, weight: int = 0) -> bool:
    """True once every hook at `point` is done for this rollout (and step); else asks for the call that
    is due, or acts on a failure, and says what the rollout waits for."""
    for hook in d.obs.spec.hooks_at(point):
        key = hook_key(d.state.canary, point, hook.name, step)
        record = _take_answer(d, hook, point, key, step)
        if record is not None and record.phase in DONE:
            continue
        if record is not None and record.phase is HookPhase.FAILED:
            _act_on_failure(d, hook, record, label)
            return False
        if record is None or _due(hook, record, d):
            attempt = (record.attempts if record else 0) + 1
            weight = weight or d.state.canary_weight
            call = HookCall(key, hook, point, d.state.canary, d.state.stable, step, weight, attempt=attempt)
            d.hook_calls.append(call)
            d.requeue.append(SHORTEST_INTERVAL_SECONDS)  # the shell makes the call; look again once answered
        else:
            d.requeue.append((_next_call(hook, record) - d.now).total_seconds())
        d.wait(f"{label}: {_waiting_for(hook, point, record)}", ProgressReason.WAITING_FOR_HOOK)
        return False
    return True


def _waiting_for(hook: Hook, point: HookPoint, record: HookRecord | None) -> str:
    goal = "its Job to complete" if hook.job is not None else "to answer 2xx"
    text = f"waiting for hook {hook.name} ({point}) {goal}"
    if record is None:
        return text
    if record.phase is HookPhase.RUNNING:
        return f"{text}; {record.message}"
    return f"{text}; last answer: {describe(record)}, called again every {format_seconds(hook.retry_interval)}"


def _next_call(hook: Hook, record: HookRecord) -> datetime:
    wait = JOB_POLL_SECONDS if record.phase is HookPhase.RUNNING else hook.retry_interval
    return record.time + timedelta(seconds=wait)


def _due(hook: Hook, record: HookRecord, d: Draft) -> bool:
    return _next_call(hook, record) <= d.now


def describe(record: HookRecord) -> str:
    answer = f"HTTP {record.code}" if record.code is not None else "no answer"
    detail = f": {record.message}" if record.message else ""
    return f"{answer} in {record.latency:.3f}s after {record.attempts} attempt(s){detail}"


def _take_answer(d: Draft, hook: Hook, point: HookPoint, key: str, step: int | None) -> HookRecord | None:
    """The record of `key`, with this reconcile's answer folded in (once)."""
    record = d.state.hook(key)
    answer = d.obs.hook_answers.get(key)
    open_phases = (HookPhase.RETRYING, HookPhase.RUNNING)
    if answer is None or (record is not None and (record.phase not in open_phases or not _due(hook, record, d))):
        return record  # an answer to a call this decision would not make is not taken in (never twice)
    if answer.pending:  # a Job hook's Job runs: no attempt is over yet
        attempts = record.attempts if record else 0
        running = HookRecord(
            key, hook.name, point, d.state.canary, HookPhase.RUNNING, attempts, d.now, step, message=answer.message
        )
        return _keep(d, running)
    attempts = (record.attempts if record else 0) + 1
    if answer.ok:
        phase = HookPhase.SUCCEEDED
    elif hook.on_failure is HookFailure.WAIT or attempts <= hook.retries:
        phase = HookPhase.RETRYING
    else:
        phase = HookPhase.FAILED
    folded = HookRecord(
        key, hook.name, point, d.state.canary, phase, attempts, d.now, step, answer.code, answer.latency, answer.message
    )
    _keep(d, folded)
    where = f"hook {hook.name} ({point}) for revision {d.state.canary}"
    if phase is HookPhase.SUCCEEDED:
        d.emit(EventReason.HOOK_SUCCEEDED, f"{where} answered {describe(folded)}")
    elif phase is HookPhase.FAILED or hook.on_failure is not HookFailure.WAIT or attempts == 1:
        then = {
            HookPhase.FAILED: f"onFailure: {hook.on_failure}",
            HookPhase.RETRYING: f"calling again in {format_seconds(hook.retry_interval)}",
        }[phase]
        d.emit(EventReason.HOOK_FAILED, f"{where} failed: {describe(folded)}; {then}", EventType.WARNING)
    return folded


def _keep(d: Draft, record: HookRecord) -> HookRecord:
    """`record` replaces the one of its key in the state."""
    d.update(hooks=(*(r for r in d.state.hooks if r.key != record.key), record))
    return record


def _act_on_failure(d: Draft, hook: Hook, record: HookRecord, label: str) -> None:
    message = f"hook {hook.name} ({record.point}) failed: {describe(record)}"
    if hook.on_failure is HookFailure.ABORT:
        abort(d, AbortReason.HOOK_FAILED, f"{label}: {message}")
        return
    d.pause(PauseReason.HOOK_FAILED, message)
    d.hold(
        PauseReason.HOOK_FAILED,
        f"{label}: {message}; skip it, call it again or stop "
        f"(kubectl modelrollout promote|retry-analysis|abort {d.obs.meta.name})",
    )


def failed(d: Draft) -> tuple[HookRecord, ...]:
    """The running rollout's hooks that failed for good and hold it in a pause."""
    return tuple(r for r in d.state.hooks if r.phase is HookPhase.FAILED and r.revision == d.state.canary)


def skip_failed(d: Draft) -> tuple[str, ...]:
    """A person goes on without the failed hooks: recorded as skipped, never as passed."""
    names = failed(d)
    keys = {r.key for r in names}
    d.update(hooks=tuple(replace(r, phase=HookPhase.SKIPPED) if r.key in keys else r for r in d.state.hooks))
    d.unpause(PauseReason.HOOK_FAILED)
    return tuple(f"{r.hook} ({r.point})" for r in names)


def call_again(d: Draft) -> tuple[str, ...]:
    """A person asks for the failed hooks again: they start over from their first attempt."""
    names = failed(d)
    keys = {r.key for r in names}
    d.update(hooks=tuple(r for r in d.state.hooks if r.key not in keys))
    d.unpause(PauseReason.HOOK_FAILED)
    return tuple(f"{r.hook} ({r.point})" for r in names)
