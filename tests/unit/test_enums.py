"""The vocabulary is complete where members are reached by name rather than spelled out."""

from __future__ import annotations

import pytest

from modelrollout.core.enums import EventReason, GateKind, Phase, RequestAction
from modelrollout.core.rollout.state import Gate


@pytest.mark.parametrize("action", list(RequestAction))
def test_every_manual_action_has_its_event_reason(action):
    assert EventReason.manual(action).value == "Manual" + action.value.title().replace("-", "")


@pytest.mark.parametrize("phase", [Phase.HEALTHY, Phase.PAUSED, Phase.DEGRADED])
def test_every_phase_that_is_announced_has_its_event_reason(phase):
    assert EventReason.of_phase(phase).value == phase.value


@pytest.mark.parametrize("text", ["shadow", "promotion", "post-promotion", "full", "step-0", "step-7"])
def test_a_gate_reads_back_as_it_was_written(text):
    gate = Gate.parse(text)
    assert str(gate) == text
    assert (gate.kind is GateKind.STEP) == text.startswith("step-")
