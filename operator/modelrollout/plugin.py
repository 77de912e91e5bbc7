"""`kubectl modelrollout`: watch rollouts and act on them by hand, GitOps-safe.

Rules:
- Actions (promote, abort, retry, pause, resume, undo) are written as `status.request` on the
  status subresource, never into `spec`: Git owns the spec and would revert them; status is not
  compared by Argo CD or Flux. RBAC can grant `modeldeployments/status` patch alone to people who
  may drive rollouts but not edit them.
- Who asked is taken from the apiserver (SelfSubjectReview), not typed by hand.
- The write carries the resourceVersion it read, and a pending request is never overwritten.
- The command waits for the operator's answer (`status.lastRequest`) and exits non-zero when the
  action was rejected or not answered in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import config as k8s_config

from modelrollout.core import labels
from modelrollout.core.cohorts import parse_affinity
from modelrollout.core.enums import Phase, RequestAction, Stage
from modelrollout.core.headerroutes import load_routes
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, KubeClient, KubeError

COMMANDS = {
    RequestAction.PROMOTE: "finish the current step (or all steps with --full)",
    RequestAction.ABORT: "send all traffic back to stable and scale the canary down",
    RequestAction.RETRY: "roll the aborted revision out again from the first step",
    RequestAction.RETRY_ANALYSIS: "run an inconclusive analysis again from its first measurement",
    RequestAction.PAUSE: "hold the rollout at its current step",
    RequestAction.RESUME: "continue a rollout paused by a person",
    RequestAction.UNDO: "go back to the previous revision at once, without steps",
}
FINAL_PHASES = (Phase.HEALTHY, Phase.DEGRADED)


def _default_namespace(kubeconfig: str | None) -> str:
    try:
        _, context = k8s_config.list_kube_config_contexts(kubeconfig or os.environ.get("KUBECONFIG") or None)
        return context.get("context", {}).get("namespace") or "default"
    except (k8s_config.ConfigException, FileNotFoundError, TypeError):
        return "default"


def whoami(kube: KubeClient) -> str:
    """The authenticated user name, as the apiserver sees it."""
    try:
        review = kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return review.get("status", {}).get("userInfo", {}).get("username") or "unknown"
    except KubeError:
        return "unknown"


def _available_of(deployment: dict[str, Any]) -> str:
    available = (deployment.get("status") or {}).get("availableReplicas", 0)
    return f"{available}/{deployment['spec'].get('replicas', 0)} available"


def pod_counts(status: dict[str, Any], deployments: list[dict[str, Any]]) -> str:
    """Each serving revision's pods, available of asked for, from its Deployment."""
    by_revision = {d["metadata"].get("labels", {}).get(labels.REVISION_LABEL, ""): d for d in deployments}
    shown = []
    for role in ("stable", "canary"):
        revision = status.get(f"{role}Revision") or ""
        deployment = by_revision.get(revision)
        if revision and deployment is not None:
            shown.append(f"{role} {_available_of(deployment)}")
    route = status.get("canaryRoute") or {}
    leaving = route.get("revision") or ""
    if leaving not in ("", status.get("stableRevision"), status.get("canaryRevision")) and leaving in by_revision:
        shown.append(
            f"draining {leaving} {_available_of(by_revision[leaving])} "
            f"(keeps {route.get('weight', 0)}% until the stable can carry it)"
        )
    scale = (status.get("intent") or {}).get("canaryScale")
    if scale and status.get("canaryRevision"):
        asked = f"{scale['replicas']} pods" if "replicas" in scale else f"{scale.get('weight')}% of replicas"
        shown.append(f"canary scaled to {asked} (setCanaryScale)")
    return ", ".join(shown)


