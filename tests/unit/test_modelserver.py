"""The model servers' pure parts: behaviours, what a pod asks for, MLServer's settings, when the harness stops a
terminating pod's server, kwok's gated Stage, Prometheus' pod job, and the load generator's counting (against a
small server on loopback)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from modelrollout.devcluster import prometheus
from modelrollout.modelserver import behaviour, harness, loadgen, stages
from modelrollout.modelserver.settings import (
    PodSpecError,
    gated,
    model_settings,
    pod_template,
    server_settings,
    server_spec,
    write_folder,
)

FEATURES = ["mean radius", "mean texture", "mean smoothness"]


def pod(template: dict | None = None, ip: str = "10.244.0.7", name: str = "scorer-1") -> dict:
    template = template or pod_template("fraud-scorer", "2026-11-20", "hotfix-errors", labels={"app": "scorer"})
    return {
        "metadata": {"namespace": "fraud", "name": name, "uid": "0123456789abcdef", **template["metadata"]},
        "spec": template["spec"],
        "status": {"phase": "Running", "podIP": ip},
    }


# --- behaviours ----------------------------------------------------------------------------------------


def test_each_behaviour_picks_its_model_and_effect():
    assert behaviour.parse("good") == behaviour.Behaviour("good", "good")
    assert behaviour.parse("shifted").artifact == "shifted"
    errors = behaviour.parse("hotfix-errors")
    assert (errors.artifact, errors.error_feature, errors.latency_seconds) == ("hotfix", "mean radius", 0.0)
    slow = behaviour.parse("hotfix-slow")
    assert (slow.artifact, slow.error_feature, slow.latency_seconds) == ("hotfix", None, 0.3)
    assert behaviour.parse("hotfix-slow", latency_seconds=1.5).latency_seconds == 1.5


def test_an_unknown_behaviour_or_negative_latency_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="good, shifted, hotfix-errors, hotfix-slow"):
        behaviour.parse("hotfix")
    with pytest.raises(ValueError, match=">= 0"):
        behaviour.parse("hotfix-slow", latency_seconds=-1)


def test_hotfix_errors_fail_exactly_the_rows_above_the_threshold():
    errors = behaviour.parse("hotfix-errors")
    assert errors.fails([15.01, 20.0, 0.1], FEATURES)
    assert not errors.fails([15.0, 20.0, 0.1], FEATURES)
    assert not errors.fails([9.0, 39.0, 0.2], FEATURES)
    assert not behaviour.parse("good").fails([28.0, 39.0, 0.2], FEATURES)


def test_behaviour_settings_round_trip_through_json():
    for name in behaviour.BEHAVIOURS:
        chosen = behaviour.parse(name)
        assert behaviour.Behaviour.from_settings(json.loads(json.dumps(chosen.to_settings()))) == chosen


def test_feature_histograms_are_named_per_feature_with_ten_increasing_buckets():
    assert behaviour.feature_metric("mean radius") == "model_feature_mean_radius"
    for buckets in (behaviour.SCORE_BUCKETS, *behaviour.FEATURE_BUCKETS.values()):
        assert len(buckets) == 10 and list(buckets) == sorted(set(buckets))


# --- what a pod asks for, and MLServer's files ------------------------------------------------------------


def test_a_gated_pod_names_its_server():
    spec = server_spec(pod())
    assert gated(pod())
    assert (spec.key, spec.ip, spec.http_port, spec.metrics_port, spec.grpc_port) == (
        "fraud/scorer-1",
        "10.244.0.7",
        8080,
        8082,
        8081,
    )
    assert (spec.model_name, spec.model_version, spec.behaviour.name) == ("fraud-scorer", "2026-11-20", "hotfix-errors")


def test_pods_without_the_gate_are_not_ours():
    plain = pod()
    plain["spec"] = {**plain["spec"], "readinessGates": [{"conditionType": "example.com/other"}]}
    assert not gated(plain)
    del plain["spec"]["readinessGates"]
    assert not gated(plain)


def test_name_and_version_default_to_the_pod_labels_and_grpc_avoids_the_declared_ports():
    template = pod_template("x", "y", http_port=8081, metrics_port=8082)
    template["spec"]["containers"][0]["env"] = []
    labels = {"modelrollout.io/model-name": "fraud-scorer", "modelrollout.io/model-version": "2026-11-27"}
    template["metadata"]["labels"] = labels
    spec = server_spec(pod(template))
    assert (spec.model_name, spec.model_version, spec.behaviour.name) == ("fraud-scorer", "2026-11-27", "good")
    assert spec.grpc_port == 8083


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(ports=[{"name": "metrics", "containerPort": 8082}]), "port named 'http'"),
        (lambda c: c.update(ports=[{"name": "http", "containerPort": 8080}]), "port named 'metrics'"),
        (lambda c: c["env"].__setitem__(2, {"name": "MODEL_BEHAVIOUR", "value": "fast"}), "unknown MODEL_BEHAVIOUR"),
        (lambda c: c["env"].__setitem__(1, {"name": "MODEL_VERSION", "valueFrom": {}}), "plain value"),
        (lambda c: c.update(env=[]), "set env MODEL_NAME and MODEL_VERSION"),
    ],
)
def test_a_pod_missing_what_a_server_needs_is_told_what_to_add(change, message):
    template = pod_template("fraud-scorer", "2026-11-20")
    change(template["spec"]["containers"][0])
    with pytest.raises(PodSpecError, match=message):
        server_spec(pod(template))


def test_server_settings_bind_the_pod_ip_on_its_ports_and_keep_the_parallel_worker(tmp_path):
    spec = server_spec(pod())
    settings = server_settings(spec, tmp_path)
    assert (settings["host"], settings["http_port"], settings["metrics_port"], settings["grpc_port"]) == (
        "10.244.0.7",
        8080,
        8082,
        8081,
    )
    assert settings["metrics_dir"] == str(tmp_path / "metrics")
    assert "parallel_workers" not in settings  # MLServer's default 1: custom metrics need the worker


def test_model_settings_carry_version_behaviour_and_artifact(tmp_path):
    spec = server_spec(pod())
    settings = model_settings(spec, tmp_path / "hotfix.joblib", FEATURES)
    assert settings["name"] == "fraud-scorer" and settings["implementation"] == "runtime.BehaviourModel"
    parameters = settings["parameters"]
    assert parameters["version"] == "2026-11-20" and parameters["uri"] == str(tmp_path / "hotfix.joblib")
    assert behaviour.Behaviour.from_settings(parameters["extra"]) == spec.behaviour
    assert parameters["extra"]["feature_names"] == FEATURES


def test_a_server_folder_holds_the_settings_and_the_runtime_files(tmp_path):
    write_folder(server_spec(pod()), tmp_path, tmp_path / "hotfix.joblib", FEATURES)
    assert json.loads((tmp_path / "settings.json").read_text())["host"] == "10.244.0.7"
    model_dir = tmp_path / "models" / "fraud-scorer"
    assert json.loads((model_dir / "model-settings.json").read_text())["name"] == "fraud-scorer"
    runtime = (model_dir / "runtime.py").read_text()
    assert "class BehaviourModel" in runtime and "modelrollout" not in runtime.split('"""')[2]
    assert (model_dir / "behaviour.py").is_file()


