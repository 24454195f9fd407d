"""Smoke test of ``python -m benchmarks.compare --quick``: it runs and prints every row.

No timing assertions: the numbers depend on the machine. DBOS runs when it is importable (the
``bench`` extra); otherwise its part is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("a", "b", "c", "c1", "d", "e", "f", "g")
HAS_DBOS = importlib.util.find_spec("dbos") is not None
NO_DBOS = "dbos is not installed (pip install -e '.[bench]'); only nbflow was benchmarked"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Run the quick benchmark once for the module: its stdout and its JSON."""
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    systems = "nbflow,dbos" if HAS_DBOS else "nbflow"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--systems", systems, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout, json.loads(out.read_text())


def _rows(stdout: str) -> dict[str, list[list[str]]]:
    """The table's rows by workload letter (first column), as lists of cells."""
    rows: dict[str, list[list[str]]] = {}
    for line in stdout.splitlines():
        if line.startswith("| ") and not line.startswith("|  |"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows.setdefault(cells[0], []).append(cells)
    return rows


def test_quick_table_has_every_workload(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, raw = quick_run
    assert "Python 3." in stdout and "duckdb" in stdout  # the machine is described
    rows = _rows(stdout)
    assert set(WORKLOADS) <= set(rows), f"missing rows: {set(WORKLOADS) - set(rows)}\n{stdout}"
    for metric in raw["metrics"].values():
        value = metric["median"]["nbflow"]
        assert isinstance(value, float) and value >= 0, metric
    for cells_list in rows.values():
        for cells in cells_list:
            assert cells[-1] in {"✓", "✗", "—"}, cells


def test_quick_dbos_column(quick_run: tuple[str, dict[str, Any]]) -> None:
    if not HAS_DBOS:
        pytest.skip(NO_DBOS)
    stdout, raw = quick_run
    assert "DBOS" in stdout
    for key, metric in raw["metrics"].items():
        if key == "f":
            continue  # nbflow only
        value = metric["median"]["dbos"]
        assert isinstance(value, float) and value > 0, (key, metric)


def test_profile_runs() -> None:
    if importlib.util.find_spec("pyinstrument") is None:
        pytest.skip("pyinstrument is not installed (pip install -e '.[bench]')")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--profile", "b"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nbflow-committer" in proc.stdout and "nbflow-workflow" in proc.stdout


def test_floors_runs() -> None:
    """The DuckDB floor measurements run and print every row (tiny sizes; no timing checks)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.floors", "--items", "20", "--rounds", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("c-floor", "d-floor", "part: its commit"):
        assert row in proc.stdout, proc.stdout
