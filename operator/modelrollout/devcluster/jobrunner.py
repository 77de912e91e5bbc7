"""The job runner: the kubelet's part for Job pods on kwok nodes, running each container as a real process.

kwok runs nothing; upstream's `pod-complete` Stage would mark a Job's pod Succeeded at once, so a Job
would "pass" without anything having run. The local cluster drops that Stage (`modelserver.stages`) and
this runner plays the kubelet for every pod a Job owns (label `batch.kubernetes.io/job-name`):

- once kwok has the pod Running, it starts the pod's first container's `command` + `args` as a local
  process, with the container's literal `env` values; `python`/`python3` is this interpreter, so the
  installed `modelrollout` package is importable, as it is in the operator image;
- cluster DNS and kube-proxy do not exist here, so a Service URL in the command line or env
  (`http://<service>.<namespace>.svc[.cluster.local][:port]`) is rewritten to a ready endpoint's
  address and target port, from the Service and its EndpointSlices, as they would route it;
- when the process exits it writes the pod's status as a kubelet would: phase Succeeded or Failed, the
  container terminated with its exit code and the termination message the process wrote to
  `TERMINATION_MESSAGE_PATH` (at most 4096 bytes); the Job controller takes it from there;
- a pod deleted meanwhile (the Job's deadline, a deleted Job) has its process killed.

A pod it cannot run (no command, an env value from a reference) is failed with a message saying why.
Pod IPs are reachable only inside the private network (`modelrollout private-network -- ...`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client

from modelrollout.core.conditions import format_time
from modelrollout.kube.client import POD, SERVICE, Kind, KubeClient, KubeError, load_configuration

log = logging.getLogger("modelrollout.jobrunner")

JOB_POD_SELECTOR = "batch.kubernetes.io/job-name"
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
MESSAGE_LIMIT = 4096  # bytes of a termination message, as the kubelet keeps
SERVICE_URL = re.compile(
    r"(?P<scheme>https?)://(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r"\.svc(\.cluster\.local)?(:(?P<port>\d+))?"
)


class Unrunnable(Exception):
    """The pod asks for something the runner cannot do; the pod fails with this message."""


@dataclass
class Running:
    process: subprocess.Popen
    started: datetime
    message_file: Path
    container: dict[str, Any]


def _now() -> str:
    return format_time(datetime.now(UTC))


class JobRunner:
    """Runs Job pods as local processes until `stop()`; `start()` runs the loop in a thread."""

    def __init__(self, kubeconfig: Path | str | None = None, poll_seconds: float = 0.25) -> None:
        self._kubeconfig = str(kubeconfig) if kubeconfig else None
        self._poll = poll_seconds
        self._running: dict[str, Running] = {}  # pod uid -> its process
        self._done: set[str] = set()  # pod uids whose status was written
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobrunner", daemon=True)
        self._workdir = Path(tempfile.mkdtemp(prefix="modelrollout-jobs-"))
        self._client: KubeClient | None = None

    def start(self) -> JobRunner:
        self._client = KubeClient(k8s_client.ApiClient(load_configuration(self._kubeconfig)), timeout=10.0)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
        for running in self._running.values():
            with contextlib.suppress(OSError):
                running.process.kill()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> JobRunner:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.wait(self._poll):
            try:
                self._sync()
            except (KubeError, OSError) as error:
                log.warning("job runner: %s; trying again", error)

    def _sync(self) -> None:
        assert self._client is not None
        pods = {pod["metadata"]["uid"]: pod for pod in self._client.list(POD, None, JOB_POD_SELECTOR)}
        for uid in list(self._running):
            pod = pods.get(uid)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                self._running.pop(uid).process.kill()  # the Job's deadline, or the Job deleted
            elif self._running[uid].process.poll() is not None:
                self._finish(pod, self._running.pop(uid))
        for uid, pod in pods.items():
            phase = (pod.get("status") or {}).get("phase")
            if (
                uid in self._running
                or uid in self._done
                or phase != "Running"
                or pod["metadata"].get("deletionTimestamp")
            ):
                continue
            try:
                self._running[uid] = self._launch(pod)
            except Unrunnable as error:
                self._write(
                    pod, 128, f"the job runner cannot run this pod: {error}", _now(), pod["spec"]["containers"][0]
                )

    def _launch(self, pod: dict[str, Any]) -> Running:
        container = pod["spec"]["containers"][0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not container.get("command"):
            raise Unrunnable("the container has no command; the runner runs command + args, not an image's entrypoint")
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
        for item in container.get("env") or []:
            if "value" not in item:
                raise Unrunnable(f"env {item.get('name')} is not a literal value")
            env[item["name"]] = self._routed(str(item["value"]))
        message_file = self._workdir / f"{pod['metadata']['uid']}.termination-log"
        env["TERMINATION_MESSAGE_PATH"] = str(message_file)
        argv = [self._routed(arg) for arg in argv]
        log_file = (self._workdir / f"{pod['metadata']['name']}.log").open("wb")
        process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=self._workdir)
        log_file.close()
        return Running(process, datetime.now(UTC), message_file, container)

    def _routed(self, text: str) -> str:
        """Service URLs as cluster DNS and kube-proxy would route them: to a ready endpoint."""
        return SERVICE_URL.sub(self._endpoint, text)

    def _endpoint(self, match: re.Match[str]) -> str:
        assert self._client is not None
        name, namespace = match["service"], match["namespace"]
        service = self._client.get(SERVICE, namespace, name)
        if service is None:
            raise Unrunnable(f"Service {namespace}/{name} does not exist")
        wanted = int(match["port"] or (443 if match["scheme"] == "https" else 80))
        port = next((p for p in service["spec"].get("ports") or [] if p.get("port") == wanted), None)
        if port is None:
            raise Unrunnable(f"Service {namespace}/{name} has no port {wanted}")
        slices = self._client.list(ENDPOINT_SLICE, namespace, f"kubernetes.io/service-name={name}")
        for piece in slices:
            target = next((p["port"] for p in piece.get("ports") or [] if p.get("name") == port.get("name")), None)
            for endpoint in piece.get("endpoints") or []:
                if target is not None and (endpoint.get("conditions") or {}).get("ready") and endpoint.get("addresses"):
                    return f"{match['scheme']}://{endpoint['addresses'][0]}:{target}"
        raise Unrunnable(f"Service {namespace}/{name} has no ready endpoint")

    def _finish(self, pod: dict[str, Any], running: Running) -> None:
        message = ""
        if running.message_file.is_file():
            message = running.message_file.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
        self._write(pod, running.process.returncode, message, format_time(running.started), running.container)

    def _write(self, pod: dict[str, Any], code: int, message: str, started: str, container: dict[str, Any]) -> None:
        assert self._client is not None
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": _now(),
        }
        if message:
            terminated["message"] = message
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"terminated": terminated},
                }
            ],
        }
        metadata = pod["metadata"]
        try:
            self._client.patch_status(POD, metadata["namespace"], metadata["name"], status)
        except KubeError as error:
            if not error.not_found:
                raise
        self._done.add(metadata["uid"])
