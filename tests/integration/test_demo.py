"""The main job: `modelrollout demo` tells its whole story on real parts and leaves nothing running.

The demo runs as its own process with a marker in its environment, which every process it starts inherits
(etcd, kube-*, kwok, Traefik, the model-server harness and its MLServers, Prometheus, the operator): afterwards
no process may carry it. A name pattern would also match other runs' processes on the same machine (another
test session's Traefik, say); the marker matches only the demo's own.

The clients' lines are checked against the operator's weights printed just before them: the stable model
never fails, so its share of the answers must be within SIGMAS binomial standard deviations of the stable
weight, and, where no 5xx came back, the canary's share within as much of the canary weight.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

SIGMAS = 4.0
OPERATOR = re.compile(r"\]\s+(\w+)\s+operator\s+stable\s+(\d+)%\s+canary\s+(\d+)%")
CLIENTS = re.compile(
    r"clients\s+stable\s+([\d.]+)%\s+canary\s+([\d.]+)%\s+5xx\s+([\d.]+)%\s+\((?:all|last) \d+s at this split, "
    r"(\d+) answers"
)


def marked(marker: str) -> list[str]:
    """Command lines of every process whose environment holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def tolerance(share: float, answers: int) -> float:
    """SIGMAS binomial standard deviations, plus the printed rounding (0.05 points)."""
    return SIGMAS * math.sqrt(share * (1 - share) / answers) + 0.0005


def checked_splits(out: str) -> list[tuple[int, int, float, float, float, int]]:
    """(stable weight, canary weight, stable share, canary share, 5xx share, answers) of every clients' line,
    asserting each is within tolerance of the operator's weights printed before it."""
    weights, checked = None, []
    for line in out.splitlines():
        if found := OPERATOR.search(line):
            weights = (int(found[2]), int(found[3]))
        elif found := CLIENTS.search(line):
            assert weights is not None, line
            stable, canary, errors = (float(found[i]) / 100 for i in (1, 2, 3))
            answers = int(found[4])
            assert answers >= 40, line
            expected = weights[0] / 100
            assert abs(stable - expected) <= tolerance(expected, answers), (weights, line)
            if errors == 0:
                expected = weights[1] / 100
                assert abs(canary - expected) <= tolerance(expected, answers), (weights, line)
            checked.append((*weights, stable, canary, errors, answers))
    return checked


def test_demo_promotes_the_good_model_and_stops_the_bad_ones(control_plane, private_network):
    # The suite's fixtures have built the binaries and checked pod IPs are bindable; the demo starts its own stack.
    marker = f"MODELROLLOUT_DEMO_TEST={uuid.uuid4().hex}"
    env = dict(os.environ, **dict([marker.split("=", 1)]))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "modelrollout.cli", "demo"], capture_output=True, text=True, timeout=900, env=env
        )
    finally:
        left = marked(marker)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert not left, f"still running after the demo: {left}"

    splits = checked_splits(out)
    seen = {(stable, canary) for stable, canary, *_ in splits}
    assert {(100, 0), (90, 10), (50, 50)} <= seen, seen
    assert all(errors == 0 for stable, canary, _, _, errors, _ in splits if canary in (0, 50)), splits
    assert "mirror 100% to the shadow" in out and "the shadow's servers counted" in out
    assert "measured prediction-distribution-shift" in out
    assert "measured error-rate" in out and "measured latency-p99" in out

    summary = out[out.index("\nSummary") :]
    assert re.search(r"2026-11-27 \(\w+\) promoted in \d+s", summary)
    shifted = next(line for line in summary.splitlines() if "2026-12-01 (" in line)
    assert "stopped in shadow" in shifted and "answered 0 live requests" in shifted and "AnalysisFailed" in shifted
    assert "prediction-distribution-shift" in shifted
    hotfix = next(line for line in summary.splitlines() if "2026-12-04 (" in line)
    assert "rolled back after" in hotfix and "AlertFiring" in hotfix and "MLServerErrorRateHigh" in hotfix
    # The alert fired on real 5xx answers to the clients' requests: they got at least one.
    assert int(re.search(r"clients got (\d+) 5xx answers", hotfix)[1]) >= 1
    assert "2026-12-01: 0," in summary  # the shifted model never answered a client
    assert "demo stopped: control plane, Traefik, model servers, Prometheus and operator are gone" in out


def test_the_simulator_fallback_tells_the_same_story(control_plane):
    # For machines without network namespaces: no real servers, so no clients' lines; the decisions are the same.
    marker = f"MODELROLLOUT_DEMO_TEST={uuid.uuid4().hex}"
    env = dict(os.environ, **dict([marker.split("=", 1)]))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "modelrollout.cli", "demo", "--simulator"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
    finally:
        left = marked(marker)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert not left, f"still running after the demo: {left}"
    summary = result.stdout[result.stdout.index("\nSummary") :]
    assert re.search(r"2026-11-27 \(\w+\) promoted in \d+s", summary)
    assert "stopped in shadow" in summary and "AnalysisFailed" in summary
    hotfix = next(line for line in summary.splitlines() if "2026-12-04 (" in line)
    assert "rolled back after" in hotfix and "AlertFiring" in hotfix and "ModelErrorRateHigh" in hotfix
