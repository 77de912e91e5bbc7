"""An in-memory stand-in for `KubeClient`, narrow enough for unit tests of the `Reconciler`.

What it does:
- Keeps objects in dicts by (kind, namespace, name), JSON round-tripped on every write and read, so
  a caller never shares a dict with the store and enum members are stored as the strings they are.
- Records every call in order as `(verb, kind, name)` in `calls` (verbs: get, list, apply, patch,
  patch-status, create, delete); `writes` also keeps each write's path and body.
- Server-side apply replaces the applied fields (metadata labels and ownerReferences, spec, the rest
  of the body) and keeps status; a write that changes the object bumps its resourceVersion, and one
  that changes its spec bumps its generation.
- A merge patch (RFC 7386) on an object or on its status subresource; the status subresource takes
  the `metadata.resourceVersion` in the body as a precondition (409 when it is stale).
- `fail(verb, kind, name, status, message)` makes that write answer a `KubeError` until `heal()`.

What it does not: no Deployment controller (tests call `settle`), no garbage collector, no
admission, no pods unless a test adds them, only equality label selectors.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import modelrollout.controller.routing  # noqa: F401  registers the routers' kinds with the client
from modelrollout.core import labels
from modelrollout.core.rollout import Event
from modelrollout.kube.client import DEPLOYMENT, KINDS, POD, Kind, KubeError, kind_of

Key = tuple[str, str, str]  # (kind, namespace, name)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _json(body: Any) -> Any:
    return json.loads(json.dumps(body))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _matches(obj: Mapping[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    obj_labels = obj.get("metadata", {}).get("labels", {})
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if obj_labels.get(key) != value:
            return False
    return True


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.writes: list[tuple[str, str, str, str, Any]] = []  # (verb, kind, name, path, body)
        self._failures: dict[tuple[str, str, str], KubeError] = {}
        self._version = 0
        self._uids = 0
        self._plurals: dict[tuple[str, str], Kind] = {}

    # --- test helpers: not recorded as calls -----------------------------------------------------

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had been created earlier (keeps its resourceVersion and generation)."""
        kind = kind_of(body) if (body["apiVersion"], body["kind"]) in KINDS else POD
        stored = _json(body)
        metadata = stored["metadata"]
        metadata.setdefault("resourceVersion", self._next_version())
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", self._next_created())
        self.objects[(kind.kind, metadata.get("namespace", ""), metadata["name"])] = stored
        return copy.deepcopy(stored)

    def object(self, kind: Kind | str, namespace: str, name: str) -> dict[str, Any] | None:
        kind_name = kind if isinstance(kind, str) else kind.kind
        found = self.objects.get((kind_name, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def edit(self, kind: Kind, namespace: str, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change a stored object as another writer (a person, kubectl) would: new resourceVersion,
        new generation when the spec changed."""
        stored = self.objects[(kind.kind, namespace, name)]
        before = copy.deepcopy(stored)
        change(stored)
        self.objects[(kind.kind, namespace, name)] = _json(stored)
        self._bump(before, self.objects[(kind.kind, namespace, name)])

    def settle(self, namespace: str, available: Mapping[str, int] | None = None) -> None:
        """Play the Deployment controller: every Deployment has seen its spec and runs its replicas.

        `available` maps a revision to how many of its pods are available (default: all of them).
        """
        for (kind, ns, _), stored in self.objects.items():
            if kind != DEPLOYMENT.kind or ns != namespace:
                continue
            replicas = int(stored.get("spec", {}).get("replicas", 1))
            revision = stored["metadata"].get("labels", {}).get(labels.REVISION_LABEL, "")
            ready = replicas if available is None else min(available.get(revision, replicas), replicas)
            stored["status"] = {
                "observedGeneration": stored["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
            }
            stored["metadata"]["resourceVersion"] = self._next_version()

    def fail(self, verb: str, kind: str, name: str, status: int, message: str, reason: str = "") -> None:
        """Make every `verb` of `kind`/`name` answer `KubeError(status)` until `heal`."""
        self._failures[(verb, kind, name)] = KubeError(status, reason, message)

    def heal(self) -> None:
        self._failures.clear()

    def forget_calls(self) -> None:
        self.calls.clear()
        self.writes.clear()

    def verbs(self, verb: str, kind: str | None = None) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[0] == verb and (kind is None or call[1] == kind)]

    # --- the KubeClient surface the reconciler uses ----------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict | None:
        self._call("get", kind.kind, name)
        return self.object(kind, namespace or "", name)

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        self._call("list", kind.kind, "")
        return self.matching(kind, namespace, label_selector)

    def matching(self, kind: Kind, namespace: str | None, label_selector: str | None) -> list[dict]:
        """What `list` answers, without recording a call (for `CachedReads`, which sends no request)."""
        return [
            copy.deepcopy(obj)
            for (kind_name, ns, _), obj in sorted(self.objects.items())
            if kind_name == kind.kind and (namespace is None or ns == namespace) and _matches(obj, label_selector)
        ]

    def apply(self, body: dict) -> dict:
        kind = kind_of(body)
        metadata = body["metadata"]
        namespace, name = metadata.get("namespace", ""), metadata["name"]
        self._call("apply", kind.kind, name, kind.path(namespace, name), body)
        key = (kind.kind, namespace, name)
        applied = _json(body)
        existing = self.objects.get(key)
        if existing is None:
            return self._create(key, applied)
        result = copy.deepcopy(existing)
        for field, value in applied.items():
            if field == "metadata":
                for meta_field, meta_value in value.items():
                    result["metadata"][meta_field] = meta_value
            elif field != "status":
                result[field] = value
        self.objects[key] = result
        self._bump(existing, result)
        return copy.deepcopy(result)

    def create(self, kind: Kind, namespace: str | None, body: dict) -> dict:
        name = body["metadata"]["name"]
        self._call("create", kind.kind, name, kind.path(namespace), body)
        key = (kind.kind, namespace or "", name)
        if key in self.objects:
            raise KubeError(409, "AlreadyExists", f"{kind.plural} {name!r} already exists")
        return self._create(key, _json(body))

    def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        self._call("delete", kind.kind, name, kind.path(namespace, name))
        return self.objects.pop((kind.kind, namespace or "", name), None) is not None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        if method != "PATCH" or content_type != "application/merge-patch+json":
            raise NotImplementedError(f"the fake serves only merge patches, not {method} {content_type}")
        kind, namespace, name, subresource = self._parse(path)
        verb = "patch-status" if subresource == "status" else "patch"
        self._call(verb, kind.kind, name, path, body)
        key = (kind.kind, namespace, name)
        existing = self.objects.get(key)
        if existing is None:
            raise KubeError(404, "NotFound", f"{kind.plural} {name!r} not found")
        patch = _json(body)
        if subresource == "status":
            precondition = (patch.get("metadata") or {}).get("resourceVersion")
            if precondition is not None and precondition != existing["metadata"]["resourceVersion"]:
                raise KubeError(409, "Conflict", "the object has been modified; please apply your changes")
            result = merge_patch(existing, {"status": patch.get("status")})
        else:
            result = merge_patch(existing, {field: value for field, value in patch.items() if field != "status"})
        self.objects[key] = result
        self._bump(existing, result)
        return copy.deepcopy(result)

    # --- internals -------------------------------------------------------------------------------

    def _call(self, verb: str, kind: str, name: str, path: str = "", body: Any = None) -> None:
        self.calls.append((verb, kind, name))
        if verb not in ("get", "list"):
            self.writes.append((verb, kind, name, path, copy.deepcopy(body)))
        failure = self._failures.get((verb, kind, name))
        if failure is not None:
            raise failure

    def _create(self, key: Key, body: dict[str, Any]) -> dict[str, Any]:
        self._uids += 1
        metadata = body["metadata"]
        metadata["uid"] = f"uid-{self._uids}"
        metadata["generation"] = 1
        metadata["resourceVersion"] = self._next_version()
        metadata["creationTimestamp"] = self._next_created()
        body.pop("status", None)
        self.objects[key] = body
        return copy.deepcopy(body)

    def _bump(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        if before == after:
            return
        after["metadata"]["resourceVersion"] = self._next_version()
        if before.get("spec") != after.get("spec"):
            after["metadata"]["generation"] = int(before["metadata"].get("generation", 1)) + 1

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _next_created(self) -> str:
        return (CREATED + timedelta(seconds=self._uids + self._version)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _parse(self, path: str) -> tuple[Kind, str, str, str]:
        """`/api[s]/<group/>version/namespaces/<ns>/<plural>/<name>[/<subresource>]` → (kind, ns, name, sub)."""
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            group, rest = "", parts[2:]
        else:
            group, rest = parts[1], parts[3:]
        if rest[0] != "namespaces" or len(rest) < 4:
            raise NotImplementedError(f"the fake serves only namespaced objects by name, not {path}")
        namespace, plural, name = rest[1], rest[2], rest[3]
        subresource = rest[4] if len(rest) > 4 else ""
        for kind in (*KINDS.values(), POD):
            if kind.group == group and kind.plural == plural:
                return kind, namespace, name, subresource
        raise NotImplementedError(f"unknown resource {group}/{plural}")


class CachedReads:
    """The reads of a reconcile from a watch cache that is never behind `FakeKube` (`controller.reads.Reads`).

    `stale_model` makes `model` answer an older copy of the ModelDeployment until `refresh`, as a cache
    whose watch event has not arrived yet would.
    """

    def __init__(self, kube: FakeKube) -> None:
        self._kube = kube
        self.stale_model: dict[str, Any] | None = None
        self.refreshed = 0

    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.stale_model is not None:
            return copy.deepcopy(self.stale_model)
        return self._kube.object("ModelDeployment", namespace, name)

    def revisions(self, namespace: str, owner: str) -> list[dict[str, Any]]:
        return self._kube.matching(DEPLOYMENT, namespace, f"{labels.DEPLOYMENT_LABEL}={owner}")

    def live(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self._kube.object(kind, namespace, name)

    def wrote(self, kind: Kind, obj: dict[str, Any]) -> None:
        pass

    def deleted(self, kind: Kind, namespace: str, name: str) -> None:
        pass

    def refresh(self, namespace: str, name: str) -> None:
        self.refreshed += 1
        self.stale_model = None


class ObjectsByName:
    """The narrowest stand-in for `KubeClient.get`: any kind, any namespace, an object by its name only
    (templates and Secrets for the analysis runner's resolution)."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)


class RecordedEvents:
    """Stands in for the `EventSender`: keeps (regarding, event)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[dict, Event]] = []

    def emit(self, regarding: dict, event: Event, now: datetime) -> None:
        self.emitted.append((regarding, event))
