"""README's generated sections (the CRD reference, the stage table and diagram, the gate table) are current."""

import pytest

from modelrollout.core.rollout.transitions import ENDINGS, TRANSITIONS
from modelrollout.docs import REPO, SECTIONS, reference, shown_in


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_readme_section_matches_its_source(section):
    readme = (REPO / "README.md").read_text()
    assert shown_in(readme, section) == SECTIONS[section](), "run: python -m modelrollout.docs --write"


def test_reference_covers_every_strategy_field():
    table = reference()
    for field in (
        "spec.strategy.canary.steps[].setWeight",
        "spec.strategy.blueGreen.autoPromotionSeconds",
        "spec.strategy.shadow.mirrorPercent",
        "spec.rollbackOn.alerts[].alertname",
        "spec.automation",
    ):
        assert f"`{field}`" in table


def test_the_stage_diagram_draws_every_transition_of_the_table():
    diagram = SECTIONS["stages"]()
    for (stage, outcome), target in TRANSITIONS.items():
        if outcome in ENDINGS:
            assert f"Running --> Idle: {outcome.value}" in diagram
            assert f"        {stage.value}\n" in diagram, f"{stage} is not drawn inside Running"
        else:
            assert f"{stage.value or 'Idle'} --> {target.value or 'Idle'}: {outcome.value}" in diagram
