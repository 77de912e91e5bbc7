"""`controller.cache.OwnedCache`: which ModelDeployment a child's change wakes, and what is read before
an informer has listed (against a scripted client whose watches stay open until stopped)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from modelrollout.controller.cache import OwnedCache, controller_owner
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, SERVICE, Kind

HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
OWNER = "modelrollout.io/deployment"


def child(name: str, owner: str, kind: str = MODEL_DEPLOYMENT.kind, controller: bool = True) -> dict[str, Any]:
    reference = {"apiVersion": "modelrollout.io/v1alpha1", "kind": kind, "name": owner, "controller": controller}
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": "5",
            "labels": {OWNER: owner},
            "ownerReferences": [reference],
        }
    }


class OpenWatches:
    """Lists answer `items` per resource (or wait until `release` when held); watches stay open until ended."""

    def __init__(self, items: dict[str, list[dict]], held: set[str] = frozenset()) -> None:
        self.items, self.held = items, set(held)
        self.release = threading.Event()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, query: dict[str, str] | None = None, **_: Any) -> dict:
        resource = path.rsplit("/", 1)[-1]
        with self._lock:
            self.requests.append((method, path))
        if resource in self.held:
            self.release.wait(10)
        return {"items": self.items.get(resource, []), "metadata": {"resourceVersion": "5"}}

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        with self._lock:
            self.requests.append(("LIST", kind.plural))
        return self.items.get(kind.plural, [])

    def watch(self, path: str, opened: Callable[[Callable[[], None]], None] | None = None, **_: Any) -> Iterator[dict]:
        ended = threading.Event()
        if opened is not None:
            opened(ended.set)
        ended.wait(10)
        return
        yield  # a generator that yields nothing


def wait(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_only_the_controlling_modeldeployment_owns_a_child():
    assert controller_owner(child("web-abc", "web")) == "web"
    assert controller_owner(child("web-abc", "web", controller=False)) is None
    assert controller_owner(child("web-abc", "web", kind="Rollout")) is None


def test_a_child_listed_wakes_its_owner_and_is_read_without_a_request():
    woken: list[tuple[str, str]] = []
    kube = OpenWatches({"deployments": [child("web-abc", "web")], "services": [child("web", "web")]})
    cache = OwnedCache(kube, ["ns"], lambda namespace, name: woken.append((namespace, name)))
    try:
        wait(lambda: all(informer.synced.is_set() for informer in cache.informers()))
        assert sorted(woken) == [("ns", "web"), ("ns", "web")]
        before = len(kube.requests)
        assert [d["metadata"]["name"] for d in cache.revisions("ns", "web")] == ["web-abc"]
        assert cache.live(SERVICE, "ns", "web")["metadata"]["name"] == "web"
        assert len(kube.requests) == before
    finally:
        cache.stop()


def test_before_the_first_list_deployments_are_listed_and_other_children_are_unknown():
    kube = OpenWatches({"deployments": [child("web-abc", "web")]}, held={"deployments", "services", "httproutes"})
    cache = OwnedCache(kube, ["ns"], lambda namespace, name: None)
    try:
        assert [d["metadata"]["name"] for d in cache.revisions("ns", "web")] == ["web-abc"]
        assert ("LIST", "deployments") in kube.requests
        assert cache.live(SERVICE, "ns", "web") is None
        assert cache.live(HTTPROUTE, "ns", "web") is None  # a routing kind is watched from its first use
        assert {informer.kind.plural for informer in cache.informers()} == {"deployments", "services", "httproutes"}
    finally:
        kube.release.set()
        cache.stop()


def test_our_own_write_is_read_back_at_once_and_an_older_event_does_not_replace_it():
    kube = OpenWatches({})
    cache = OwnedCache(kube, [None], lambda namespace, name: None)
    try:
        wait(lambda: all(informer.synced.is_set() for informer in cache.informers()))
        written = {**child("web-abc", "web"), "spec": {"replicas": 3}}
        written["metadata"]["resourceVersion"] = "9"
        cache.wrote(DEPLOYMENT, written)
        older = {**child("web-abc", "web"), "spec": {"replicas": 1}}
        cache.informers()[0].store.put(older)  # a watch event from before our write, arriving late
        assert cache.revisions("ns", "web")[0]["spec"] == {"replicas": 3}
        cache.deleted(DEPLOYMENT, "ns", "web-abc")
        assert cache.revisions("ns", "web") == []
    finally:
        cache.stop()