def format_status(body: dict[str, Any], deployments: list[dict[str, Any]] | None = None) -> str:
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    model = spec.get("model") or {}
    weights = status.get("weights") or {}
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    lines = [
        f"Name:        {body['metadata']['name']}",
        f"Namespace:   {body['metadata']['namespace']}",
        f"Model:       {model.get('name', '')} {model.get('version', '')}",
        f"Phase:       {status.get('phase', 'Unknown')}",
        f"Message:     {status.get('message', '')}",
        f"Stable:      {status.get('stableRevision', '')}",
        f"Canary:      {status.get('canaryRevision', '') or '-'}",
    ]
    if status.get("stage"):
        lines.append(f"Stage:       {status['stage']} (automation {spec.get('automation', 'full')})")
    if status.get("canaryRevision") and steps and status.get("stage", Stage.CANARY) == Stage.CANARY:
        lines.append(f"Step:        {int(status.get('currentStepIndex', 0)) + 1}/{len(steps)}")
    if status.get("activeRevision") and status.get("activeRevision") != status.get("stableRevision"):
        lines.append(f"Active:      {status['activeRevision']} (switched; stable kept ready for a switch back)")
    for pause in status.get("pauseReasons") or []:
        if pause.get("gate"):
            lines.append(f"Waiting:     gate {pause['gate']}: approve with `kubectl modelrollout promote`")
    for hook in status.get("hooks") or []:
        step = f" step {hook['step'] + 1}" if hook.get("step") is not None else ""
        answer = f"HTTP {hook['code']}" if hook.get("code") is not None else "no answer"
        detail = f": {hook['message']}" if hook.get("message") else ""
        lines.append(
            f"Hook:        {hook.get('hook')} at {hook.get('point')}{step}: {hook.get('phase')}, {answer} in "
            f"{hook.get('latencySeconds', 0)}s after {hook.get('attempts')} attempt(s){detail}"
        )
    for approval in status.get("approvals") or []:
        lines.append(f"Approved:    {approval.get('gate')} by {approval.get('actor')} at {approval.get('time')}")
    lines += [
        "Weights:     "
        f"stable {weights.get('stable', 0)}%  canary {weights.get('canary', 0)}%  mirror {weights.get('mirror', 0)}%",
        f"Replicas:    {status.get('readyReplicas', 0)}/{spec.get('replicas', 0)} ready",
    ]
    if deployments:
        lines.append(f"Pods:        {pod_counts(status, deployments)}")
    canary = (spec.get("strategy") or {}).get("canary") or {}
    if canary.get("dynamicStableScale"):
        lines.append("Capacity:    dynamicStableScale (the stable runs the pods of its route share)")
    affinity = parse_affinity(canary.get("sessionAffinity"))
    if affinity is not None and status.get("canaryRevision"):
        lines.append(f"Cohorts:     {affinity.describe()} (while the canary has a weight)")
    for route in load_routes((status.get("intent") or {}).get("headerRoutes")):
        lines.append(f"Header route: {route.describe()} -> canary, whatever its weight")
    if status.get("abort"):
        abort = status["abort"]
        lines.append(f"Aborted:     {abort.get('revision')} ({abort.get('reason')}: {abort.get('message')})")
    if status.get("lastRequest"):
        last = status["lastRequest"]
        verdict = "accepted" if last.get("accepted") else "rejected"
        lines.append(f"Last action: {last.get('action')} by {last.get('actor')} {verdict}: {last.get('message')}")
    lines.append("Conditions:")
    for condition in status.get("conditions", []):
        lines.append(f"  {condition['type']:<12} {condition['status']:<6} {condition.get('reason', '')}")
    return "\n".join(lines)


def format_history(body: dict[str, Any], deployments: list[dict[str, Any]]) -> str:
    status = body.get("status") or {}
    lines = ["REVISION    MODEL-VERSION        REPLICAS  TRACK    CREATED"]
    for deployment in sorted(deployments, key=lambda d: d["metadata"].get("creationTimestamp", "")):
        metadata = deployment["metadata"]
        lines.append(
            f"{metadata['labels'].get(labels.REVISION_LABEL, ''):<11} "
            f"{metadata['labels'].get(labels.MODEL_VERSION_LABEL, ''):<20} "
            f"{deployment['spec'].get('replicas', 0):<9} {metadata['labels'].get(labels.TRACK_LABEL, ''):<8} "
            f"{metadata.get('creationTimestamp', '')}"
        )
    lines.append("")
    lines.append("TIME                  ACTION           REVISION    ACTOR        MESSAGE")
    for entry in status.get("history", []):
        lines.append(
            f"{entry.get('time', ''):<21} {entry.get('action', ''):<16} {entry.get('revision', ''):<11} "
            f"{entry.get('actor', '-'):<12} {entry.get('message', '')}"
        )
    return "\n".join(lines)


