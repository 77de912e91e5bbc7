"""An informer: one kind's objects, listed once and then watched, kept in memory so reads cost no request.

Rules:
- List, then watch from the list's resourceVersion, with bookmarks. A watch that ends (the server's
  timeout, a dropped connection) resumes from the last resourceVersion seen: nothing is missed and
  nothing is listed again.
- A watch gap (410 Gone: the apiserver no longer keeps the history since that resourceVersion) lists
  again and replaces the store; an object that vanished during the gap is reported as deleted.
- Objects are stored as compact JSON without `metadata.managedFields` (the largest part of a
  Deployment, never read): about a fifth of the memory of the parsed dicts, and a reader always gets
  its own copy.
- The answer to one of our own writes is stored at once (`store`), so the next reconcile sees it
  before its watch event arrives. An older event never replaces a newer object: resourceVersions of
  one resource are etcd revisions, compared as numbers; one that is not a number is taken as newer.
- `on_change(obj)` runs on the informer's thread for every change seen, deletions included; it must
  only hand the object on (the controller queues its owner).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from modelrollout.core.setindex import SetIndex
from modelrollout.kube.client import Kind, KubeClient, KubeError

log = logging.getLogger(__name__)

WATCH_SECONDS = 300  # the server ends each watch after this; it resumes from the last resourceVersion
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)  # after a failed list or watch, growing, then steady
MIN_WATCH_SECONDS = 1.0  # a watch that ends sooner is followed by a pause of this long
MAX_TOMBSTONES = 10_000  # deletions remembered between lists; beyond, the oldest are forgotten

Key = tuple[str, str]  # (namespace, name)


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def _revision(obj: dict[str, Any]) -> int | None:
    try:
        return int(obj["metadata"].get("resourceVersion", ""))
    except ValueError:
        return None


class _Entry(NamedTuple):
    revision: int | None
    index_value: str | None
    encoded: bytes  # compact JSON: a fifth of the memory of the dict, and no reader can change the store


class ObjectStore:
    """Objects by (namespace, name), newest version only, indexed by one label; safe across threads."""

    def __init__(self, index_label: str | None = None) -> None:
        self._index_label = index_label
        self._lock = threading.Lock()
        self._objects: dict[Key, _Entry] = {}
        self._index: SetIndex[Key, str] = SetIndex()  # (namespace, label value) -> names
        self._deleted: dict[Key, int] = {}  # revision of a deletion, so a late answer cannot revive it

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def encoded_bytes(self) -> int:
        """Memory held by the objects' JSON (the dominant part of what the store keeps)."""
        with self._lock:
            return sum(len(entry.encoded) for entry in self._objects.values())

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._objects.get((namespace, name))
        return json.loads(entry.encoded) if entry is not None else None

    def indexed(self, namespace: str, value: str) -> list[dict[str, Any]]:
        """The objects whose index label has `value` (e.g. every child of one ModelDeployment)."""
        with self._lock:
            names = sorted(self._index.get((namespace, value)))
            entries = [self._objects[(namespace, name)] for name in names]
        return [json.loads(entry.encoded) for entry in entries]

    def put(self, obj: dict[str, Any]) -> bool:
        """Keep `obj` unless a newer version (or its deletion) is known; True when it was kept."""
        key, entry = _key(obj), self._entry(obj)
        with self._lock:
            known = self._objects.get(key)
            known_revision = known.revision if known is not None else self._deleted.get(key)
            if entry.revision is not None and known_revision is not None and entry.revision <= known_revision:
                return False  # stale: older than our own write's answer, or than the deletion
            if known is not None and known.encoded == entry.encoded:
                return False
            self._unindex(key, known)
            self._deleted.pop(key, None)
            self._objects[key] = entry
            self._reindex(key, entry)
        return True

    def remove(self, namespace: str, name: str, revision: int | None = None) -> bool:
        """Forget an object; with the deletion's revision, older versions arriving later are ignored."""
        key = (namespace, name)
        with self._lock:
            known = self._objects.pop(key, None)
            self._unindex(key, known)
            if revision is not None:
                self._deleted[key] = revision
                if len(self._deleted) > MAX_TOMBSTONES:
                    del self._deleted[next(iter(self._deleted))]
        return known is not None

    def replace(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hold exactly `objects` (a fresh list); returns those that changed, and those gone as they were."""
        entries = {_key(obj): self._entry(obj) for obj in objects}
        with self._lock:
            previous = self._objects
            gone = [json.loads(entry.encoded) for key, entry in previous.items() if key not in entries]
            changed = [
                json.loads(entry.encoded)
                for key, entry in entries.items()
                if key not in previous or previous[key].encoded != entry.encoded
            ]
            self._objects, self._index, self._deleted = entries, SetIndex(), {}
            for key, entry in entries.items():
                self._reindex(key, entry)
        return [*gone, *changed]

    def _entry(self, obj: dict[str, Any]) -> _Entry:
        metadata = {key: value for key, value in obj["metadata"].items() if key != "managedFields"}
        value = metadata.get("labels", {}).get(self._index_label) if self._index_label else None
        encoded = json.dumps({**obj, "metadata": metadata}, separators=(",", ":")).encode()
        return _Entry(_revision(obj), value, encoded)

    def _reindex(self, key: Key, entry: _Entry) -> None:
        if entry.index_value is not None:
            self._index.add((key[0], entry.index_value), key[1])

    def _unindex(self, key: Key, entry: _Entry | None) -> None:
        if entry is not None and entry.index_value is not None:
            self._index.discard((key[0], entry.index_value), key[1])


class Informer:
    """Keeps an `ObjectStore` equal to the objects of one kind (in one namespace, or all) matching a selector."""

    def __init__(
        self,
        kube: KubeClient,
        kind: Kind,
        namespace: str | None,
        label_selector: str,
        index_label: str,
        on_change: Callable[[dict[str, Any]], None] = lambda obj: None,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.store = ObjectStore(index_label)
        self.synced = threading.Event()
        self.lists = 0  # how often it listed: once, plus once per watch gap
        self._kube = kube
        self._selector = label_selector
        self._on_change = on_change
        self._stopping = threading.Event()
        self._end_watch: Callable[[], None] = _nothing
        self.thread: threading.Thread | None = None

    def start(self) -> Informer:
        where = self.namespace or "all"
        self.thread = threading.Thread(target=self._run, name=f"informer-{self.kind.plural}-{where}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """End the watch now; nothing is reported after this returns."""
        self._stopping.set()
        with contextlib.suppress(Exception):  # the watch may have ended on its own meanwhile
            self._end_watch()

    def _run(self) -> None:
        resource_version: str | None = None
        failures = 0
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self.relist()
                began = time.monotonic()
                resource_version = self.follow(resource_version)
                failures = 0
                if time.monotonic() - began < MIN_WATCH_SECONDS:
                    self._stopping.wait(MIN_WATCH_SECONDS)  # a watch ended at once: never a busy loop
            except Gone:
                log.info("%s: watch gap (410 Gone), listing again", self._describe())
                resource_version = None
            except Exception as error:  # noqa: BLE001 - the apiserver may be away; keep the last good state
                if self._stopping.is_set():
                    break  # the watch was ended by stop()
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("%s: %s; retrying in %.1fs", self._describe(), error, delay)
                self._stopping.wait(delay)

    def relist(self) -> str:
        """List everything now, replace the store, report what changed; returns the list's resourceVersion."""
        answer = self._kube.request("GET", self.kind.path(self.namespace), query={"labelSelector": self._selector})
        self.lists += 1
        changed = self.store.replace(answer.get("items", []))
        self.synced.set()
        for obj in changed:
            if not self._stopping.is_set():
                self._on_change(obj)
        return answer["metadata"]["resourceVersion"]

    def follow(self, resource_version: str) -> str:
        """Apply watch events until the watch ends; returns the resourceVersion to resume from."""
        for event in self._events(resource_version):
            if self._stopping.is_set():
                break
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone
                raise KubeError(int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", ""))
            resource_version = obj["metadata"]["resourceVersion"]
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                namespace, name = _key(obj)
                self.store.remove(namespace, name, _revision(obj))
                self._on_change(obj)
            elif self.store.put(obj):
                self._on_change(obj)
        return resource_version

    def _events(self, resource_version: str) -> Iterator[dict[str, Any]]:
        try:
            yield from self._kube.watch(
                self.kind.path(self.namespace),
                timeout_seconds=WATCH_SECONDS,
                resource_version=resource_version,
                label_selector=self._selector,
                bookmarks=True,
                opened=self._watching,
            )
        except KubeError as error:
            if error.status == 410:
                raise Gone from error
            raise
        finally:
            self._end_watch = _nothing

    def _watching(self, end: Callable[[], None]) -> None:
        self._end_watch = end
        if self._stopping.is_set():  # stopped while the watch was being opened
            end()

    def _describe(self) -> str:
        return f"informer of {self.kind.plural} in {self.namespace or 'all namespaces'}"


def _nothing() -> None:
    pass


class Gone(Exception):
    """The watch's resourceVersion is older than the history the apiserver keeps: list again."""
