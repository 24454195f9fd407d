"""Smoke test of ``python -m benchmarks.history``: it runs on a small history and prints every
row. No timing assertions: the numbers depend on the machine."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_history_benchmark_runs() -> None:
    argv = ["--workflows", "2000", "--steps", "2", "--runs", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.history", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    labels = [row.split("|")[1].strip() for row in rows[1:]]
    assert labels[0] == "list_workflows()" and labels[-1] == "step_stats()", proc.stdout
    assert len(labels) == 7 and "list_workflows(offset=1,000)" in labels, proc.stdout