# --- a terminating pod's server (the kubelet's preStop hook, played by the harness) ---------------------------


def with_prestop(hook: dict | None, grace: int | None = None, deleted_with: int | None = None, **where) -> dict:
    """A served pod whose model-server container has `hook` as preStop; `grace` its terminationGracePeriodSeconds,
    `deleted_with` the grace of a deletion under way (a deletionTimestamp set)."""
    served = pod(**where)
    served["spec"] = {**served["spec"], "containers": [dict(served["spec"]["containers"][0])]}
    if hook is not None:
        served["spec"]["containers"][0]["lifecycle"] = {"preStop": hook}
    if grace is not None:
        served["spec"]["terminationGracePeriodSeconds"] = grace
    if deleted_with is not None:
        served["metadata"] = {
            **served["metadata"],
            "deletionTimestamp": "2026-11-20T10:00:00Z",
            "deletionGracePeriodSeconds": deleted_with,
        }
    return served


@pytest.mark.parametrize(
    ("hook", "seconds"),
    [
        ({"sleep": {"seconds": 5}}, 5.0),
        ({"exec": {"command": ["sleep", "7"]}}, 7.0),
        ({"exec": {"command": ["/bin/sleep", "2.5"]}}, 2.5),
        ({"exec": {"command": ["/bin/sh", "-c", "sleep 6"]}}, 6.0),
        ({"exec": {"command": ["bash", "-c", " exec sleep 3 "]}}, 3.0),
        # Anything but a plain sleep is not run: the server stops at once, as without a hook.
        ({"exec": {"command": ["/bin/sh", "-c", "sleep 6 && curl localhost/drain"]}}, 0.0),
        ({"exec": {"command": ["sleep", "1m"]}}, 0.0),
        ({"exec": {"command": ["/usr/local/bin/drain", "6"]}}, 0.0),
        ({"httpGet": {"path": "/drain", "port": 8080}}, 0.0),
        (None, 0.0),
    ],
)
def test_a_pods_prestop_sleep_is_how_long_its_server_keeps_serving_once_deleted(hook, seconds):
    assert harness.prestop_seconds(with_prestop(hook)) == seconds


