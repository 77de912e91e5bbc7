"""Helpers shared by the integration tests: apply and read ModelDeployments and analysis templates, run the
plugin, watch the versions of an object. Test modules import from here (and conftest), never from each other."""

from __future__ import annotations

import collections
import contextlib
import copy
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelrollout import lifetime
from modelrollout.core.spec import parse_spec
from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import REPO, get_json, wait_for
from tests.loopback import LoopbackServer

SAMPLE = REPO / "manifests" / "samples" / "fraud-scorer.yaml"
NEXT_VERSION = "2026-11-27"  # the sample's next model version
ERROR_QUERY = (
    'sum(rate(model_requests_total{namespace="{{args.namespace}}",revision="{{args.revision}}",code=~"5.."}[5s]))'
    ' / sum(rate(model_requests_total{namespace="{{args.namespace}}",revision="{{args.revision}}"}[5s]))'
)


def sample(**spec_overrides) -> dict:
    body = yaml.safe_load(SAMPLE.read_text())
    body["spec"].update(copy.deepcopy(spec_overrides))
    return body


def with_version(body: dict, version: str) -> dict:
    changed = copy.deepcopy(body)
    changed["spec"]["model"]["version"] = version
    return changed


def revision_of(body: dict) -> str:
    """The revision the operator names a ModelDeployment body's pods by."""
    return parse_spec(body["spec"]).revision


def apply(control_plane, namespace: str, body: dict):
    return control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)


def kubectl_apply(control_plane, namespace: str | None, *docs: dict) -> None:
    """Apply `docs` (e.g. analysis templates), failing the test if kubectl does."""
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    control_plane.kubectl(*args, input="\n---\n".join(json.dumps(d) for d in docs))


def md(control_plane, namespace: str, name: str = "fraud-scorer") -> dict | None:
    return get_json(control_plane, "modeldeployment", name, "-n", namespace)


def owned_deployments(control_plane, namespace: str, name: str = "fraud-scorer") -> list[dict]:
    listing = get_json(control_plane, "deployments", "-n", namespace, "-l", f"modelrollout.io/deployment={name}")
    return listing["items"]


def route_weights(control_plane, namespace: str, name: str = "fraud-scorer") -> list[int]:
    """The HTTPRoute's backend weights: stable first, then canary."""
    route = get_json(control_plane, "httproute", name, "-n", namespace)
    return [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]


def replicas_by_revision(control_plane, namespace: str, name: str = "fraud-scorer") -> dict[str, int]:
    return {
        d["metadata"]["labels"]["modelrollout.io/revision"]: d["spec"]["replicas"]
        for d in owned_deployments(control_plane, namespace, name)
    }


def condition(body: dict | None, kind: str) -> dict:
    for found in (body or {}).get("status", {}).get("conditions", []):
        if found["type"] == kind:
            return found
    return {}


def current(body: dict | None) -> bool:
    return bool(body) and body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]


def healthy(control_plane, namespace: str, name: str = "fraud-scorer") -> dict | None:
    body = md(control_plane, namespace, name)
    return body if current(body) and condition(body, "Ready").get("status") == "True" else None


def wait_status(control_plane, namespace: str, predicate, what: str, name: str = "fraud-scorer", timeout=90.0) -> dict:
    """Poll the ModelDeployment until `predicate(status)` holds for the current generation."""

    seen: dict = {}

    def check():
        body = md(control_plane, namespace, name)
        seen["status"] = (body or {}).get("status")
        return body if current(body) and predicate(body["status"]) else None

    try:
        return wait_for(check, timeout=timeout, what=what)
    except TimeoutError as error:
        status = seen.get("status") or {}
        shown = {key: status.get(key) for key in ("phase", "message", "abort", "currentStepIndex", "analysisRuns")}
        raise TimeoutError(f"{error}; last status: {json.dumps(shown)[:3000]}") from None


def events(control_plane, namespace: str, name: str = "fraud-scorer") -> list[dict]:
    return get_json(
        control_plane, "events.events.k8s.io", "-n", namespace, "--field-selector", f"regarding.name={name}"
    )["items"]


