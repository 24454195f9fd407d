"""Smoke test of ``python -m benchmarks.timeline --quick``: it runs and prints its row.

No timing assertions: the numbers depend on the machine.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_timeline_benchmark_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.timeline", "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    head, row = proc.stdout.splitlines()
    assert head.split()[:2] == ["map", "items"] and "total" in head, proc.stdout
    assert row.split()[:2] == ["100", "1,100"], proc.stdout
