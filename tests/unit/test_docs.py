"""README's ModelDeployment reference is the one generated from the CRD."""

from modelrollout.docs import END, REPO, START, reference


def test_readme_reference_matches_the_crd():
    readme = (REPO / "README.md").read_text()
    shown = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == reference(), "run: python -m modelrollout.docs --write"


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
