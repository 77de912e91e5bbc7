from modelrollout.core.revision import revision_of
from modelrollout.core.spec import parse_spec

TEMPLATE = {"spec": {"containers": [{"name": "server", "image": "scorer:1", "args": ["--a", "--b"]}]}}
MODEL = {"name": "fraud", "version": "1"}


def spec(**overrides):
    body = {
        "replicas": 3,
        "model": dict(MODEL),
        "template": TEMPLATE,
        "strategy": {"canary": {"steps": [{"setWeight": 5}]}},
    }
    body.update(overrides)
    return parse_spec(body)


def test_revision_is_stable_and_ignores_key_order():
    reordered = {"spec": {"containers": [{"args": ["--a", "--b"], "image": "scorer:1", "name": "server"}]}}
    assert revision_of(TEMPLATE, MODEL) == revision_of(reordered, MODEL)
    assert len(revision_of(TEMPLATE, MODEL)) == 10


def test_replicas_are_not_part_of_the_revision():
    assert spec(replicas=3).revision == spec(replicas=7).revision


def test_template_and_model_changes_are_new_revisions():
    changed_image = {"spec": {"containers": [{"name": "server", "image": "scorer:2", "args": ["--a", "--b"]}]}}
    changed_args = {"spec": {"containers": [{"name": "server", "image": "scorer:1", "args": ["--b", "--a"]}]}}
    base = spec().revision
    assert spec(template=changed_image).revision != base
    assert spec(template=changed_args).revision != base  # list order is meaningful
    assert spec(model={"name": "fraud", "version": "2"}).revision != base


def test_strategy_and_routing_are_not_part_of_the_revision():
    other = spec(strategy={"blueGreen": {}}, trafficRouting={"istio": {"hosts": ["a"]}}, progressDeadlineSeconds=30)
    assert other.revision == spec().revision