def wait_events(control_plane, namespace: str, *reasons: str, name: str = "fraud-scorer", timeout=60.0) -> list[dict]:
    """Every Event of `name`, once one of each of `reasons` is among them.

    The operator writes Events from a thread of its own just after the status it reports them in, so a
    status a test has seen may come a moment before its Events.
    """

    def written():
        found = events(control_plane, namespace, name)
        return found if set(reasons) <= {event["reason"] for event in found} else None

    return wait_for(written, timeout=timeout, what=f"events {', '.join(reasons)} of {name}")


def plugin(control_plane, *args: str) -> subprocess.CompletedProcess:
    """Run `kubectl modelrollout ...` through kubectl's plugin discovery, as a person would."""
    env = dict(os.environ, KUBECONFIG=str(control_plane.kubeconfig))
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(control_plane.binaries.kubectl), "modelrollout", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def start_canary(control_plane, namespace: str, body: dict, version: str = "v2") -> tuple[str, str]:
    """Deploy `body`, wait until Ready, apply the next model version, wait for its first pause.

    Returns (stable revision, canary revision).
    """
    assert apply(control_plane, namespace, body).returncode == 0
    stable = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    assert apply(control_plane, namespace, with_version(body, version)).returncode == 0
    paused = wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", f"{version} at its first pause")
    return stable, paused["status"]["canaryRevision"]


def template(name: str, query: str = ERROR_QUERY, condition: str = "result < 0.05", **metric) -> dict:
    """A ModelAnalysisTemplate with one Prometheus metric `name` (by default the new revision's error rate)."""
    # initialDelay lets the 5s rate window fill with the new revision's samples (scraped every second).
    settings = {"interval": "1s", "count": 2, "initialDelay": "4s", **metric}
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelAnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "prometheus"}],
            "metrics": [
                {
                    "name": name,
                    "successCondition": condition,
                    **settings,
                    "provider": {"prometheus": {"address": "{{args.prometheus}}", "query": query, "timeout": "2s"}},
                }
            ],
        },
    }


def rollout(monitoring, templates: list[dict], extra_spec: dict | None = None, cluster_scope: bool = False) -> dict:
    """A routed canary: 20%, then an analysis by `templates` against the test Prometheus, then 100%."""
    steps = [
        {"setWeight": 20},
        {
            "analysis": {
                "templates": [{"name": t["metadata"]["name"], "clusterScope": cluster_scope} for t in templates],
                "args": [{"name": "prometheus", "value": monitoring.prometheus.url}],
            }
        },
        {"setWeight": 100},
    ]
    body = sample(
        replicas=2,
        strategy={"canary": {"steps": steps, "scaleDownDelaySeconds": 1, "abortScaleDownDelaySeconds": 1}},
        trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
    )
    body["spec"].update(copy.deepcopy(extra_spec or {}))
    return body


def start(control_plane, namespace, monitoring, body, new_behaviour: Behaviour | None) -> tuple[str, str]:
    """Deploy `body`, then its next model version; the simulator serves both with the given behaviours.

    Returns (stable revision, canary revision).
    """
    stable = revision_of(body)
    newer = with_version(body, NEXT_VERSION)
    canary = revision_of(newer)
    monitoring.simulator.set(namespace, stable, Behaviour())
    if new_behaviour is not None:
        # Exported from the start, so Prometheus' rate windows are full when the analysis runs.
        monitoring.simulator.set(namespace, canary, new_behaviour)
    assert apply(control_plane, namespace, body).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    assert apply(control_plane, namespace, newer).returncode == 0
    return stable, canary


class WatchReader:
    """Reads `kubectl get -w -o json` output as it comes, decoding each stored version."""

    def __init__(self, stream) -> None:
        self.versions: list[dict] = []
        self.received: list[float] = []  # time.monotonic() when each version arrived
        self._stream = stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        for line in self._stream:
            buffer += line
            stripped = buffer.strip()
            if not stripped:
                continue
            try:
                body, _ = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                continue  # an object printed over several lines is not complete yet
            self.received.append(time.monotonic())
            self.versions.append(body)
            buffer = ""

    def join(self) -> None:
        self._thread.join(timeout=30)


