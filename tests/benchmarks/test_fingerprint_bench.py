"""Smoke test of ``python -m benchmarks.fingerprint``: it runs on few rounds and prints every row.

No timing assertions: the numbers depend on the machine.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_fingerprint_benchmark_runs() -> None:
    argv = ["--rounds", "20", "--cold-rounds", "3"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.fingerprint", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "`analyze` and 20 helpers" in proc.stdout, proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip().split(":")[0] for row in rows[1:]] == [
        "first in the process (reads package metadata)",
        "cold",
        "warm",
    ], proc.stdout
    assert "≤ 1 ms" in rows[-1], proc.stdout
