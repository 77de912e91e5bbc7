"""`modelrollout demo`: a rollout story on real parts, on this machine, with nothing left running after.

The story is in `story.py` and the live view in `follow.py`; this module gets the stage ready. Real model
servers listen on kwok's pod IPs, which are local only in a private network namespace (`devcluster.netns`)
where nothing can be downloaded: so everything is built or installed first, out here, and then this command
runs itself again inside one. Where no namespace can be made, it says so and points at `--simulator`, the
same story on the traffic simulator (`simulated.py`).

Every process the demo starts is stopped on success, on failure and on Ctrl-C (or SIGTERM); a failure
prints what did not happen and the failing component's own log, not a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback

from modelrollout.devcluster import netns

STARTED_AT = "MODELROLLOUT_DEMO_STARTED_AT"  # wall-clock start, carried into the private network


def run(keep: bool = False, simulator: bool = False) -> int:
    if simulator:
        from modelrollout.demo import simulated

        return simulated.run(keep=keep)
    if STARTED_AT not in os.environ:  # not yet run itself again inside the private network
        os.environ[STARTED_AT] = str(time.time())
        if not _prepare():
            return 1
    if not netns.pod_ips_bindable():
        return _enter_private_network(keep)
    return _run_real(keep)


def _prepare() -> bool:
    from modelrollout.devcluster.realstack import prepare

    print("modelrollout demo: real scikit-learn models in MLServer behind Traefik, live requests, Prometheus")
    print(
        "  building or reusing the control plane, Traefik, Prometheus, MLServer and the demo models"
        " (cached; the first run builds them from upstream: 20-30 minutes)",
        flush=True,
    )
    try:
        prepare()
    except Exception as error:  # noqa: BLE001 - shown to a person, with what to do
        print(f"modelrollout demo: preparing the real stack failed: {error}", file=sys.stderr)
        return False
    return True


def _enter_private_network(keep: bool) -> int:
    try:
        netns.check_available()
    except netns.PrivateNetworkUnavailable as error:
        print(
            f"modelrollout demo: {error}\n"
            "The same story runs on a traffic simulator instead of real servers: modelrollout demo --simulator",
            file=sys.stderr,
        )
        return 2
    print("  entering a private network namespace: kwok's pod IPs (10.244.0.0/16) become local, nothing leaves it")
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "modelrollout.cli", "demo", *(["--keep"] if keep else [])]
    try:
        netns.exec_in_private_network(command)  # returns only on failure
    except netns.PrivateNetworkUnavailable as error:
        print(f"modelrollout demo: {error}", file=sys.stderr)
    return 2


def _interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_real(keep: bool) -> int:
    from modelrollout.demo import story
    from modelrollout.devcluster.realstack import real_stack

    signal.signal(signal.SIGTERM, _interrupt)  # stop everything as on Ctrl-C
    started_at = float(os.environ.get(STARTED_AT, time.time()))
    print("  starting the control plane, Traefik, the model-server harness, Prometheus and the operator…", flush=True)
    code = 1
    try:
        with real_stack([story.demo_alert()], story.NAMESPACE) as stack:
            print(
                f"  control plane {stack.cluster.server}, Traefik {stack.traefik.web_url} (Host {story.HOST}),"
                f" Prometheus {stack.prometheus.url}\n  kubeconfig: {stack.cluster.kubeconfig}"
                f"\n  up in {time.time() - started_at:.0f}s; times below count from here\n",
                flush=True,
            )
            code = _tell(stack, keep)
    except KeyboardInterrupt:
        print("\ninterrupted while starting: stopped everything", file=sys.stderr)
        code = 130
    except (RuntimeError, TimeoutError, OSError, subprocess.CalledProcessError) as error:
        print(f"\ndemo failed while starting the stack: {_describe(error)}", file=sys.stderr)
    finally:
        print(
            "demo stopped: control plane, Traefik, model servers, Prometheus and operator are gone"
            f" (wall time {_minutes(time.time() - started_at)}).",
            flush=True,
        )
    return code


def _tell(stack, keep: bool) -> int:
    """The story on a running stack; the exit code. Failures keep the stack's logs and show the right ones."""
    from modelrollout.demo import story
    from modelrollout.demo.follow import DemoFailed
    from modelrollout.devcluster.realstack import stack_logs_hint

    told = False
    try:
        summary = story.tell(stack, time.monotonic())
        told = True
        print("\nSummary")
        for line in summary:
            print(f"  - {line}")
        print(
            "\nWhat Git would show: the ModelDeployment asks for 2026-12-04; the cluster serves 2026-11-27 and the"
            "\nobject is Degraded (Stalled=True) until Git is changed back or `kubectl modelrollout retry` is run.",
            flush=True,
        )
        if keep:
            print(
                "\n--keep: the stack stays up (the clients have stopped);"
                f" export KUBECONFIG={stack.cluster.kubeconfig}; Ctrl-C stops everything.",
                flush=True,
            )
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        if not told:
            print("\ninterrupted: stopping everything…", file=sys.stderr, flush=True)
        return 0 if told else 130
    except DemoFailed as failure:
        stack.cluster.remove_workdir = False  # keep every log for whoever reads the failure
        _print_failure(str(failure), failure.logs, stack_logs_hint(stack))
        return 1
    except Exception as error:  # noqa: BLE001 - a bug of the demo: one line here, the traceback in a file
        stack.cluster.remove_workdir = False
        trace = stack.cluster.workdir / "logs" / "demo-traceback.txt"
        trace.write_text(traceback.format_exc())
        message = f"{_describe(error)} (traceback in {trace})"
        _print_failure(message, [("operator", stack.operator_log)], stack_logs_hint(stack))
        return 1


def _describe(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return f"{' '.join(map(str, error.cmd[:3]))}… exited with {error.returncode}: {(error.stderr or '').strip()}"
    return f"{type(error).__name__}: {error}" if not isinstance(error, (RuntimeError, TimeoutError)) else str(error)


def _print_failure(message: str, logs: list, hint: str) -> None:
    from modelrollout.devcluster.realstack import log_tail

    print(f"\ndemo failed: {message}", file=sys.stderr)
    for name, path in logs:
        print(f"\n{name} log ({path}), last lines:\n{log_tail(path)}", file=sys.stderr)
    print(f"\n{hint}", file=sys.stderr, flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:02.0f}s"