@contextlib.contextmanager
def object_versions(control_plane, namespace: str, kind: str, name: str) -> Iterator[list[dict]]:
    """Every version of an object the apiserver stores while the block runs, from a live watch."""
    with object_watch(control_plane, namespace, kind, name) as watch:
        yield watch.versions


@contextlib.contextmanager
def object_watch(control_plane, namespace: str, kind: str, name: str) -> Iterator[WatchReader]:
    """A live watch of one object: every stored version, and when each arrived, while the block runs."""
    command = [str(control_plane.binaries.kubectl), f"--kubeconfig={control_plane.kubeconfig}"]
    command += ["get", kind, name, "-n", namespace, "--watch", "-o", "json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    watch = WatchReader(process.stdout)
    try:
        wait_for(lambda: watch.versions, timeout=30, what=f"the {kind} watch's first object")
        yield watch
    finally:
        process.terminate()
        process.wait(timeout=30)
        watch.join()


class Sampler:
    """Reads a value in a thread every `interval` seconds while the block runs, each kept with the
    time.monotonic() its read returned: when something changed is then known to within one read, however
    long the test itself took to look. A read that fails is skipped; the last failure is kept to name."""

    def __init__(self, read, interval: float) -> None:
        self.samples: list[tuple[float, object]] = []
        self.failure: Exception | None = None
        self._read, self._interval = read, interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                value = self._read()
            except Exception as error:  # noqa: BLE001 - a sample that failed is skipped and named, not fatal
                self.failure = error
            else:
                self.samples.append((time.monotonic(), value))
            self._stopping.wait(self._interval)

    def first(self, predicate, what: str) -> float:
        """When the first sample meeting `predicate` was read; fails naming `what` and the last read's failure."""
        found = next((at for at, value in list(self.samples) if predicate(value)), None)
        assert found is not None, (
            f"no sample showed {what} in {len(self.samples)} reads (last failure: {self.failure!r})"
        )
        return found


@contextlib.contextmanager
def sampled(read, interval: float = 0.1) -> Iterator[Sampler]:
    """A `Sampler` of `read()` for the block, its first sample taken before the block starts."""
    sampler = Sampler(read, interval)
    sampler.start()
    try:
        wait_for(lambda: sampler.samples, timeout=30, what=f"a first sample (last failure: {sampler.failure!r})")
        yield sampler
    finally:
        sampler.stop()


class JsonEndpoint:
    """An HTTP server on loopback answering every request with `status` and the JSON `answer`, which a
    test can change; keeps the paths asked for."""

    def __init__(self, answer: dict, status: int = 200) -> None:
        self.answer, self.status = answer, status
        self._server = LoopbackServer(lambda request: (self.status, self.answer))
        self.url = self._server.url

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self._server.requests]

    def stop(self) -> None:
        self._server.stop()


class WebhookReceiver:
    """A webhook receiver on loopback keeping each JSON body POSTed to it; with `hold`, it answers none
    until `release()` (a receiver that hangs)."""

    def __init__(self, hold: bool = False) -> None:
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._server = LoopbackServer(self._answer)
        self.url = self._server.url + "/hook"

    def _answer(self, request) -> tuple[int, bytes]:
        self._released.wait(120)
        return 204, b""

    @property
    def bodies(self) -> list[dict]:
        return [request.json() for request in self._server.requests]

    def wait_for(self, predicate, what: str, timeout: float = 90.0) -> dict:
        """The first body that `predicate` accepts, once it has arrived."""
        return self._server.wait_for(lambda request: predicate(request.json()), what, timeout).json()

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self.release()
        self._server.stop()


