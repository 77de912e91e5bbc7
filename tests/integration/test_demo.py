"""The main job: `modelrollout demo` tells its whole story and leaves nothing running."""

from __future__ import annotations

import subprocess
import sys

PATTERN = "modelrollout-cluster-|modelrollout-prometheus-|modelrollout.simulator.process|modelrollout.cli run"


def processes() -> set[str]:
    listing = subprocess.run(["pgrep", "-af", PATTERN], capture_output=True, text=True).stdout
    return {line for line in listing.splitlines() if line.strip()}


def test_demo_promotes_the_good_model_and_stops_the_bad_ones(control_plane):
    # The suite's control plane fixture has built the binaries; the demo starts its own cluster beside it.
    before = processes()
    result = subprocess.run(
        [sys.executable, "-m", "modelrollout.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "2026-11-27 (" in out and ") promoted in" in out
    assert "Healthy     stable 100% canary   0%" in out
    assert "stable  90% canary  10%" in out and "stable  50% canary  50%" in out
    assert "measured error-rate" in out and "measured latency-p99" in out
    assert "mirror 100%" in out and "measured prediction-distribution-shift" in out
    summary = out[out.index("Summary") :]
    assert "2026-12-01 (" in summary and "stopped in shadow" in summary and "AnalysisFailed" in summary
    hotfix = next(line for line in summary.splitlines() if "2026-12-04 (" in line)
    assert "rolled back after" in hotfix and "AlertFiring" in hotfix and "ModelErrorRateHigh" in hotfix
    assert "demo stopped: control plane, Prometheus, simulator and operator are gone." in out
    assert processes() - before == set()
