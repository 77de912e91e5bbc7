"""Gates: where a rollout may have to wait for a person, by automation level and by what the spec leaves open.

Rules:
- `PERSON_NEEDED[(gate kind, automation)]` says whether the automation level alone makes a person
  decide; the README's automation table is generated from it.
- Whatever the level, the spec can leave a gate to a person: a shadow without `duration`, a shadow
  with neither canary nor blue/green, a blue/green switch without `autoPromotionSeconds`.
- Skipping post-promotion checks and `promote-full` are only ever a person's choice; they never wait.
- An approved gate stays approved for the rest of the rollout (`status.approvals`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelrollout.core.enums import Automation, GateKind
from modelrollout.core.rollout.state import Gate
from modelrollout.core.spec import ModelDeploymentSpec

_WAITS = {
    GateKind.SHADOW: {Automation.MANUAL, Automation.SUPERVISED},
    GateKind.STEP: {Automation.MANUAL},
    GateKind.PROMOTION: {Automation.MANUAL, Automation.SUPERVISED},
    GateKind.POST_PROMOTION: set(),
    GateKind.FULL: set(),
}

PERSON_NEEDED: Mapping[tuple[GateKind, Automation], bool] = MappingProxyType(
    {(kind, level): level in levels for kind, levels in _WAITS.items() for level in Automation}
)

GATE_MEANINGS = MappingProxyType(
    {
        GateKind.SHADOW: "the end of the shadow: live traffic reaches the new model next",
        GateKind.STEP: "each canary step (for manual: before its pods are even scaled up)",
        GateKind.PROMOTION: "the final promotion, or the blue/green switch",
        GateKind.POST_PROMOTION: "skipping the post-promotion checks (a person's choice only)",
        GateKind.FULL: "promote-full: every remaining step skipped (a person's choice only)",
    }
)


def why_a_person(gate: Gate, spec: ModelDeploymentSpec, shadow_runs: bool) -> str:
    """Why `gate` waits for a person; empty when it need not."""
    shadow = spec.shadow if shadow_runs else None
    if gate.kind is GateKind.SHADOW and shadow is not None and shadow.duration is None:
        return "the shadow has no duration"
    if gate.kind is GateKind.PROMOTION and spec.blue_green is None and spec.canary is None:
        return "shadow alone"  # a person decides whether the model ever serves
    blue_green = spec.blue_green
    if gate.kind is GateKind.PROMOTION and blue_green is not None and blue_green.auto_promotion_seconds is None:
        return "no autoPromotionSeconds"
    if PERSON_NEEDED[(gate.kind, spec.automation)]:
        return f"automation {spec.automation}"
    return ""


def markdown_table() -> str:
    """Which gates wait for a person at each automation level."""
    levels = list(Automation)
    rows = ["| gate | " + " | ".join(f"`{level}`" for level in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for kind, meaning in GATE_MEANINGS.items():
        cells = ["waits" if PERSON_NEEDED[(kind, level)] else "—" for level in levels]
        rows.append(f"| {meaning} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
