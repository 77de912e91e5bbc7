"""Shared pytest set-up: timing figures printed at the end of the run (never asserted)."""

from __future__ import annotations

FIGURES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("modelrollout figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
