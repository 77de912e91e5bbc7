"""A small synchronous Kubernetes REST client for the few verbs the operator uses.

Rules:
- Plain dicts in and out, for any resource (built-in or custom), addressed by `Kind` below.
- This module names no traffic router: the routers' kinds are declared by the render adapters, and
  the controller builds them and adds them with `register_kinds` (`controller/routing.py`).
- Children are written with server-side apply under one field manager, so the operator owns
  exactly the fields it sets and a second writer's fields survive.
- Status is written with a merge patch on the status subresource: the spec is never written.
- Errors carry the apiserver's HTTP status and message; 404 on get is `None`, not an error.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from modelrollout.kube.tally import OPERATOR, RequestTally

FIELD_MANAGER = "modelrollout"


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the REST API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


MODEL_DEPLOYMENT = Kind("modelrollout.io", "v1alpha1", "modeldeployments", "ModelDeployment")
DEPLOYMENT = Kind("apps", "v1", "deployments", "Deployment")
SERVICE = Kind("", "v1", "services", "Service")
POD = Kind("", "v1", "pods", "Pod")
EVENT = Kind("events.k8s.io", "v1", "events", "Event")
SECRET = Kind("", "v1", "secrets", "Secret")


class KubeError(Exception):
    """A non-2xx answer from the apiserver."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class SecretMissing(LookupError):
    """A Secret, or the key in it, that a spec or template names is not there."""


def secret_value(kube: Any, namespace: str, name: str, key: str) -> str:
    """The decoded value of `key` in Secret `namespace/name` (read through `kube.get`, as its stand-ins do)."""
    secret = kube.get(SECRET, namespace, name)
    if secret is None:
        raise SecretMissing(f"Secret {name} not found in namespace {namespace}")
    data = secret.get("data") or {}
    if key not in data:
        raise SecretMissing(f"Secret {namespace}/{name} has no key {key}")
    return base64.b64decode(data[key]).decode("utf-8")


def refusal(code: int, data: str) -> KubeError:
    """An answer of 400 or more as a KubeError, with the reason and message of its Status when it has one."""
    try:
        status = json.loads(data)
    except ValueError:
        return KubeError(code, "", data)
    return KubeError(code, status.get("reason", ""), status.get("message", data))


def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig (the given path or $KUBECONFIG)."""
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        # The client reads $KUBECONFIG once at import; read it now so a later change is honoured.
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        k8s_config.load_kube_config(config_file=path, client_configuration=configuration)
    return configuration


class KubeClient:
    """Thin wrapper over the official client's transport (auth, TLS, proxies) with JSON bodies."""

    def __init__(
        self, api_client: k8s_client.ApiClient, timeout: float = 30.0, tally: RequestTally | None = None
    ) -> None:
        self._api = api_client
        self._timeout = timeout
        # The operator passes the process's tally (exported on /metrics); tools get one of their own.
        self.tally = tally if tally is not None else RequestTally()

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, tally: RequestTally | None = None) -> KubeClient:
        return cls(k8s_client.ApiClient(load_configuration(kubeconfig)), tally=tally)

    def close(self) -> None:
        self._api.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        self.tally.count(OPERATOR, method, path + ("?watch=true" if (query or {}).get("watch") else ""))
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, body, _ = self._api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=self._timeout)
        response.read()
        data = response.data.decode("utf-8") if response.data else ""
        if response.status >= 400:
            raise refusal(response.status, data)
        return json.loads(data) if data else None

    def watch(
        self,
        path: str,
        timeout_seconds: int = 3600,
        resource_version: str | None = None,
        label_selector: str | None = None,
        bookmarks: bool = False,
        opened: Callable[[Callable[[], None]], None] | None = None,
    ) -> Iterator[dict]:
        """Watch events (`{"type", "object"}`) of a collection.

        Without a resourceVersion it starts with the current objects as ADDED (for tools: benchmarks);
        the informers (`kube/informer.py`) list first and watch from the list's resourceVersion.
        `opened` receives a function that ends the watch from another thread (a blocked read returns).
        """
        self.tally.count(OPERATOR, "GET", path + "?watch=true")
        query = [("watch", "true"), ("timeoutSeconds", str(timeout_seconds))]
        if resource_version is not None:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        _, url, headers, _, _ = self._api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
        )
        response = self._api.call_api("GET", url, header_params=headers, _request_timeout=timeout_seconds + 30)
        if response.status >= 400:
            response.read()
            raise refusal(response.status, response.data.decode("utf-8") if response.data else "")
        if opened is not None:
            opened(response.response.shutdown)
        buffer, ended = b"", False
        try:
            for chunk in response.response.stream(64 * 1024):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            ended = True
        finally:
            # A watch left mid-stream still has bytes on its connection: that connection cannot be reused.
            if ended:
                response.response.release_conn()
            else:
                response.response.close()

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request("GET", kind.path(namespace, name))
        except KubeError as error:
            if error.not_found:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        query = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", kind.path(namespace), query=query).get("items", [])

    def apply(self, body: dict) -> dict:
        """Server-side apply `body` (which names its own apiVersion/kind/namespace/name)."""
        kind = kind_of(body)
        metadata = body["metadata"]
        return self.request(
            "PATCH",
            kind.path(metadata.get("namespace"), metadata["name"]),
            body=body,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        try:
            self.request("DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"})
            return True
        except KubeError as error:
            if error.not_found:
                return False
            raise

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict) -> dict:
        return self.request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def create(self, kind: Kind, namespace: str | None, body: dict) -> dict:
        return self.request("POST", kind.path(namespace), body=body)


KINDS: dict[tuple[str, str], Kind] = {
    (kind.api_version, kind.kind): kind for kind in (MODEL_DEPLOYMENT, DEPLOYMENT, SERVICE, EVENT)
}


def register_kinds(*kinds: Kind) -> None:
    """Make `kind_of` (and so `apply`) know kinds a higher layer declares, such as the routers' objects."""
    for kind in kinds:
        known = KINDS.setdefault((kind.api_version, kind.kind), kind)
        if known != kind:
            raise ValueError(f"{kind.api_version}/{kind.kind} is already known as {known}")


def kind_of(body: dict) -> Kind:
    try:
        return KINDS[(body["apiVersion"], body["kind"])]
    except KeyError:
        raise ValueError(f"unknown kind {body.get('apiVersion')}/{body.get('kind')}") from None