class PodServers:
    """Tiny HTTP servers, one on each kwok pod's real IP and port, answering the pod's name and counting hits.

    kwok runs nothing, so without these a data plane would route to addresses where nobody listens.
    """

    def __init__(self, pods: dict[str, str], port: int) -> None:
        self.pods = pods  # pod name -> pod IP
        self._hits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._servers = [self._serve(name, ip, port) for name, ip in pods.items()]

    def _serve(self, name: str, ip: str, port: int) -> http.server.ThreadingHTTPServer:
        owner = self

        class Answer(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner._hits[name] += 1
                body = name.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet: Traefik's access log has every request
                pass

        try:
            server = http.server.ThreadingHTTPServer((ip, port), Answer)
        except OSError as error:
            self.stop()
            raise RuntimeError(
                f"cannot listen on pod {name}'s address {ip}:{port} ({error}); kwok's pod IPs are local only inside "
                "the private network: run `.venv/bin/modelrollout private-network -- .venv/bin/pytest ...`"
            ) from error
        threading.Thread(target=server.serve_forever, name=f"pod-{name}", daemon=True).start()
        return server

    def hits(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self._hits)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []


def ready_pods(control_plane, namespace: str, selector: str) -> dict[str, str]:
    """Name -> IP of the Ready, not terminating pods matching `selector`."""
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", selector)["items"]
    return {
        pod["metadata"]["name"]: pod["status"]["podIP"]
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
        and pod["status"].get("podIP")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    }


@contextlib.contextmanager
def pod_servers(control_plane, namespace: str, selector: str, count: int, port: int) -> Iterator[PodServers]:
    """Wait for `count` Ready pods matching `selector`, serve on each pod IP:port while the block runs."""

    def all_ready() -> dict[str, str] | None:
        found = ready_pods(control_plane, namespace, selector)
        return found if len(found) == count else None

    pods = wait_for(all_ready, what=f"{count} Ready pods {selector} in {namespace}")
    servers = PodServers(pods, port)
    try:
        yield servers
    finally:
        servers.stop()


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of a GET, errors included, so a caller can count 404s and 5xx as answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


MIRRORING_CLASS = "modelrollout-test-mirroring"


def gateway_that_mirrors(control_plane, namespace: str, name: str = "public") -> None:
    """A Gateway `name` in `namespace` whose GatewayClass declares HTTPRouteRequestMirror, as an
    implementation that mirrors would write in its status (no data plane runs behind it here)."""
    gateway_class = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": MIRRORING_CLASS},
        "spec": {"controllerName": "example.com/mirroring-gateway"},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(gateway_class))
    status = {"status": {"supportedFeatures": [{"name": "HTTPRoute"}, {"name": "HTTPRouteRequestMirror"}]}}
    control_plane.kubectl(
        "patch", "gatewayclass", MIRRORING_CLASS, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": MIRRORING_CLASS, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(gateway))


def shipped_alert(name: str, window: str = "5s") -> dict:
    """An alert from manifests/monitoring/rules.yml as shipped, with a test-speed window and no `for`."""
    groups = yaml.safe_load((REPO / "manifests" / "monitoring" / "rules.yml").read_text())["groups"]
    rule = next(rule for group in groups for rule in group["rules"] if rule.get("alert") == name)
    return {"alert": name, "expr": rule["expr"].replace("[2m]", f"[{window}]"), "labels": rule["labels"]}


def api_requests(exported: str) -> dict[tuple[str, str, str], float]:
    """`modelrollout_kube_api_requests_total` from an operator's /metrics text, by (client, verb, resource)."""
    return {
        (sample.labels["client"], sample.labels["verb"], sample.labels["resource"]): sample.value
        for family in text_string_to_metric_families(exported)
        if family.name == "modelrollout_kube_api_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


HELM_CHART = REPO / "manifests" / "helm" / "modelrollout"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the pinned helm that `modelrollout dev-cluster build` builds; a missing one fails the test saying so."""
    import pytest

    from modelrollout.devcluster.helm import VERSION, helm_path

    path = helm_path()
    if not path.is_file():
        pytest.fail(f"helm {VERSION} is not built ({path} is missing): run `modelrollout dev-cluster build` first")
    result = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        output = result.stderr + result.stdout
        raise AssertionError(f"helm {' '.join(args)} failed (exit {result.returncode}):\n{output}")
    return result


def helm_template(release: str, namespace: str, *values: str, include_crds: bool = False) -> list[dict]:
    """The chart rendered offline (`helm template`) with `--set` values, as parsed objects."""
    args = ["template", release, str(HELM_CHART), "--namespace", namespace]
    args += [argument for value in values for argument in ("--set", value)]
    rendered = helm(*args, *(["--include-crds"] if include_crds else [])).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def permissions(rules: list[dict]) -> set[tuple[str, str, str, str]]:
    """What RBAC rules allow, one (apiGroup, resource, resourceName or '*', verb) each: rules compare as
    grants, however they are grouped or ordered."""
    return {
        (group, resource, name, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for name in rule.get("resourceNames") or ["*"]
        for verb in rule["verbs"]
    }


def labelled_metric(http: str, name: str, labels: dict[str, str]) -> float | None:
    """The sample `name` with exactly `labels` from an operator's /metrics; None when it has none."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


class OperatorProcess:
    """`modelrollout run` as its own process (as in a pod), its output in a log shown when it dies."""

    def __init__(self, process: subprocess.Popen, http: str, log: str) -> None:
        self.process = process
        self.http = http
        self.log = log

    def log_tail(self, characters: int = 4000) -> str:
        with open(self.log, errors="replace") as output:
            return output.read()[-characters:]

    def metric(self, name: str) -> float | None:
        """An unlabelled sample from its /metrics; fails the test at once (with its log) if it has exited."""
        import pytest

        from modelrollout.devcluster.stack import operator_metric

        if self.process.poll() is not None:
            pytest.fail(f"the operator exited with {self.process.returncode}; its log ends:\n{self.log_tail()}")
        return operator_metric(self.http, name)


@contextlib.contextmanager
def operator_process(
    executable: str,
    prometheus_url: str,
    kubeconfig: str,
    log: str,
    namespaces: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Iterator[OperatorProcess]:
    """Run `executable run [--namespace NS ...]` until the block ends, serving HTTP on a free loopback port.

    Unlike conftest's in-process `running_operator`, this runs a given installation (e.g. a wheel in a clean
    venv) with exactly the command line a pod has, `--namespace` included. PYTHONPATH is dropped, so the
    process imports what its own interpreter has installed and nothing from this tree.
    """
    from modelrollout.devcluster.cluster import free_port

    http = f"127.0.0.1:{free_port()}"
    settings = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    settings.update(
        {
            "KUBECONFIG": kubeconfig,
            "MODELROLLOUT_HTTP_ADDRESS": http,
            "MODELROLLOUT_PROMETHEUS_URL": prometheus_url,
            "MODELROLLOUT_WEBHOOK_TOKEN": os.urandom(16).hex(),
            **(env or {}),
        }
    )
    args = [executable, "run", *(f"--namespace={namespace}" for namespace in namespaces)]
    with open(log, "ab") as output:
        # Tied to this test session like every process of the local stack: a killed pytest leaves no operator.
        process = lifetime.popen(args, env=settings, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
    running = OperatorProcess(process, http, log)
    try:
        yield running
    finally:
        lifetime.terminate(process, grace=20)


def analysed_canary_steps(prometheus_url: str) -> list[dict]:
    """Canary steps that exercise every right the operator needs: a weight, an analysis, a pause, promotion."""
    analysis = {"templates": [{"name": "error-rate"}], "args": [{"name": "prometheus", "value": prometheus_url}]}
    return [
        {"setWeight": 30},
        {"analysis": analysis},
        {"pause": {}},
        {"setWeight": 100},
    ]


def analysed_canary_promoted(control_plane, namespace: str, first: dict, second: dict, under: str) -> dict:
    """Deploy `first`, roll `second` out through its analysis to the pause, promote it; returns the object."""
    assert apply(control_plane, namespace, first).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what=f"first Ready under {under}")
    assert apply(control_plane, namespace, second).returncode == 0
    wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "analysed, waiting at the pause")
    assert plugin(control_plane, "promote", "fraud-scorer", "-n", namespace).returncode == 0
    return wait_status(
        control_plane,
        namespace,
        lambda s: s["phase"] == "Healthy" and s["stableRevision"] == revision_of(second),
        f"promoted under {under}",
    )
