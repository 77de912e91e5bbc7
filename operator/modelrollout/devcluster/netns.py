"""A private network where kwok's pod IPs are real: `modelrollout private-network -- COMMAND`.

kwok hands pods addresses from 10.244.0.0/16 that no host owns, and the controller-manager refuses
loopback addresses in EndpointSlices. Inside a network namespace of our own, with that range routed to
loopback, every pod IP is bindable on this host: a real model server listens on its pod's address and a
real data plane reaches it through the EndpointSlice, exactly as in a cluster. Nothing leaves the
namespace, so the machine's own network is never touched.

Rules:
- Root gets `unshare -n`, anyone else `unshare -rn` (a user namespace maps them to root inside).
- `unshare` and the command are exec'd, not forked: signals and the exit status pass straight through.
- Nothing inside can reach the internet: everything is built and downloaded before entering.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys

POD_CIDR = "10.244.0.0/16"
PROBE_ADDRESS = "10.244.255.254"  # any address of the range; kwok counts up from .1
MARKER = "MODELROLLOUT_PRIVATE_NETWORK"


class PrivateNetworkUnavailable(RuntimeError):
    """This machine cannot give us a network namespace; the message says why and what to do."""


def pod_ips_bindable() -> bool:
    """True when an address of the pod range can be bound here (inside the private network)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((PROBE_ADDRESS, 0))
        except OSError as error:
            if error.errno in (errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM):
                return False
            raise
    return True


def unshare_command() -> list[str]:
    """The `unshare` invocation for this user: root needs no user namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise PrivateNetworkUnavailable(
            "`unshare` is not installed; install util-linux (apt-get install util-linux) to run the local stack "
            "with real pod IPs"
        )
    return [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-rn"]


def check_available() -> None:
    """Fail early, with what to do, when a network namespace cannot be made (e.g. user namespaces off)."""
    result = subprocess.run([*unshare_command(), "true"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PrivateNetworkUnavailable(
            f"cannot create a private network namespace ({' '.join(unshare_command())} failed: "
            f"{result.stderr.strip() or f'exit {result.returncode}'}). Run as root, or allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0). Without it the "
            "real data plane and model servers cannot run; the traffic simulator still can."
        )


def route_pod_range_to_loopback() -> None:
    """Inside the fresh namespace: bring loopback up and make every pod IP local."""
    ip = shutil.which("ip")
    if ip is None:
        raise PrivateNetworkUnavailable("`ip` is not installed; install iproute2 (apt-get install iproute2)")
    for args in (["link", "set", "lo", "up"], ["route", "add", "local", POD_CIDR, "dev", "lo"]):
        result = subprocess.run([ip, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PrivateNetworkUnavailable(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def exec_in_private_network(command: list[str]) -> None:
    """Replace this process by `command` running in a private network (already inside: run it as is)."""
    if not command:
        raise ValueError("no command given: modelrollout private-network -- COMMAND [ARGS...]")
    if os.environ.get(MARKER) == "1" and pod_ips_bindable():
        _exec(command)
    check_available()
    inner = [sys.executable, "-m", "modelrollout.devcluster.netns", "--", *command]
    os.execv(unshare_command()[0], [*unshare_command(), *inner])


def _enter(command: list[str]) -> None:
    """Second half of `exec_in_private_network`, run by unshare inside the new namespace."""
    route_pod_range_to_loopback()
    os.environ[MARKER] = "1"
    _exec(command)


def _exec(command: list[str]) -> None:
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        raise PrivateNetworkUnavailable(f"command not found: {command[0]}") from None


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    try:
        _enter(arguments)
    except PrivateNetworkUnavailable as error:
        print(f"modelrollout private-network: {error}", file=sys.stderr)
        sys.exit(2)