def test_the_prestop_sleep_is_capped_by_the_grace_period_a_deletion_sets_else_the_pods_else_30s():
    assert harness.prestop_seconds(with_prestop({"sleep": {"seconds": 45}})) == 30.0
    assert harness.prestop_seconds(with_prestop({"sleep": {"seconds": 45}}, grace=10)) == 10.0
    assert harness.prestop_seconds(with_prestop({"sleep": {"seconds": 8}}, grace=10, deleted_with=3)) == 3.0


def test_kwoks_last_delete_does_not_cut_the_prestop_sleep():
    """kwok deletes a terminating pod at once with grace 0, and the apiserver stores that grace for a moment (the
    last CI run's harness listed the pod then and stopped its servers before Traefik had dropped them)."""
    assert harness.prestop_seconds(with_prestop({"sleep": {"seconds": 8}}, grace=10, deleted_with=0)) == 8.0
    assert harness.prestop_seconds(with_prestop({"sleep": {"seconds": 8}}, grace=2, deleted_with=0)) == 2.0


def test_only_the_model_server_containers_hook_counts():
    sidecar = with_prestop(None)
    side = {"name": "proxy", "image": "envoy", "lifecycle": {"preStop": {"sleep": {"seconds": 9}}}}
    sidecar["spec"]["containers"] = [side, *sidecar["spec"]["containers"]]
    assert harness.prestop_seconds(sidecar) == 0.0


def tracked(served: dict) -> harness.Tracked:
    """The harness's entry for a pod it serves, as it records it when it starts serving."""
    return harness.Tracked(server_spec(served), prestop_seconds=harness.prestop_seconds(served))


def test_a_deleted_pods_server_keeps_serving_its_prestop_sleep_from_when_the_harness_noticed():
    running = with_prestop({"sleep": {"seconds": 5}})
    leaving = {
        "uid-1": harness.leave(tracked(running), with_prestop({"sleep": {"seconds": 5}}, deleted_with=30), 100.0)
    }
    assert (leaving["uid-1"].state, leaving["uid-1"].stop_at) == (harness.TERMINATING, 105.0)
    assert harness.stop_due(leaving, {"10.244.0.9"}, now=104.9) == {}
    assert harness.wait_seconds(leaving.values(), resync=2.0, now=104.0) == pytest.approx(1.0)
    assert harness.wait_seconds(leaving.values(), resync=2.0, now=100.0) == 2.0
    assert harness.stop_due(leaving, {"10.244.0.9"}, now=105.0) == {
        "uid-1": "its pod was deleted and its preStop sleep of 5s ended"
    }
    assert harness.wait_seconds(leaving.values(), resync=2.0, now=106.0) == 0.0


def test_a_pod_deleted_outright_keeps_the_prestop_sleep_seen_while_it_ran():
    # kwok deletes a pod as soon as it has a deletionTimestamp: the harness may never see that version.
    gone = harness.leave(tracked(with_prestop({"exec": {"command": ["sleep", "4"]}}, grace=20)), None, 50.0)
    assert (gone.stop_at, gone.message) == (54.0, "its pod was deleted")
    assert harness.stop_due({"uid-1": gone}, set(), now=53.0) == {}
    assert list(harness.stop_due({"uid-1": gone}, set(), now=54.0)) == ["uid-1"]


def test_a_terminating_server_stops_at_once_when_a_pod_to_serve_has_its_ip():
    # kwok hands the freed IP to the next pod: its server could not bind while the old one runs.
    old = harness.leave(tracked(with_prestop({"sleep": {"seconds": 5}}, ip="10.244.0.7")), None, 100.0)
    other = harness.leave(tracked(with_prestop({"sleep": {"seconds": 5}}, ip="10.244.0.8", name="b")), None, 100.0)
    due = harness.stop_due({"old": old, "other": other}, {"10.244.0.7", "10.244.0.12"}, now=100.5)
    assert due == {"old": "its pod was deleted, and another pod to serve has its IP"}


