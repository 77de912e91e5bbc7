"""Benchmark: the operator with N = 10, 100, 1000 ModelDeployments on the local control plane.

Prints figures; asserts nothing. For each N a fresh local stack (control plane with enough kwok
nodes, Prometheus, traffic simulator, the operator as its own process) runs:

1. create N ModelDeployments (1 replica, Gateway API router) and wait until all are Healthy;
2. idle: operator RSS and CPU seconds per minute, API requests per minute, over a quiet window;
3. rollouts: a new model version on all N (steps setWeight 20, pause 10s, setWeight 60, pause), then a
   person's promote on each at the last pause, until all are Healthy on it: API requests per rollout
   (template change -> first pause -> promoted), per reconcile, CPU, time from each template change to
   its canary Deployment, from each pause being due to its HTTPRoute showing 60%;
4. one alarm under load: another version on all N; while the others roll, one ModelDeployment at a time
   (5 of them) gets its own alert by webhook once its route shows 20%: time from the POST to its
   HTTPRoute sending 100% of traffic to stable;
5. all alarms at once: once the others wait at the last pause, one webhook with an alert for each of
   them: time from the POST to each HTTPRoute sending 100% to stable.

    .venv/bin/python benchmarks/scale.py [--sizes 10 100 1000] [--idle-seconds 60] [--workers 4]
        [--burst-only] [--profile DIR] [--operator-source DIR]

`--burst-only` runs 1, then 5 on a first rollout (about 8 minutes at N = 1000 instead of 20).
`--profile DIR` writes CPU profiles of the burst: the operator's by py-spy (`pip install py-spy`;
speedscope JSON) and the apiserver's from its /debug/pprof (`go tool pprof -top DIR/apiserver.pprof`).
`--operator-source DIR` runs the operator from another source root (say `git worktree add /tmp/before <commit>`
and `--operator-source /tmp/before/operator`), so a before and an after are measured in one sitting on the same
stack; the CRDs, the workload and the measuring stay this tree's.

CPU and RSS are read from /proc for the operator process; API requests and reconciles from its /metrics.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.controller.routing import ROUTER_KINDS
from modelrollout.core.enums import Router
from modelrollout.core.spec import parse_spec
from modelrollout.devcluster.cluster import wait_until
from modelrollout.devcluster.stack import local_stack, operator_metric
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, KubeClient

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "scale"
PAUSE_SECONDS = 10
PROBES = 5  # ModelDeployments alarmed one at a time while the others roll
PODS_PER_NODE = 250
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
(HTTPROUTE,) = ROUTER_KINDS[Router.GATEWAY_API]


def model(index: int, version: str) -> dict:
    body = yaml.safe_load((REPO / "manifests/samples/fraud-scorer.yaml").read_text())
    body["metadata"] = {"name": f"model-{index:04d}", "namespace": NAMESPACE}
    steps = [{"setWeight": 20}, {"pause": {"duration": f"{PAUSE_SECONDS}s"}}, {"setWeight": 60}, {"pause": {}}]
    body["spec"].update(
        {
            "replicas": 1,
            "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
            "strategy": {"canary": {"steps": steps, "scaleDownDelaySeconds": 5, "abortScaleDownDelaySeconds": 5}},
            "rollbackOn": {
                "pollInterval": "30s",
                "alerts": [{"alertname": "ScaleAlarm", "labels": {"md": f"{index}"}}],
            },
        }
    )
    body["spec"]["model"]["version"] = version
    return body


class Process:
    """CPU seconds and resident memory of one process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


class Watch:
    """Receive times of watch events, per object name, in a background thread."""

    def __init__(self, kube: KubeClient, path: str, keep: Callable[[dict], str | None]) -> None:
        self.seen: dict[str, float] = {}
        self.received = 0
        self._kube, self._path, self._keep = kube, path, keep
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stack stopping ends the watch mid-stream
            self._follow()

    def _follow(self) -> None:
        for event in self._kube.watch(self._path):
            self.received += 1
            key = self._keep(event)
            if key is not None and key not in self.seen:
                self.seen[key] = time.time()


