"""The watch caches on a real apiserver: hand edits repaired, watch gaps (410 Gone) and outages recovered.

The operator reads what it owns from informers (`kube/informer.py`, `controller/cache.py`) and skips
applies that would change nothing (`controller/applied.py`); these tests show that neither hides a
change: an owned object edited by hand is restored, and an informer cut off by an apiserver restart
resumes and reports what changed meanwhile. A 410 in the stream or at the start of a watch is
unit-tested (tests/unit/test_informer.py): this control plane served even watches from a compacted
resourceVersion without one.
"""

from __future__ import annotations

import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.kube.client import DEPLOYMENT, KubeClient
from modelrollout.kube.informer import Informer
from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import apply, healthy, sample

OWNER = "modelrollout.io/deployment"


def routed() -> dict:
    return sample(replicas=2, trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}})


def test_owned_objects_edited_by_hand_are_restored(control_plane, operator, namespace):
    assert apply(control_plane, namespace, routed()).returncode == 0
    body = wait_for(lambda: healthy(control_plane, namespace), what="Healthy")
    stable = body["status"]["stableRevision"]
    deployment = f"fraud-scorer-{stable}"

    control_plane.kubectl(
        "patch", "service", "fraud-scorer-stable", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"selector": {"modelrollout.io/revision": "edited-by-hand"}}}',
    )  # fmt: skip
    control_plane.kubectl(
        "patch", "httproute", "fraud-scorer", "-n", namespace, "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50}]',
    )  # fmt: skip
    control_plane.kubectl("scale", "deployment", deployment, "-n", namespace, "--replicas=5")

    def restored() -> bool:
        service = get_json(control_plane, "service", "fraud-scorer-stable", "-n", namespace)
        route = get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
        replicas = get_json(control_plane, "deployment", deployment, "-n", namespace)["spec"]["replicas"]
        weights = [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]
        selected = service["spec"]["selector"]["modelrollout.io/revision"]
        return selected == stable and weights == [100, 0] and replicas == 2

    # The informers' watch events wake the reconcile: no resync (every 300 s) is needed.
    wait_for(restored, timeout=60, what="the Service selector, the route's weights and the replicas restored")

    exported = urllib.request.urlopen(f"http://{operator.http}/metrics", timeout=5).read().decode()
    cached = {
        sample.labels["resource"]: sample.value
        for family in text_string_to_metric_families(exported)
        if family.name == "modelrollout_cache_objects"
        for sample in family.samples
    }
    assert cached["deployments"] >= 1 and cached["services"] >= 3 and cached["httproutes"] >= 1


def deployment(name: str, owner: str) -> dict:
    labels = {OWNER: owner, "app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }


@pytest.fixture
def kube(control_plane):
    client = KubeClient.from_environment(str(control_plane.kubeconfig))
    yield client
    client.close()


class Seen:
    """Names the informer reported, in order, from its thread."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, obj: dict) -> None:
        with self._lock:
            self.names.append(obj["metadata"]["name"])

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.names[mark:]

    def mark(self) -> int:
        with self._lock:
            return len(self.names)


def test_after_an_apiserver_restart_the_informer_resumes_and_misses_nothing(control_plane, namespace, kube):
    for name in ("d1", "d2"):
        kube.create(DEPLOYMENT, namespace, deployment(name, "a"))
    seen = Seen()
    informer = Informer(kube, DEPLOYMENT, namespace, OWNER, OWNER, seen).start()
    try:
        wait_for(lambda: len(informer.store) == 2, what="the first list")

        control_plane.restart("kube-apiserver")
        mark = seen.mark()
        kube.delete(DEPLOYMENT, namespace, "d1")
        kube.create(DEPLOYMENT, namespace, deployment("d3", "a"))

        wait_for(
            lambda: [item["metadata"]["name"] for item in informer.store.indexed(namespace, "a")] == ["d2", "d3"],
            timeout=60,
            what="the store to match the apiserver after the restart",
        )
        # Both changes were reported (so their owners would be reconciled), whether by watch or by a relist.
        assert {"d1", "d3"} <= set(seen.since(mark))
    finally:
        informer.stop()
    wait_for(lambda: not informer.thread.is_alive(), timeout=10, what="the informer's thread to end on stop")