def test_a_pod_that_stops_running_without_being_deleted_loses_its_server_at_once():
    failed = with_prestop({"sleep": {"seconds": 5}})
    failed["status"] = {**failed["status"], "phase": "Failed"}
    entry = harness.leave(tracked(with_prestop({"sleep": {"seconds": 5}})), failed, 100.0)
    assert (entry.stop_at, entry.state) == (100.0, harness.TERMINATING)
    assert harness.stop_due({"uid-1": entry}, set(), now=100.0) == {"uid-1": "its pod no longer runs"}


# --- kwok's Stages -----------------------------------------------------------------------------------------

UPSTREAM_POD_READY = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions: [{key: .metadata.deletionTimestamp, operator: Exists}]
  next: {delete: true}
"""


def test_gated_pods_get_their_own_stage_that_leaves_ready_false():
    documents = list(yaml.safe_load_all(stages.with_readiness_gates(UPSTREAM_POD_READY)))
    by_name = {doc["metadata"]["name"]: doc for doc in documents}
    assert [doc["metadata"]["name"] for doc in documents] == ["pod-ready", "pod-ready-gated", "pod-delete"]
    assert by_name["pod-ready"]["spec"]["selector"]["matchExpressions"][-1] == stages.NO_GATES
    assert by_name["pod-ready-gated"]["spec"]["selector"]["matchExpressions"][-1] == stages.HAS_GATES
    gated_template = by_name["pod-ready-gated"]["spec"]["next"]["statusTemplate"]
    conditions = yaml.safe_load(gated_template.replace("{{ $now := Now }}", "").replace("{{ $now | Quote }}", "t"))
    statuses = {c["type"]: c["status"] for c in conditions["conditions"]}
    assert statuses == {"Ready": "False", "ContainersReady": "True"}
    assert conditions["phase"] == "Running"
    upstream = list(yaml.safe_load_all(UPSTREAM_POD_READY))
    assert by_name["pod-ready"]["spec"]["next"] == upstream[0]["spec"]["next"]
    assert by_name["pod-delete"] == upstream[1]


def test_an_upstream_stage_that_changed_shape_is_an_error_naming_the_file_to_update():
    changed = UPSTREAM_POD_READY.replace("type: Ready\n", "type: Readyish\n")
    with pytest.raises(stages.StageFormatError, match=r"modelserver/stages\.py"):
        stages.with_readiness_gates(changed)


def test_job_pods_are_not_completed_by_kwok_but_left_to_the_job_runner():
    upstream = (
        UPSTREAM_POD_READY
        + """---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions: [{key: '.metadata.ownerReferences.[].kind', operator: In, values: [Job]}]
  next: {statusTemplate: 'phase: Succeeded'}
