from modelrollout.core.spec import ObjectMeta, parse_spec
from modelrollout.render import workloads

META = ObjectMeta(name="fraud", namespace="models", uid="uid-1", generation=1)
TEMPLATE = {"metadata": {"labels": {"team": "risk"}}, "spec": {"containers": [{"name": "s", "image": "scorer"}]}}
SPEC = parse_spec(
    {
        "replicas": 3,
        "model": {"name": "fraud", "version": "7"},
        "template": TEMPLATE,
        "service": {"port": 80, "targetPort": "http", "portName": "http"},
        "strategy": {},
        "progressDeadlineSeconds": 120,
    }
)


def test_deployment_of_a_revision():
    body = workloads.deployment(META, SPEC, "abc", 3)
    assert body["metadata"]["name"] == "fraud-abc"
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelrollout.io/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["spec"]["selector"] == {
        "matchLabels": {
            "modelrollout.io/deployment": "fraud",
            "modelrollout.io/revision": "abc",
        }
    }
    pod_labels = body["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "risk"
    assert pod_labels["modelrollout.io/revision"] == "abc"
    assert pod_labels["modelrollout.io/model-version"] == "7"
    assert body["spec"]["progressDeadlineSeconds"] == 120
    assert body["spec"]["replicas"] == 3


def test_rendering_does_not_edit_the_users_template():
    workloads.deployment(META, SPEC, "abc", 3)
    assert TEMPLATE["metadata"]["labels"] == {"team": "risk"}


def test_service_selects_one_revision_with_the_spec_ports():
    body = workloads.service(META, SPEC, "abc")
    assert body["metadata"]["name"] == "fraud"
    assert body["spec"]["selector"] == {"modelrollout.io/deployment": "fraud", "modelrollout.io/revision": "abc"}
    assert body["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
