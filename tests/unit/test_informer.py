"""`kube.informer`: the store a watch keeps, and how the informer lists, follows and recovers from a gap.

The informer is driven by hand against a scripted client (list answers, watch streams); the real
apiserver's 410 is exercised in tests/integration/test_cache.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelrollout.kube.client import DEPLOYMENT, KubeError
from modelrollout.kube.informer import MIN_WATCH_SECONDS, Gone, Informer, ObjectStore

OWNER = "modelrollout.io/deployment"


def obj(name: str, version: int, owner: str = "a", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(version),
            "labels": {OWNER: owner},
            "managedFields": [{"manager": "x"}],
        },
        **extra,
    }


def test_the_store_keeps_the_newest_version_and_ignores_an_older_one():
    store = ObjectStore(OWNER)
    assert store.put(obj("d", 5, spec={"replicas": 2}))
    assert not store.put(obj("d", 4, spec={"replicas": 1}))  # an event older than our own write's answer
    assert store.get("ns", "d")["spec"] == {"replicas": 2}
    assert store.put(obj("d", 6, spec={"replicas": 3}))
    assert store.get("ns", "d")["spec"] == {"replicas": 3}


def test_a_deletion_is_not_undone_by_an_older_version_arriving_later():
    store = ObjectStore(OWNER)
    store.put(obj("d", 5))
    store.remove("ns", "d", revision=9)
    assert not store.put(obj("d", 8))
    assert store.get("ns", "d") is None
    assert store.put(obj("d", 10))  # created again since


def test_the_store_drops_managed_fields_and_hands_out_copies():
    store = ObjectStore(OWNER)
    store.put(obj("d", 1, spec={"replicas": 1}))
    read = store.get("ns", "d")
    assert "managedFields" not in read["metadata"]
    read["spec"]["replicas"] = 99
    assert store.get("ns", "d")["spec"] == {"replicas": 1}


def test_the_index_follows_label_changes_and_deletions():
    store = ObjectStore(OWNER)
    store.put(obj("d1", 1, owner="a"))
    store.put(obj("d2", 2, owner="a"))
    store.put(obj("d3", 3, owner="b"))
    store.put(obj("d2", 4, owner="b"))
    store.remove("ns", "d3", revision=5)
    assert [o["metadata"]["name"] for o in store.indexed("ns", "a")] == ["d1"]
    assert [o["metadata"]["name"] for o in store.indexed("ns", "b")] == ["d2"]
    assert store.indexed("other", "a") == []


def test_replace_reports_what_vanished_and_what_changed():
    store = ObjectStore(OWNER)
    store.put(obj("kept", 1))
    store.put(obj("changed", 2))
    store.put(obj("vanished", 3))
    changed = store.replace([obj("kept", 1), obj("changed", 7), obj("new", 8)])
    assert sorted(o["metadata"]["name"] for o in changed) == ["changed", "new", "vanished"]
    assert store.get("ns", "vanished") is None and len(store) == 3


class ScriptedKube:
    """Answers the informer's list with `lists` in turn and each watch with the next script of events."""

    def __init__(self, lists: list[list[dict]], watches: list[list[dict] | Exception]) -> None:
        self.lists, self.watches = lists, watches
        self.watched_from: list[str] = []

    def request(self, method: str, path: str, query: dict[str, str] | None = None, **_: Any) -> dict:
        items = self.lists.pop(0)
        version = max((int(item["metadata"]["resourceVersion"]) for item in items), default=1)
        return {"items": items, "metadata": {"resourceVersion": str(version)}}

    def watch(self, path: str, resource_version: str | None = None, **_: Any) -> Iterator[dict]:
        self.watched_from.append(resource_version)
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script


def informer(kube: ScriptedKube) -> tuple[Informer, list[str]]:
    seen: list[str] = []
    return Informer(kube, DEPLOYMENT, "ns", OWNER, OWNER, lambda o: seen.append(o["metadata"]["name"])), seen


def test_a_watch_resumes_from_the_last_version_seen_including_bookmarks():
    kube = ScriptedKube(
        [[obj("d1", 3)]],
        [
            [{"type": "MODIFIED", "object": obj("d1", 4)}, {"type": "BOOKMARK", "object": obj("", 9)}],
            [{"type": "DELETED", "object": obj("d1", 10)}],
        ],
    )
    subject, seen = informer(kube)
    version = subject.relist()
    version = subject.follow(version)
    version = subject.follow(version)
    assert kube.watched_from == ["3", "9"]
    assert version == "10"
    assert seen == ["d1", "d1", "d1"]  # listed, modified, deleted
    assert subject.store.get("ns", "d1") is None and subject.lists == 1


def test_a_gap_in_the_stream_or_at_the_start_of_a_watch_is_gone():
    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    kube = ScriptedKube([[obj("d1", 3)]], [[expired], KubeError(410, "Gone", "too old resource version")])
    subject, _ = informer(kube)
    subject.relist()
    with pytest.raises(Gone):
        subject.follow("3")
    with pytest.raises(Gone):
        subject.follow("3")


def test_after_a_gap_the_informer_lists_again_and_reports_what_it_missed():
    kube = ScriptedKube(
        [[obj("d1", 3), obj("d2", 4)], [obj("d2", 12), obj("d3", 13)]],
        [[{"type": "ERROR", "object": {"code": 410}}], []],
    )
    subject, seen = informer(kube)
    pauses: list[float] = []

    def pause(delay: float) -> None:  # the loop's only wait: stop there
        pauses.append(delay)
        subject.stop()

    subject._stopping.wait = pause  # type: ignore[method-assign]
    subject._run()
    assert subject.lists == 2
    assert sorted(o["metadata"]["name"] for o in subject.store.indexed("ns", "a")) == ["d2", "d3"]
    assert seen[:2] == ["d1", "d2"] and sorted(seen[2:]) == ["d1", "d2", "d3"]  # d1 vanished in the gap
    assert kube.watched_from == ["4", "13"]
    assert pauses == [MIN_WATCH_SECONDS]  # the second watch ended at once: a pause, not a busy loop


def test_the_store_reports_the_bytes_it_holds():
    store = ObjectStore(OWNER)
    store.put(obj("d1", 1, spec={"replicas": 1}))
    one = store.encoded_bytes()
    store.put(obj("d2", 2, spec={"replicas": 1}))
    assert one > 0 and store.encoded_bytes() == 2 * one
    store.remove("ns", "d1")
    assert store.encoded_bytes() == one


def test_stop_after_the_connection_went_away_does_not_raise():
    """urllib3 refuses to shut down a connection already gone (an apiserver restart): stop still stops."""
    subject, _ = informer(ScriptedKube([], []))

    def gone() -> None:
        raise ValueError("Cannot shutdown socket as self._sock_shutdown is not set")

    subject._watching(gone)
    subject.stop()
    assert subject._stopping.is_set()
