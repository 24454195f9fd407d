"""Smoke test of ``python -m benchmarks.compare --quick``: it runs and prints every row.

No timing assertions: the numbers depend on the machine. DBOS runs when it is importable (the
``bench`` extra); otherwise its part is skipped with the reason. The ``--store postgres`` run uses
the session's throwaway PostgreSQL server (``--pg-url``), and is skipped where there is none.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.pgserver import PostgresServer
from tests.support.processes import ROOT

WORKLOADS = ("a", "b", "c", "c1", "d", "e", "f", "g", "h", "h1", "i", "r")
PG_WORKLOADS = (*WORKLOADS, "x", "x1")
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


def test_quick_table_has_no_cross_process_rows_on_duckdb(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    stdout, raw = quick_run
    assert "x" not in _rows(stdout) and "x1" not in _rows(stdout)
    assert "PostgreSQL" not in stdout
    assert not raw["skipped"]


@pytest.mark.postgres
def test_quick_postgres(pg_server: PostgresServer, tmp_path: Path) -> None:
    """``--store postgres --pg-url``: every row of nbflow, the cross-process ones included, and
    the server described in the header; the databases it made are gone afterwards. (DBOS's side
    is the quick table's, on its own store: here it would only add its start-up time.)"""
    import psycopg

    def databases() -> set[str]:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}

    before = databases()
    out = tmp_path / "quick-pg.json"
    systems = "nbflow"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--pg-url", pg_server.url, "--systems", systems, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    stdout, raw = proc.stdout, json.loads(out.read_text())
    assert "on PostgreSQL" in stdout and "fsync" in stdout and "given by --pg-url" in stdout
    rows = _rows(stdout)
    assert set(PG_WORKLOADS) <= set(rows), (
        f"missing rows: {set(PG_WORKLOADS) - set(rows)}\n{stdout}"
    )
    assert raw["store"]["store"] == "postgres" and raw["store"]["server_version"]
    for key, metric in raw["metrics"].items():
        for system in systems.split(","):
            if system == "dbos" and key == "f":
                continue  # nbflow only
            value = metric["median"][system]
            assert isinstance(value, float) and value > 0, (key, system, metric)
    assert databases() == before, "the benchmark left databases behind"


def test_cross_process_workload_skipped_on_duckdb(tmp_path: Path) -> None:
    """``--only x`` on DuckDB runs nothing and says why."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--only", "x", "--systems", "nbflow"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not applicable on DuckDB" in proc.stdout
    assert "x" not in _rows(proc.stdout)


def test_workload_unavailable_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A system that cannot run a workload (here: nbflow without ``nbflow.map``) shows n/a and
    the reason, and the run has no errors."""
    import nbflow
    from benchmarks import compare
    from benchmarks._workloads import QUICK

    monkeypatch.delattr(nbflow, "map", raising=False)
    results = compare.run(QUICK, 1, ["nbflow"], ["h"])
    assert not results.errors and not results.values
    assert results.unavailable == {"h": {"nbflow": "nbflow.map not available"}}
    row = _rows(compare.format_table(results))["h"][0]
    assert row[3] == "n/a" and row[-1] == "—", row
    assert "h / nbflow: n/a, nbflow.map not available." in compare.format_unavailable(results)


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


def test_restore_runs() -> None:
    """The durable-cell restore benchmark runs on a small table and prints a row per record count
    (no timing checks): the cell was restored each time, not run again."""
    pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[notebook]')")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.restore", "--rows", "2000", "--runs", "1,2", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(proc.stdout)
    assert set(rows) >= {"1", "2"}, proc.stdout
    assert proc.stdout.count("nbflow: step 'build' restored in ") == 2, proc.stdout


def test_load_runs() -> None:
    """The load benchmark (memory while writing, workflows started at once) runs on small sizes
    and prints its three rows (no timing checks)."""
    argv = ["--megabytes", "5", "--serial", "20", "--at-once", "50"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in (
        "write      5 MB as 500 items of 10 KB",
        "serial     20 workflows",
        "at once    50",
    ):
        assert row in proc.stdout, proc.stdout


def test_values_runs() -> None:
    """The values benchmark runs on a small frame and prints a row per path and format."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.values", "--sizes", "2", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=ROOT,
    )
    rows = [line for line in proc.stdout.splitlines() if line.strip().startswith("2 MB")]
    assert len(rows) == 4 and "failed" not in proc.stdout, proc.stdout