def request_action(
    kube: KubeClient,
    namespace: str,
    name: str,
    action: str,
    actor: str,
    revision: str = "",
    timeout: float = 30.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[bool, str]:
    """Write the request, then wait for the operator's answer. Returns (accepted, message)."""
    request_id = uuid.uuid4().hex[:16]
    request = {
        "action": action,
        "id": request_id,
        "actor": actor,
        "requestedAt": clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if revision:
        request["revision"] = revision
    for _ in range(5):
        body = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None:
            return False, f'modeldeployment "{name}" not found in namespace "{namespace}"'
        pending = (body.get("status") or {}).get("request")
        if pending:
            return False, (
                f"a {pending.get('action')} request by {pending.get('actor', 'someone')} is still pending "
                f"(since {pending.get('requestedAt', '?')}); is the operator running?"
            )
        try:
            kube.request(
                "PATCH",
                MODEL_DEPLOYMENT.path(namespace, name, "status"),
                body={
                    "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                    "status": {"request": request},
                },
                content_type="application/merge-patch+json",
            )
            break
        except KubeError as error:
            if not error.conflict:
                return False, f"could not record the request: {error.message}"
    else:
        return False, "could not record the request: the object kept changing"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = kube.get(MODEL_DEPLOYMENT, namespace, name) or {}
        last = (body.get("status") or {}).get("lastRequest") or {}
        if last.get("id") == request_id:
            return bool(last.get("accepted")), str(last.get("message", ""))
        time.sleep(0.5)
    return False, f"the {action} request is recorded, but the operator has not answered within {timeout:.0f}s"


def watch_status(kube: KubeClient, namespace: str, name: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        body = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None:
            print(f'Error: modeldeployment "{name}" not found', file=sys.stderr)
            return 1
        text = format_status(body)
        if text != shown:
            print(text + "\n", flush=True)
            shown = text
        status = body.get("status") or {}
        current = status.get("observedGeneration") == body["metadata"].get("generation")
        if current and status.get("phase") in FINAL_PHASES:
            return 0 if status["phase"] == Phase.HEALTHY else 1
        if time.monotonic() >= deadline:
            print(f"still {status.get('phase')} after {timeout:.0f}s", file=sys.stderr)
            return 2
        time.sleep(1.0)


def parser() -> argparse.ArgumentParser:
    # Like kubectl, -n/--kubeconfig may stand before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--namespace", "-n", default=argparse.SUPPRESS)
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    root = argparse.ArgumentParser(
        prog="kubectl modelrollout", description="Watch and drive ModelDeployment rollouts.", parents=[common]
    )
    commands = root.add_subparsers(dest="command", required=True)
    add_parser = commands.add_parser

    def add_command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return add_parser(name, parents=[common], **kwargs)

    commands.add_parser = add_command  # type: ignore[method-assign]
    status = commands.add_parser("status", help="show a rollout")
    status.add_argument("name")
    status.add_argument("--watch", "-w", action="store_true", help="follow until Healthy or Degraded")
    status.add_argument("--timeout", type=float, default=3600.0)
    status.add_argument("--output", "-o", choices=["text", "json"], default="text")
    listing = commands.add_parser("list", help="list ModelDeployments")
    listing.add_argument("--all-namespaces", "-A", action="store_true")
    history = commands.add_parser("history", help="revisions and recorded actions")
    history.add_argument("name")
    for action, text in COMMANDS.items():
        command = commands.add_parser(action, help=text)
        command.add_argument("name")
        command.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the operator")
        if action is RequestAction.PROMOTE:
            command.add_argument("--full", action="store_true", help="skip every remaining step")
        if action is RequestAction.UNDO:
            command.add_argument("--to-revision", default="", help="revision to go back to (see history)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    kubeconfig = getattr(args, "kubeconfig", None)
    try:
        kube = KubeClient.from_environment(kubeconfig)
    except (k8s_config.ConfigException, OSError) as error:
        print(f"Error: no usable kubeconfig: {error}", file=sys.stderr)
        return 1
    namespace = getattr(args, "namespace", None) or _default_namespace(kubeconfig)
    try:
        if args.command in COMMANDS:
            full = args.command == RequestAction.PROMOTE and args.full
            action = RequestAction.PROMOTE_FULL if full else RequestAction(args.command)
            accepted, message = request_action(
                kube, namespace, args.name, action, whoami(kube), getattr(args, "to_revision", ""), args.timeout
            )
            print(message, file=sys.stdout if accepted else sys.stderr)
            return 0 if accepted else 1
        if args.command == "list":
            items = kube.list(MODEL_DEPLOYMENT, None if args.all_namespaces else namespace)
            print(f"{'NAMESPACE':<20} {'NAME':<30} {'PHASE':<12} {'STABLE':<12} {'CANARY':<12} WEIGHT")
            for item in items:
                status = item.get("status") or {}
                print(
                    f"{item['metadata']['namespace']:<20} {item['metadata']['name']:<30} {status.get('phase', ''):<12} "
                    f"{status.get('stableRevision', ''):<12} {status.get('canaryRevision', '') or '-':<12} "
                    f"{(status.get('weights') or {}).get('canary', 0)}"
                )
            return 0
        body = kube.get(MODEL_DEPLOYMENT, namespace, args.name)
        if body is None:
            print(f'Error: modeldeployment "{args.name}" not found in namespace "{namespace}"', file=sys.stderr)
            return 1
        if args.command == "history":
            deployments = kube.list(DEPLOYMENT, namespace, f"{labels.DEPLOYMENT_LABEL}={args.name}")
            print(format_history(body, deployments))
            return 0
        if args.watch:
            return watch_status(kube, namespace, args.name, args.timeout)
        if args.output == "json":
            print(json.dumps(body.get("status") or {}, indent=2))
        else:
            print(format_status(body, kube.list(DEPLOYMENT, namespace, f"{labels.DEPLOYMENT_LABEL}={args.name}")))
        return 0
    finally:
        kube.close()


if __name__ == "__main__":
    sys.exit(main())
