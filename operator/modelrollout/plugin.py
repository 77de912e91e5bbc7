"""`kubectl modelrollout`: read a ModelDeployment's rollout state from the command line.

Manual actions (promote, abort, pause, ...) come with the canary rollout; this shows status and
lists ModelDeployments, reading only status so it works under read-only RBAC.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kubernetes import config as k8s_config

from modelrollout.kube.client import MODEL_DEPLOYMENT, KubeClient


def _default_namespace(kubeconfig: str | None) -> str:
    try:
        _, context = k8s_config.list_kube_config_contexts(kubeconfig or os.environ.get("KUBECONFIG") or None)
        return context.get("context", {}).get("namespace") or "default"
    except (k8s_config.ConfigException, FileNotFoundError, TypeError):
        return "default"


def format_status(body: dict[str, Any]) -> str:
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    model = spec.get("model") or {}
    weights = status.get("weights") or {}
    lines = [
        f"Name:        {body['metadata']['name']}",
        f"Namespace:   {body['metadata']['namespace']}",
        f"Model:       {model.get('name', '')} {model.get('version', '')}",
        f"Phase:       {status.get('phase', 'Unknown')}",
        f"Message:     {status.get('message', '')}",
        f"Stable:      {status.get('stableRevision', '')}",
        f"Canary:      {status.get('canaryRevision', '') or '-'}",
        "Weights:     "
        f"stable {weights.get('stable', 0)}%  canary {weights.get('canary', 0)}%  mirror {weights.get('mirror', 0)}%",
        f"Replicas:    {status.get('readyReplicas', 0)}/{spec.get('replicas', 0)} ready",
        "Conditions:",
    ]
    for condition in status.get("conditions", []):
        lines.append(f"  {condition['type']:<12} {condition['status']:<6} {condition.get('reason', '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    root = argparse.ArgumentParser(prog="kubectl modelrollout", description="Inspect ModelDeployment rollouts.")
    root.add_argument("--namespace", "-n")
    root.add_argument("--kubeconfig")
    commands = root.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="show one ModelDeployment's rollout")
    status.add_argument("name")
    listing = commands.add_parser("list", help="list ModelDeployments")
    listing.add_argument("--all-namespaces", "-A", action="store_true")
    args = root.parse_args(argv)

    kube = KubeClient.from_environment(args.kubeconfig)
    namespace = args.namespace or _default_namespace(args.kubeconfig)
    if args.command == "status":
        body = kube.get(MODEL_DEPLOYMENT, namespace, args.name)
        if body is None:
            print(f'Error: modeldeployment "{args.name}" not found in namespace "{namespace}"', file=sys.stderr)
            return 1
        print(format_status(body))
    else:
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


if __name__ == "__main__":
    sys.exit(main())