def figures(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return f"median {statistics.median(ordered):.2f}s, p95 {p95:.2f}s, max {ordered[-1]:.2f}s"


def is_healthy(status: dict) -> bool:
    return status.get("phase") == "Healthy"


def at_final_pause(status: dict) -> bool:
    return status.get("phase") == "Paused" and status.get("currentStepIndex") == 3


def name_of(index: int) -> str:
    return f"model-{index:04d}"


def change_version(kube: KubeClient, size: int, version: str) -> dict[str, float]:
    """A new model version on every ModelDeployment; returns when each was changed."""
    changed = {}
    for index in range(size):
        kube.request(
            "PATCH",
            MODEL_DEPLOYMENT.path(NAMESPACE, name_of(index)),
            body={"spec": {"model": {"version": version}}},
            content_type="application/merge-patch+json",
        )
        changed[name_of(index)] = time.time()
    return changed


def promote_all(kube: KubeClient, size: int) -> None:
    """A person's promote on each, written as `kubectl modelrollout promote` writes it."""
    for index in range(size):
        request = {"action": "promote", "id": f"bench-{index}", "actor": "benchmark", "requestedAt": now_text()}
        kube.request(
            "PATCH",
            MODEL_DEPLOYMENT.path(NAMESPACE, name_of(index), "status"),
            body={"status": {"request": request}},
            content_type="application/merge-patch+json",
        )


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canary_weight(event: dict) -> int:
    return event["object"]["spec"]["rules"][0]["backendRefs"][1]["weight"]


def fire(stack, indexes: list[int]) -> float:
    """One Alertmanager webhook with an alert for each index; returns when it was posted."""
    alerts = [{"status": "firing", "labels": {"alertname": "ScaleAlarm", "md": str(index)}} for index in indexes]
    request = urllib.request.Request(
        f"http://{stack.http}/alertmanager",
        data=json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode(),
        headers={"Authorization": f"Bearer {stack.webhook_token}", "Content-Type": "application/json"},
    )
    posted = time.time()
    urllib.request.urlopen(request, timeout=30).read()
    return posted


def total(before: collections.Counter, after: collections.Counter, per: float) -> str:
    return f"{sum(after[key] - before[key] for key in after) / per:.1f}"


def all_status(kube: KubeClient, predicate: Callable[[dict], bool], count: int) -> bool:
    items = kube.list(MODEL_DEPLOYMENT, NAMESPACE)
    return len(items) == count and all(
        predicate(item.get("status") or {})
        and (item.get("status") or {}).get("observedGeneration") == item["metadata"]["generation"]
        for item in items
    )


def request_counts(http: str) -> collections.Counter[tuple[str, str, str]]:
    """API requests sent so far by (client, verb, resource), from the operator's /metrics."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "modelrollout_kube_api_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["client"], sample.labels["verb"], sample.labels["resource"]] += sample.value
    return counts


def cache_sizes(http: str) -> str:
    """Objects and bytes per object in the operator's watch caches, per resource, from its /metrics."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name in ("modelrollout_cache_objects", "modelrollout_cache_bytes"):
            for sample in family.samples:
                found[sample.labels["resource"]][family.name] = sample.value
    return (
        ", ".join(
            f"{resource} {sizes['modelrollout_cache_objects']:.0f} x "
            f"{sizes['modelrollout_cache_bytes'] / max(sizes['modelrollout_cache_objects'], 1) / 1024:.1f} KiB"
            for resource, sizes in sorted(found.items())
            if sizes.get("modelrollout_cache_objects")
        )
        or "n/a"
    )


def serving(http: str) -> bool:
    try:
        return operator_metric(http, "modelrollout_leader") is not None
    except OSError:  # not listening yet
        return False


def operator_counts(http: str) -> tuple[float, float]:
    """(API requests sent, reconciles done) so far, from the operator's /metrics."""
    reconciles = operator_metric(http, "modelrollout_reconcile_duration_seconds_count") or 0.0
    return sum(request_counts(http).values()), reconciles


def cpu_by_process(stack, operator: Process) -> dict[str, float]:
    """CPU seconds so far of the operator and of each control-plane process (where the time goes)."""
    processes = {process.name: Process(process.popen.pid) for process in stack.cluster.processes if process.alive()}
    return {"operator": operator.cpu_seconds()} | {name: process.cpu_seconds() for name, process in processes.items()}


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> str:
    spent = sorted(((after[name] - before.get(name, 0.0), name) for name in after), reverse=True)
    return ", ".join(f"{name} {seconds:.1f}" for seconds, name in spent if seconds >= 0.05)


def by_resource(before: collections.Counter, after: collections.Counter, per: float) -> str:
    """The requests between two readings, per `per` (e.g. per ModelDeployment), largest first."""
    spent = sorted(((after[key] - before[key]) / per, key) for key in after if after[key] > before[key])
    return ", ".join(f"{client} {verb} {resource} {count:.1f}" for count, (client, verb, resource) in reversed(spent))


def all_alarms_at_once(
    stack, kube: KubeClient, operator: Process, indexes: list[int], back: Watch, profile: Path | None
):
    """One webhook with an alert for each of `indexes` (all at their last pause): time from the POST to each
    HTTPRoute sending 100% to stable, CPU by process and requests by resource until the last one; with
    `profile`, the operator's (py-spy) and the apiserver's (pprof) CPU profiles of that window."""
    results: dict[str, str] = {}
    if not indexes:
        return results
    cpu_before, requests_before = cpu_by_process(stack, operator), request_counts(stack.http)
    with profiling(stack, operator, profile, seconds=30):
        posted = fire(stack, indexes)
        wait_until(
            lambda: all(name_of(i) in back.seen for i in indexes),
            60 + len(indexes),
            "all routes back on stable",
            interval=0.2,
        )
        alarmed = time.time() - posted
        cpu_after, requests_after = cpu_by_process(stack, operator), request_counts(stack.http)
    results["all alarms at once: CPU-s by process until the last route"] = (
        f"{cpu_spent(cpu_before, cpu_after)} in {alarmed:.1f}s"
    )
    results["all alarms at once: API requests per ModelDeployment until the last route"] = (
        f"{total(requests_before, requests_after, len(indexes))}: "
        f"{by_resource(requests_before, requests_after, len(indexes))}"
    )
    results["all alarms at once: -> HTTPRoute 100% stable"] = figures([back.seen[name_of(i)] - posted for i in indexes])
    return results


@contextlib.contextmanager
def profiling(stack, operator: Process, directory: Path | None, seconds: int):
    """CPU profiles of the operator (py-spy, when installed) and the apiserver (its /debug/pprof) while the
    block runs, for at most `seconds`, written to `directory`."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    started = []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if Path(py_spy).exists():
        started.append(
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(operator.pid),
                    "--duration",
                    str(seconds),
                    "--format",
                    "speedscope",
                    "--output",
                    str(directory / "operator.speedscope.json"),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    else:
        print("  (py-spy is not installed: no operator profile; pip install py-spy)", flush=True)
    with (directory / "apiserver.pprof").open("wb") as out:
        started.append(
            subprocess.Popen(
                [
                    str(stack.cluster.binaries.kubectl),
                    f"--kubeconfig={stack.cluster.kubeconfig}",
                    "get",
                    "--raw",
                    f"/debug/pprof/profile?seconds={seconds}",
                ],
                stdout=out,
                stderr=subprocess.PIPE,
            )
        )
    try:
        yield
    finally:
        for process in started:
            _, error = process.communicate(timeout=seconds + 60)
            if process.returncode != 0:
                print(f"  profile {process.args[0]} exited with {process.returncode}: {error.decode().strip()}")
        print(f"  profiles in {directory} (go tool pprof -top {directory / 'apiserver.pprof'})", flush=True)


def routes_back(kube: KubeClient) -> Watch:
    return Watch(
        kube, HTTPROUTE.path(NAMESPACE), lambda e: e["object"]["metadata"]["name"] if canary_weight(e) == 0 else None
    )


def burst(stack, kube: KubeClient, operator: Process, size: int, profile: Path | None) -> dict[str, str]:
    """`--burst-only`: a new version on all N, then all alarms at once at the last pause (step 5 alone)."""
    print(f"N={size}: rolling out to the last pause", flush=True)
    back = routes_back(kube)
    wait_until(lambda: back.received >= size, 60, interval=0.1, what="the watch's initial listing")
    started = time.monotonic()
    change_version(kube, size, "v2")
    wait_until(lambda: all_status(kube, at_final_pause, size), 120 + 2 * size, "all at the final pause", interval=0.5)
    results = {"rollouts: template change until all at the last pause": f"{time.monotonic() - started:.1f}s"}
    back.seen.clear()  # every route passed 0% as its rollout started; only the alarm's return counts
    print(f"N={size}: all alarms at once", flush=True)
    return results | all_alarms_at_once(stack, kube, operator, list(range(size)), back, profile)


def run(
    size: int, idle_seconds: float, workers: int, burst_only: bool, profile: Path | None, source: Path | None
) -> dict[str, str]:
    nodes = max(3, math.ceil(2.5 * size / PODS_PER_NODE))
    results: dict[str, str] = {"N": str(size), "kwok nodes": str(nodes), "operator workers": str(workers)}
    settings = {"MODELROLLOUT_WORKERS": str(workers)}
    if source is not None:
        settings["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))
        results["operator source"] = f"{source} ({source_commit(source)})"
    with local_stack([], nodes=nodes, operator_settings=settings) as stack:
        kube = KubeClient.from_environment(str(stack.cluster.kubeconfig))
        operator = Process(stack.operator.pid)
        stack.cluster.kubectl("create", "namespace", NAMESPACE)
        # The operator serves /metrics once its start-up waited for the apiserver to serve its resources.
        wait_until(
            lambda: operator_metric(stack.http, "modelrollout_leader") is not None, 60, "the operator's /metrics"
        )
        print(f"N={size}: creating", flush=True)
        created0 = request_counts(stack.http)
        started = time.monotonic()
        for index in range(size):
            kube.request("POST", MODEL_DEPLOYMENT.path(NAMESPACE), body=model(index, "v1"))
        wait_until(lambda: all_status(kube, is_healthy, size), 60 + size, "all Healthy", interval=0.5)
        results["create N until all Healthy"] = f"{time.monotonic() - started:.1f}s"
        created1 = request_counts(stack.http)
        results["create: API requests per ModelDeployment"] = total(created0, created1, size)
        results["create: by resource"] = by_resource(created0, created1, size)
        if burst_only:
            results |= burst(stack, kube, operator, size, profile)
            kube.close()
            return results

        time.sleep(5)  # let the last reconciles and their watch events drain before the idle window
        cpu0, requests0, reconciles0 = operator.cpu_seconds(), *operator_counts(stack.http)
        time.sleep(idle_seconds)  # the measurement window itself
        cpu1, requests1, reconciles1 = operator.cpu_seconds(), *operator_counts(stack.http)
        results["idle CPU"] = f"{(cpu1 - cpu0) * 60 / idle_seconds:.2f} CPU-s/min"
        results["idle RSS"] = f"{operator.rss_mib():.0f} MiB"
        results["idle reconciles"] = f"{(reconciles1 - reconciles0) * 60 / idle_seconds:.1f}/min"
        results["idle API requests"] = f"{(requests1 - requests0) * 60 / idle_seconds:.1f}/min"

        new_revision = parse_spec(model(0, "v2")["spec"]).revision
        canary_created = Watch(
            kube,
            DEPLOYMENT.path(NAMESPACE),
            lambda e: (
                e["object"]["metadata"]["labels"].get("modelrollout.io/deployment")
                if e["type"] == "ADDED"
                and e["object"]["metadata"]["labels"].get("modelrollout.io/revision") == new_revision
                else None
            ),
        )
        weight_60 = Watch(
            kube,
            HTTPROUTE.path(NAMESPACE),
            lambda e: (
                e["object"]["metadata"]["name"]
                if e["object"]["spec"]["rules"][0]["backendRefs"][1]["weight"] == 60
                else None
            ),
        )
        print(f"N={size}: rolling out", flush=True)
        cpu2, requests2, reconciles2 = operator.cpu_seconds(), *operator_counts(stack.http)
        rolled0 = request_counts(stack.http)
        rollout_started = time.monotonic()
        changed = change_version(kube, size, "v2")
        wait_until(
            lambda: all_status(kube, at_final_pause, size), 120 + 2 * size, "all at the final pause", interval=0.5
        )
        at_pause = time.monotonic()
        results["rollouts: template change until all at the last pause"] = f"{at_pause - rollout_started:.1f}s"
        results["rollouts: RSS"] = f"{operator.rss_mib():.0f} MiB"
        promote_all(kube, size)
        wait_until(
            lambda: all_status(kube, lambda s: is_healthy(s) and s.get("stableRevision") == new_revision, size),
            120 + 2 * size,
            "all promoted",
            interval=0.5,
        )
        elapsed = time.monotonic() - rollout_started
        cpu3, requests3, reconciles3 = operator.cpu_seconds(), *operator_counts(stack.http)
        rolled1 = request_counts(stack.http)
        results["rollouts: CPU"] = f"{(cpu3 - cpu2) * 60 / elapsed:.2f} CPU-s/min over {elapsed:.0f}s"
        reconciles = reconciles3 - reconciles2
        results["rollouts: reconciles"] = f"{reconciles:.0f} ({reconciles / size:.1f} per ModelDeployment)"
        results["rollouts: API requests per reconcile"] = f"{(requests3 - requests2) / max(reconciles, 1):.1f}"
        results["rollouts: API requests per rollout (to promoted)"] = total(rolled0, rolled1, size)
        results["rollouts: by resource"] = by_resource(rolled0, rolled1, size)
        results["template change -> canary Deployment"] = figures(
            [canary_created.seen[name] - at for name, at in changed.items() if name in canary_created.seen]
        )
        due_to_route = []
        for item in kube.list(MODEL_DEPLOYMENT, NAMESPACE):
            name = item["metadata"]["name"]
            history = item["status"]["history"]
            started_pause = [e for e in history if e["action"] == "StepCompleted" and "setWeight 20%" in e["message"]]
            if started_pause and name in weight_60.seen:
                due = datetime.fromisoformat(started_pause[-1]["time"].replace("Z", "+00:00")).timestamp()
                due_to_route.append(weight_60.seen[name] - (due + PAUSE_SECONDS))
        results["pause due -> HTTPRoute at 60%"] = figures(due_to_route)

        print(f"N={size}: one alarm at a time while the others roll", flush=True)
        probes = list(range(min(PROBES, size)))
        at_20 = Watch(
            kube,
            HTTPROUTE.path(NAMESPACE),
            lambda e: e["object"]["metadata"]["name"] if canary_weight(e) == 20 else None,
        )
        back = routes_back(kube)
        wait_until(lambda: back.received >= size, 60, interval=0.1, what="the watch's initial listing")
        back.seen.clear()  # every route starts at 0% canary: only a return after the alarm counts
        change_version(kube, size, "v3")
        one_alarm, rolling_when_fired = [], []
        for index in probes:
            name = name_of(index)
            wait_until(lambda n=name: n in at_20.seen, 120 + 2 * size, f"{name}'s route at 20%", interval=0.05)
            back.seen.pop(name, None)
            rolling_when_fired.append(sum(1 for i in range(size) if i != index and name_of(i) not in at_20.seen))
            posted = fire(stack, [index])
            wait_until(lambda n=name: n in back.seen, 60, f"{name}'s route back on stable", interval=0.02)
            one_alarm.append(back.seen[name] - posted)
        results["one alarm while the others roll: -> HTTPRoute 100% stable"] = figures(one_alarm)
        results["one alarm: others not yet at 20% when it fired"] = (
            f"{min(rolling_when_fired)}..{max(rolling_when_fired)} of {size - 1}"
        )

        others = [index for index in range(size) if index not in probes]
        wait_until(
            lambda: all(
                at_final_pause(item.get("status") or {})
                for item in kube.list(MODEL_DEPLOYMENT, NAMESPACE)
                if int(item["metadata"]["name"].split("-")[1]) in others
            ),
            120 + 2 * size,
            "the others at the final pause",
            interval=0.5,
        )
        for index in others:
            back.seen.pop(name_of(index), None)  # a route passes 0% as a rollout starts; only the alarm's counts
        results |= all_alarms_at_once(stack, kube, operator, others, back, profile)
        results["RSS at the end"] = f"{operator.rss_mib():.0f} MiB"
        results["watch caches"] = cache_sizes(stack.http)
        kube.close()
    return results


def source_commit(source: Path) -> str:
    """The commit a source root is checked out at, as `git describe` names it, or why it is not known."""
    described = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return described.stdout.strip() if described.returncode == 0 else "not a git checkout"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4, help="MODELROLLOUT_WORKERS for the operator")
    parser.add_argument(
        "--burst-only", action="store_true", help="create, roll out to the last pause, all alarms at once; no more"
    )
    parser.add_argument("--profile", type=Path, help="write CPU profiles of the all-alarms burst to this directory")
    parser.add_argument(
        "--operator-source",
        type=Path,
        help="run the operator from this source root (a worktree's operator/ folder) to measure another commit",
    )
    args = parser.parse_args()
    if args.operator_source is not None and not (args.operator_source / "modelrollout" / "cli.py").is_file():
        parser.error(f"--operator-source {args.operator_source}: no modelrollout/cli.py there; give a tree's operator/")
    print(f"machine: {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    for size in args.sizes:
        try:
            results = run(size, args.idle_seconds, args.workers, args.burst_only, args.profile, args.operator_source)
        except (RuntimeError, TimeoutError, OSError) as error:
            print(
                f"N={size}: the benchmark stopped: {error}\n(a missing download? run `make setup` and "
                "`.venv/bin/modelrollout dev-cluster build` first, outside the private network)",
                file=sys.stderr,
            )
            return 1
        for key, value in results.items():
            print(f"  {key:<42} {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
