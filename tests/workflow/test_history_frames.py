"""History as DataFrames, on both stores: ``Records.to_pandas/to_polars/to_arrow`` keep their
columns' types (UTC timestamps, statuses as strings), even empty; ``read_stream_frame`` reads a
stream's items now; a missing library names the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import nbflow
from nbflow import ConfigurationError
from tests.support.helpers import Gate

pytestmark = pytest.mark.contract

gates: list[Gate] = []


@nbflow.step(name="tests.frames.step")
def a_step(x: int) -> int:
    return x + 1


@nbflow.workflow(name="tests.frames.wf")
def wf(n: int) -> int:
    for i in range(n):
        nbflow.write_stream("rows", {"i": i, "name": f"r{i}", "score": i / 2})
        nbflow.write_stream("plain", a_step(i))
    if gates:
        nbflow.run_step(gates[0].wait)
    return n


UTC_US = pa.timestamp("us", tz="UTC")


def test_workflows_as_arrow_pandas_and_polars(rt: nbflow.Runtime) -> None:
    assert rt.start(wf, 2).result() == 2
    records = rt.list_workflows()
    table = records.to_arrow()
    assert table.num_rows == 1
    assert table.schema.field("created_at").type == UTC_US
    assert table.schema.field("ended_at").type == UTC_US
    assert table.schema.field("status").type == pa.string()
    assert table.schema.field("duration").type == pa.float64()
    frame = records.to_pandas()
    assert list(frame.columns) == [
        "workflow_id", "name", "status", "created_at", "ended_at", "duration", "error",
        "parent_id", "queue", "code", "recovery_attempts",
    ]  # fmt: skip
    assert frame["recovery_attempts"].tolist() == [0]
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"
    assert frame["status"].tolist() == ["SUCCESS"]
    assert frame["created_at"][0] == pd.Timestamp(records[0].created_at)
    polars = records.to_polars()
    assert polars.schema["created_at"] == pl.Datetime("us", "UTC")
    assert polars["status"].to_list() == ["SUCCESS"]


def test_steps_streams_and_stats_as_frames(rt: nbflow.Runtime) -> None:
    handle = rt.start(wf, 3)
    handle.result()
    workflow_id = handle.workflow_id
    steps = rt.list_steps(workflow_id).to_pandas()
    assert steps["name"].tolist() == ["tests.frames.step"] * 3
    assert "output" not in steps.columns and "_output" not in steps.columns
    assert str(steps["ended_at"].dtype) == "datetime64[us, UTC]"
    assert steps["attempts"].dtype == "int64"
    streams = rt.list_streams(workflow_id).to_polars()
    assert streams["key"].to_list() == ["plain", "rows"]
    assert streams.schema["items"] == pl.Int64 and streams.schema["closed"] == pl.Boolean
    stats = rt.step_stats().to_pandas()
    assert stats[["name", "count", "errors", "retries"]].values.tolist() == [
        ["tests.frames.step", 3, 0, 0]
    ]
    assert stats["p95_s"].dtype == "float64"


@pytest.mark.parametrize(
    "listing",
    [
        lambda rt: rt.list_workflows(name="nothing"),
        lambda rt: rt.step_stats(name="nothing"),
    ],
)
def test_empty_records_still_have_their_columns(
    rt: nbflow.Runtime, listing: Callable[[nbflow.Runtime], Any]
) -> None:
    records = listing(rt)
    assert len(records) == 0
    table = records.to_arrow()
    assert table.num_rows == 0 and table.num_columns >= 8
    assert list(records.to_pandas().columns) == table.column_names
    assert records.to_polars().columns == table.column_names


def test_read_stream_frame_of_dicts_and_of_scalars(rt: nbflow.Runtime) -> None:
    handle = rt.start(wf, 3)
    handle.result()
    rows = nbflow.read_stream_frame(handle.workflow_id, "rows")
    assert rows.index.name == "offset" and rows.index.tolist() == [0, 1, 2]
    assert rows.columns.tolist() == ["i", "name", "score"]
    assert rows["score"].tolist() == [0.0, 0.5, 1.0]
    plain = rt.read_stream_frame(handle.workflow_id, "plain")
    assert plain.columns.tolist() == ["value"] and plain["value"].tolist() == [1, 2, 3]
    empty = rt.read_stream_frame(handle.workflow_id, "no such key")
    assert empty.columns.tolist() == ["value"] and len(empty) == 0
    with pytest.raises(nbflow.WorkflowNotFoundError):
        rt.read_stream_frame("nobody", "rows")


def test_read_stream_frame_of_a_running_workflow_does_not_wait(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    gates[:] = [gate()]
    try:
        handle = rt.start(wf, 2)
        gates[0].reached()
        rows = rt.read_stream_frame(handle.workflow_id, "rows")  # still PENDING: what is there
        assert rows["i"].tolist() == [0, 1]
        gates[0].release.set()
        assert handle.result() == 2
    finally:
        gates.clear()


def test_a_missing_library_names_the_extra(
    rt: nbflow.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = rt.list_workflows()
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas absent, as when not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'nbflow\[pandas\]'"):
        records.to_pandas()
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'nbflow\[polars\]'"):
        records.to_polars()


def test_import_nbflow_imports_no_frame_library() -> None:
    code = textwrap.dedent(
        """
        import sys
        import nbflow
        with nbflow.Runtime(":memory:") as rt:
            rt.list_workflows()
        print(sorted(m for m in ("pandas", "polars", "pyarrow", "numpy") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
