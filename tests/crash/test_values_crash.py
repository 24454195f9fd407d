"""Crash test of values stored as Arrow: a child process makes a DataFrame as a step result (small,
or over 8 MB: in a file beside a DuckDB file), is killed with SIGKILL once the step is durable; the
next process resumes the workflow without making the frame again, and it comes back with the same
dtypes (tests/apps/valuesapp.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

import nbflow
from tests.apps import valuesapp as app
from tests.support.helpers import wait_until
from tests.support.processes import ReadyChild, is_postgres

pytestmark = pytest.mark.crash

APP = Path(app.__file__).resolve()
STORES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "values.duckdb")


@pytest.mark.parametrize("rows", [1_000, 800_000], ids=["small", "large"])
def test_a_frame_survives_kill_9(place: str, rows: int, tmp_path: Path) -> None:
    workflow_id = f"values-{uuid.uuid4().hex[:8]}"
    args = [place, workflow_id, str(rows), str(tmp_path)]
    first = ReadyChild(APP, [*args, "run"], tmp_path, "valuesapp")
    try:
        first.go()
        wait_until(lambda: (tmp_path / "durable").exists(), timeout=120)
    finally:
        first.kill()
    assert first.proc.returncode == -9
    if rows > 700_000 and not is_postgres(place):
        assert len(list(Path(place + ".values").glob("*/*.bin"))) == 1
    (tmp_path / "release").write_text("yes")
    second = ReadyChild(APP, [*args, "recover"], tmp_path, "valuesapp")
    second.go()
    assert second.summary()["rows"] == rows
    made = (tmp_path / "made").read_text().splitlines()
    assert made == [f"made pid={first.pid}"]  # never made again: its checkpoint was durable
    expected = app.frame(rows)
    with nbflow.Runtime(place, allow_pickle=False) as rt:
        for got in (rt.read_value(workflow_id, 1), rt.get_workflow(workflow_id).result()):
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            assert got.dtypes.to_dict() == expected.dtypes.to_dict()
