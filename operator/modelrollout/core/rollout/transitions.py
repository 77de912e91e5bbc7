"""The stages of a rollout and the outcomes that move it between them, as one table.

Theory of operation: a rollout is in exactly one `Stage` (IDLE when none runs). The stage modules
(shadow, canary, blue/green) and the manual requests work out an `Outcome`; `next_stage` looks the
pair up in `TRANSITIONS` and nothing else changes a stage. A pair that is not in the table is a bug
in the core, so it raises `IllegalTransition` naming both, instead of moving traffic in a way no one
designed. The README's stage table and diagram are generated from this table (`python -m
modelrollout.docs --write`), and a test keeps them in sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from modelrollout.core.enums import Stage


class Outcome(StrEnum):
    """What happened in a stage; the value is the label in the README's diagram."""

    START_SHADOW = "new revision, shadow first"
    START_CANARY = "new revision, canary"
    START_PREVIEW = "new revision, blue/green"
    SHADOW_DONE = "shadow done (duration, checks, gate)"
    SHADOW_DONE_BLUE_GREEN = "shadow done, blue/green next"
    NOW_CANARY = "blueGreen removed from the spec"
    PREVIEW_APPROVED = "preview checks passed, gate open"
    SCALED_UP = "full size available: switch"
    PROMOTED = "promoted"
    ABORTED = "abort, alarm, failed check, deadline"
    SUPERSEDED = "a newer revision"
    REVERTED = "spec back at the stable revision"
    STABLE_LOST = "stable Deployment gone: serve the spec's revision"


class IllegalTransition(Exception):
    def __init__(self, stage: Stage, outcome: Outcome) -> None:
        super().__init__(f"no transition from stage {stage.name} on outcome {outcome.name}")
        self.stage, self.outcome = stage, outcome


ENDINGS = {
    Outcome.ABORTED: Stage.IDLE,
    Outcome.SUPERSEDED: Stage.IDLE,
    Outcome.REVERTED: Stage.IDLE,
    Outcome.STABLE_LOST: Stage.IDLE,
}
RUNNING = (Stage.SHADOW, Stage.CANARY, Stage.PREVIEW, Stage.PROMOTING, Stage.POST_PROMOTION)

TRANSITIONS: Mapping[tuple[Stage, Outcome], Stage] = MappingProxyType(
    {
        (Stage.IDLE, Outcome.START_SHADOW): Stage.SHADOW,
        (Stage.IDLE, Outcome.START_CANARY): Stage.CANARY,
        (Stage.IDLE, Outcome.START_PREVIEW): Stage.PREVIEW,
        (Stage.SHADOW, Outcome.SHADOW_DONE): Stage.CANARY,
        (Stage.SHADOW, Outcome.SHADOW_DONE_BLUE_GREEN): Stage.PREVIEW,
        (Stage.PREVIEW, Outcome.PREVIEW_APPROVED): Stage.PROMOTING,
        (Stage.PREVIEW, Outcome.NOW_CANARY): Stage.CANARY,
        (Stage.PROMOTING, Outcome.SCALED_UP): Stage.POST_PROMOTION,
        (Stage.CANARY, Outcome.PROMOTED): Stage.IDLE,
        (Stage.POST_PROMOTION, Outcome.PROMOTED): Stage.IDLE,
        **{(stage, outcome): end for stage in RUNNING for outcome, end in ENDINGS.items()},
    }
)


def next_stage(stage: Stage, outcome: Outcome) -> Stage:
    try:
        return TRANSITIONS[(stage, outcome)]
    except KeyError:
        raise IllegalTransition(stage, outcome) from None


def _name(stage: Stage) -> str:
    return stage.value or "Idle"


def mermaid() -> str:
    """The state diagram of `TRANSITIONS`, ending outcomes drawn once from 'any running stage'."""
    lines = ["stateDiagram-v2", "    [*] --> Idle"]
    for (stage, outcome), target in TRANSITIONS.items():
        if outcome in ENDINGS:
            continue
        lines.append(f"    {_name(stage)} --> {_name(target)}: {outcome.value}")
    lines.append("    state Running {")
    lines.extend(f"        {_name(stage)}" for stage in RUNNING)
    lines.append("    }")
    lines.extend(f"    Running --> Idle: {outcome.value}" for outcome in ENDINGS)
    return "\n".join(lines)


def markdown_table() -> str:
    """One row per transition, in table order."""
    rows = ["| from | on | to |", "|---|---|---|"]
    for (stage, outcome), target in TRANSITIONS.items():
        if outcome in ENDINGS and stage is not RUNNING[0]:
            continue
        source = "any running stage" if outcome in ENDINGS else f"`{_name(stage)}`"
        rows.append(f"| {source} | {outcome.value} | `{_name(target)}` |")
    return "\n".join(rows)