"""
    )
    kept = [doc["metadata"]["name"] for doc in yaml.safe_load_all(stages.without_job_completion(upstream)) if doc]
    assert kept == ["pod-ready", "pod-delete"]
    with pytest.raises(stages.StageFormatError, match="pod-complete"):
        stages.without_job_completion(UPSTREAM_POD_READY)


# --- Prometheus' pod discovery ------------------------------------------------------------------------------


class _FakeCluster:
    server = "https://127.0.0.1:6443"
    ca_file = Path("/tmp/ca.crt")


def test_the_pod_job_discovers_through_the_apiserver_and_labels_revisions():
    job = prometheus.pods_job(_FakeCluster(), Path("/tmp/token"), ["fraud"])  # type: ignore[arg-type]
    discovery = job["kubernetes_sd_configs"][0]
    assert (discovery["role"], discovery["api_server"], discovery["namespaces"]) == (
        "pod",
        "https://127.0.0.1:6443",
        {"names": ["fraud"]},
    )
    assert discovery["authorization"]["credentials_file"] == "/tmp/token"
    assert discovery["tls_config"]["ca_file"] == "/tmp/ca.crt"
    keep = job["relabel_configs"][0]
    assert (keep["source_labels"], keep["regex"], keep["action"]) == (
        ["__meta_kubernetes_pod_container_port_name"],
        "metrics",
        "keep",
    )
    targets = {rule["target_label"]: rule["source_labels"][0] for rule in job["relabel_configs"][2:]}
    assert targets["revision"] == "__meta_kubernetes_pod_label_modelrollout_io_revision"
    assert {"namespace", "pod", "model_name", "model_version"} <= set(targets)
    assert "metric_relabel_configs" not in job  # series keep the names the server exports


# --- the load generator --------------------------------------------------------------------------------------


def test_snapshot_windows_shares_and_first_and_last_answers():
    answers = (
        loadgen.Answer(1.0, "a", 200, 0.01),
        loadgen.Answer(2.0, "b", 200, 0.01),
        loadgen.Answer(3.0, "", 500, 0.01),
        loadgen.Answer(4.0, "a", 200, 0.01),
        loadgen.Answer(5.0, "", loadgen.CONNECTION_ERROR, 5.0),
    )
    snapshot = loadgen.Snapshot(answers)
    assert snapshot.counts() == {("a", 200): 2, ("b", 200): 1, ("", 500): 1, ("", 0): 1}
    assert snapshot.shares(since=2.0) == {"b": 0.5, "a": 0.5}
    assert snapshot.error_ratio() == 0.25
    assert snapshot.error_ratio(since=10.0) is None
    assert (snapshot.first_answer("a"), snapshot.last_answer("a"), snapshot.first_answer("c")) == (1.0, 4.0, None)


def test_drift_scales_only_the_chosen_features():
    assert loadgen.drifted([10.0, 20.0, 30.0], [0, 2], 0.5) == (15.0, 20.0, 45.0)


def test_the_recorder_keeps_every_answer_from_many_threads():
    recorder = loadgen.Recorder()

    def record(thread: int) -> None:
        for index in range(500):
            recorder.record(loadgen.Answer(thread * 1000 + index, str(thread), 200, 0.0))

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = recorder.snapshot().counts()
    assert counts == {(str(n), 200): 500 for n in range(8)}


class _Model(BaseHTTPRequestHandler):
    """Answers like MLServer: version v1, or a 500 when the row's first value is above 15."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        value = request["inputs"][0]["data"][0]
        if self.path != "/v2/models/fraud-scorer/infer":
            code, body = 404, {"error": "no such model"}
        elif value > 15:
            code, body = 500, {"error": "too large"}
        else:
            code, body = 200, {"model_name": "fraud-scorer", "model_version": "v1", "outputs": []}
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_the_load_generator_counts_real_answers_by_version_and_status():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rows = [[10.0, 1.0], [20.0, 1.0], [12.0, 1.0], [30.0, 1.0]]
        base = f"http://127.0.0.1:{server.server_address[1]}"
        snapshot = loadgen.LoadGenerator(base, "fraud-scorer", rows, rps=200).start(seconds=0.2).wait()
        # wait() returns once the run ended and every request in flight was answered.
        counts = snapshot.counts()
        assert set(counts) == {("v1", 200), ("", 500)}
        assert sum(counts.values()) >= 4
        assert loadgen.infer(base, "fraud-scorer", [14.0, 1.0]) == (
            200,
            {"model_name": "fraud-scorer", "model_version": "v1", "outputs": []},
        )
        assert loadgen.infer(base, "other", [1.0])[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_the_mlserver_pin_is_the_one_in_versions():
    # The modelserver package may not import devcluster, so it repeats the pin; this keeps them equal.
    from modelrollout.devcluster import versions
    from modelrollout.modelserver import install

    assert install.MLSERVER == versions.MLSERVER
    assert f"mlserver=={versions.MLSERVER}" in install.REQUIREMENTS


def test_a_served_model_deployment_carries_the_harness_contract_and_the_extra_spec():
    from modelrollout.modelserver.settings import model_deployment

    body = model_deployment(
        "fraud-scorer",
        "fraud",
        "2026-12-04",
        "hotfix-errors",
        {"traefik": {}},
        {"canary": {"steps": []}},
        replicas=2,
        progressDeadlineSeconds=300,
    )
    spec = body["spec"]
    assert body["metadata"] == {"name": "fraud-scorer", "namespace": "fraud"}
    assert spec["template"] == pod_template("fraud-scorer", "2026-12-04", "hotfix-errors")
    assert (spec["replicas"], spec["model"]["version"], spec["progressDeadlineSeconds"]) == (2, "2026-12-04", 300)
    assert spec["service"] == {"port": 80, "targetPort": "http"} and spec["trafficRouting"] == {"traefik": {}}
