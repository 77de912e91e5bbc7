"""The `modelrollout` command: run the operator, or manage the local control plane."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path


def _run_operator(args: argparse.Namespace) -> int:
    import kopf

    from modelrollout import logs
    from modelrollout.controller.notify import operator_receivers
    from modelrollout.controller.peering import own_identity

    try:
        import modelrollout.handlers  # noqa: F401 - registers the handlers; reads the numeric settings

        operator_receivers(os.environ)  # a setting the operator cannot use is refused before it starts
    except ValueError as error:
        print(f"modelrollout run: {error}; fix the operator's environment and start it again", file=sys.stderr)
        return 2
    logs.configure(args.verbose, args.log_format == "json")
    # Peering (standalone or active/standby) is configured by the startup handler from the environment;
    # kopf gets the identity the handler will look for in the peering object.
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        identity=own_identity(),
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(served_namespaces=tuple(args.namespace or ())),
    )
    return 0


def _dev_cluster(args: argparse.Namespace) -> int:
    from modelrollout.devcluster import state

    directory = Path(args.dir) if args.dir else None
    if args.action == "build":
        from modelrollout.devcluster.prepare import PreparationFailed, prepare_all

        try:
            for part in prepare_all(say=lambda line: print(line, flush=True)):
                print(part.line(), flush=True)
        except PreparationFailed as error:
            print(f"modelrollout dev-cluster build: {error}", file=sys.stderr)
            print("Run it again once the cause is fixed: parts already built stay cached.", file=sys.stderr)
            return 1
    elif args.action == "up":
        print(state.up(directory))
    elif args.action == "down":
        print(state.report(state.down(directory), directory))
    elif args.action == "kubeconfig":
        path = (directory or state.default_dir()) / "kubeconfig"
        if not path.exists():
            print("no local control plane is running; start one with: modelrollout dev-cluster up", file=sys.stderr)
            return 1
        print(path)
    return 0


def _private_network(args: argparse.Namespace) -> int:
    from modelrollout.devcluster import netns

    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    try:
        netns.exec_in_private_network(command)  # returns only on failure
    except (netns.PrivateNetworkUnavailable, ValueError) as error:
        print(f"modelrollout private-network: {error}", file=sys.stderr)
    return 2


def _demo(args: argparse.Namespace) -> int:
    from modelrollout import demo

    return demo.run(keep=args.keep, simulator=args.simulator)


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml's), or what to do when it is not installed."""
    try:
        return metadata.version("modelrollout")
    except metadata.PackageNotFoundError:
        return "(not installed: pip install . to get the version and the console scripts)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="modelrollout", description="Roll out new versions of ML models safely.")
    root.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (in a pod, or against the current kubeconfig)")
    run.add_argument("--namespace", "-n", action="append", help="watch only these namespaces (repeatable); default all")
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--verbose", "-v", action="store_true")
    run.add_argument("--log-format", choices=["text", "json"], default="text", help="json: one object per line")
    run.set_defaults(handler=_run_operator)

    dev = commands.add_parser("dev-cluster", help="a real Kubernetes control plane on loopback (etcd, apiserver, kwok)")
    dev.add_argument("action", choices=["build", "up", "down", "kubeconfig"])
    dev.add_argument("--dir", help="state directory (default ~/.cache/modelrollout/dev-cluster)")
    dev.set_defaults(handler=_dev_cluster)

    private = commands.add_parser(
        "private-network",
        help="run a command in a private network namespace where kwok's pod IPs (10.244.0.0/16) are local",
        description=(
            "Runs COMMAND in its own network namespace (unshare -n as root, unshare -rn otherwise) with loopback up "
            "and 10.244.0.0/16 routed to it, so real model servers can listen on their pods' IPs and a real data "
            "plane can reach them. Nothing inside reaches the internet: build first (modelrollout dev-cluster build)."
        ),
    )
    private.add_argument("command_line", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    private.set_defaults(handler=_private_network)

    demo = commands.add_parser(
        "demo",
        help="a rollout story on real model servers behind Traefik: promoted, stopped in shadow, rolled back",
        description=(
            "Runs real scikit-learn models in MLServer (one process per pod) behind Traefik, sends them live requests "
            "and lets Prometheus and the operator decide: a good model is shadowed and promoted through canary steps "
            "with analysis, a model with shifted predictions is stopped in shadow, a failing hotfix is rolled back by "
            "its error-rate alert. Prints the operator's weights beside the split the clients measure, and a summary. "
            "Builds what is missing first (cached), then runs itself inside a private network namespace where kwok's "
            "pod IPs are local; everything listens on 127.0.0.1 or those IPs and is stopped at the end."
        ),
    )
    demo.add_argument("--keep", action="store_true", help="leave everything running at the end (Ctrl-C stops it)")
    demo.add_argument(
        "--simulator",
        action="store_true",
        help="tell the story on the traffic simulator (a stand-in for model servers, no network namespace needed)",
    )
    demo.set_defaults(handler=_demo)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
