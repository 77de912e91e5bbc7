"""Every request this process sends to the apiserver, by client, verb and resource.

Rules:
- Verbs and resources are named as the apiserver's audit log and `apiserver_request_total` name them
  (get, list, watch, create, update, patch, delete, deletecollection; `deployments`,
  `modeldeployments/status`), so the operator's own count can be set beside the apiserver's.
- Two clients share the process: the operator's own `KubeClient` ("operator": reconciles, Events,
  peering reads) and kopf's aiohttp client ("kopf": its start-up lists, watches, peering keep-alives).
  kopf has no public hook for its requests; `count_kopf_requests` wraps the one function every kopf
  request goes through, and says so loudly if a kopf release moves it.
- One attempt is one request: kopf's retries of a failed request are inside the wrapped call and
  count once (they only happen on errors, which the apiserver's own metrics show).
"""

from __future__ import annotations

import collections
import functools
import threading
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

OPERATOR, KOPF = "operator", "kopf"


class RequestKey(NamedTuple):
    client: str
    verb: str
    resource: str


class RequestTally:
    """A thread-safe counter of requests by (client, verb, resource)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[RequestKey] = collections.Counter()

    def count(self, client: str, method: str, url: str) -> None:
        key = RequestKey(client, *describe(method, url))
        with self._lock:
            self._counts[key] += 1

    def counts(self) -> dict[RequestKey, int]:
        with self._lock:
            return dict(self._counts)


TALLY = RequestTally()


def describe(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of one request, as the apiserver's audit log names them.

    `/apis/apps/v1/namespaces/ns/deployments/web` → a GET is `get deployments`; the collection's GET is
    `list`, or `watch` with `watch=true`; a subresource is `resource/subresource`.
    """
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    watching = parse_qs(parts.query).get("watch", [""])[0].lower() in ("true", "1")
    if segments[:1] == ["api"]:
        rest = segments[2:]  # api/v1/...
    elif segments[:1] == ["apis"]:
        rest = segments[3:]  # apis/group/version/...
    else:
        return method.lower(), "/" + "/".join(segments)  # /version, /healthz: not a resource
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource; ["namespaces", name] alone is the namespace itself
    if not rest:
        return method.lower(), "/" + "/".join(segments)  # discovery: /apis/group/version
    resource, named = rest[0], len(rest) >= 2
    if len(rest) >= 3:
        resource += "/" + rest[2]
    verb = _VERBS.get((method.upper(), named), method.lower())
    if verb in ("get", "list") and watching:
        verb = "watch"
    return verb, resource


_VERBS = {
    ("GET", True): "get",
    ("GET", False): "list",
    ("POST", False): "create",
    ("POST", True): "create",  # a subresource such as pods/eviction
    ("PUT", True): "update",
    ("PATCH", True): "patch",
    ("DELETE", True): "delete",
    ("DELETE", False): "deletecollection",
}


def count_kopf_requests(tally: RequestTally = TALLY) -> None:
    """Count every request kopf sends, by wrapping `kopf._cogs.clients.api.request` once per process."""
    from kopf._cogs.clients import api  # here, not at the top: tools using KubeClient need no kopf

    original = getattr(api, "request", None)
    if original is None or not callable(original):
        raise RuntimeError(
            "this kopf release has no kopf._cogs.clients.api.request; kopf's own API requests cannot be "
            "counted: pin kopf to a release modelrollout supports (see pyproject.toml)"
        )
    if getattr(original, "_modelrollout_counted", False):
        return

    @functools.wraps(original)
    async def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        tally.count(KOPF, method, url)
        return await original(method, url, *args, **kwargs)

    counted._modelrollout_counted = True  # type: ignore[attr-defined]
    api.request = counted
