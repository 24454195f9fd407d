"""DataFrames, Arrow tables and numpy arrays are stored as Arrow IPC, not pickled, on every store:
as step results, stream items, workflow inputs and outputs, events and messages; they come back
as the same type with the same dtypes, and ``allow_pickle=False`` takes them. Large values live in
files beside a DuckDB file."""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal as assert_polars_equal

import nbflow
from nbflow import _arrowvalues
from nbflow.store import _valuefiles
from nbflow.store._valuefiles import REF_MAGIC, REF_SIZE, ValueFiles

pytestmark = pytest.mark.contract


def pandas_frame() -> pd.DataFrame:
    """Every pandas dtype the issue names, with a named, non-range index."""
    return pd.DataFrame(
        {
            "when": pd.date_range("2024-03-30", periods=4, freq="12h", tz="Europe/Paris"),
            "naive": pd.date_range("2024-01-01", periods=4, freq="D"),
            "kind": pd.Categorical(["a", "b", "a", None], categories=["b", "a"], ordered=True),
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "ok": pd.array([True, None, False, True], dtype="boolean"),
            "label": pd.array(["x", None, "z", "w"], dtype="string"),
            "text": ["p", "q", None, "s"],
            "score": [0.5, np.nan, 2.5, -1.0],
            "small": np.array([1, 2, 3, 4], dtype="int8"),
            "took": pd.to_timedelta([1, 2, 3, 4], unit="s"),
        },
        index=pd.Index(["k1", "k2", "k3", "k4"], name="key"),
    )


def values() -> dict[str, Any]:
    """One value of each kind stored as Arrow."""
    frame = pandas_frame()
    return {
        "pandas": frame,
        "int_index": pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([10, 3], name="id")),
        "multi": frame.set_index(["kind", "small"], append=True),
        "series": frame["count"],
        "unnamed": pd.Series([1.5, 2.5], index=pd.date_range("2024-01-01", periods=2, tz="UTC")),
        "polars": pl.DataFrame(
            {
                "a": [1, None],
                "c": pl.Series(["x", "y"], dtype=pl.Categorical),
                "t": pl.Series([1, 2]).cast(pl.Datetime("us", "Asia/Tokyo")),
            }
        ),
        "table": pa.table({"x": [1, 2], "y": ["a", None]}),
        "batch": pa.record_batch({"y": pa.array([1.5, None])}),
        "matrix": np.arange(24, dtype="int32").reshape(2, 3, 4),
        "fortran": np.asfortranarray(np.arange(6, dtype="float32").reshape(2, 3)),
        "bools": np.array([[True, False], [False, True]]),
        "times": np.array(["2024-01-01T00:00", "NaT"], dtype="datetime64[ns]"),
        "days": np.array(["2024-01-01", "2024-02-29"], dtype="datetime64[D]"),
        "gaps": np.array([1, 2], dtype="timedelta64[ms]"),
        "complex": np.array([1 + 2j, 3 - 1j]),
        "scalar": np.array(3.25),
        "empty": np.zeros((0, 3), dtype="uint16"),
    }


def assert_same(expected: Any, got: Any) -> None:
    """Equal values of the same type, dtypes included."""
    assert type(got) is type(expected), (type(expected), type(got))
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected, check_exact=True)
    elif isinstance(expected, pl.DataFrame):
        assert_polars_equal(got, expected)
    elif isinstance(expected, (pa.Table, pa.RecordBatch)):
        assert got.equals(expected) and got.schema == expected.schema
    elif isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert got.flags.writeable
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            assert_same(expected[key], got[key])
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for e, g in zip(expected, got, strict=True):
            assert_same(e, g)
    else:
        assert got == expected


def raw(rt: nbflow.Runtime, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a SQL statement on either store (``$1``… placeholders)."""
    result = rt.store.sql(query, list(params))  # type: ignore[attr-defined]
    if result is None or isinstance(result, list):
        return result or []
    return list(result.fetchall())


@nbflow.step(name="tests.values.echo")
def echo(value: Any) -> Any:
    return value


@nbflow.workflow(name="tests.values.everywhere")
def everywhere(*args: Any, **kwargs: Any) -> Any:
    """Each value as a step result, a stream item and an event; the inputs as the output."""
    for name, value in kwargs["named"].items():
        nbflow.write_stream("items", echo(value))
        nbflow.set_event(name, value)
    nbflow.close_stream("items")
    got = nbflow.recv("frames", timeout=30)
    return {"args": args, "kwargs": kwargs, "received": got}


def test_each_kind_round_trips_everywhere_without_pickle(database: str) -> None:
    """Under allow_pickle=False: a workflow's args and kwargs (nested in tuples, lists and
    dicts), step results, stream items, events, a message and the output all come back as the
    same type with the same dtypes; nothing is pickled; a new runtime reads them back too."""
    named = values()
    args = (named["pandas"], [named["matrix"], (named["table"], "text", 3)])
    message = {"frame": named["pandas"], "pair": (named["polars"], None)}
    with nbflow.Runtime(database, allow_pickle=False) as strict:
        handle = strict.start(everywhere, *args, named=named, extra={"$nbflow": named["batch"]})
        strict.send(handle.workflow_id, message, topic="frames")
        result = handle.result(timeout=60)
        expected = {"args": args, "kwargs": {"named": named, "extra": {"$nbflow": named["batch"]}}}
        assert_same({**expected, "received": message}, result)
        assert_same(list(named.values()), list(strict.read_stream(handle.workflow_id, "items")))
        wid = handle.workflow_id
        blobs = raw(strict, "SELECT output_pickle FROM steps WHERE workflow_id = $1", wid)
        blobs += raw(strict, "SELECT value_pickle FROM streams WHERE workflow_id = $1", wid)
        blobs += raw(strict, "SELECT inputs_pickle FROM workflows WHERE workflow_id = $1", wid)
        stored = [bytes(b) for (b,) in blobs if b is not None]
        assert len(stored) >= 2 * len(named) + 1
        assert all(b.startswith(_arrowvalues.MAGIC) for b in stored)
    with nbflow.Runtime(database, allow_pickle=False) as again:
        assert_same({**expected, "received": message}, again.get_workflow(wid).result())
        assert_same(list(named.values()), list(again.read_stream(wid, "items")))
        assert_same(named, again.events(wid))
        assert_same(named["pandas"], again.read_value(wid, 1))


def test_allow_pickle_false_still_refuses_real_pickles(database: str) -> None:
    """A frame beside a value JSON cannot say is refused at the write (naming it); a real
    pickle, and a container whose skeleton is pickled, are refused at the read."""
    frame = pandas_frame()
    errors: list[nbflow.SerializationError] = []

    @nbflow.workflow(name="tests.values.mixed")
    def mixed() -> Any:
        try:
            nbflow.write_stream("k", (frame, datetime.date(2024, 1, 1)))
        except nbflow.SerializationError as exc:
            errors.append(exc)
        return (frame, datetime.date(2024, 1, 1))

    with nbflow.Runtime(database, allow_pickle=False) as strict:
        with pytest.raises(nbflow.SerializationError, match=r"datetime\.date"):
            strict.start(echo_workflow, frame, datetime.date(2024, 1, 1))
        handle = strict.start(mixed)
        with pytest.raises(nbflow.SerializationError, match=r"datetime\.date"):
            handle.result(timeout=30)
    assert "datetime.date" in str(errors[0]) and "allow_pickle=False" in str(errors[0])
    with nbflow.Runtime(database) as trusting:
        handle = trusting.start(mixed)
        got = handle.result(timeout=30)
        assert_same((frame, datetime.date(2024, 1, 1)), got)
        [(blob,)] = raw(
            trusting,
            "SELECT output_pickle FROM workflows WHERE workflow_id = $1",
            handle.workflow_id,
        )
        assert bytes(blob).startswith(_arrowvalues.MAGIC)  # the frame as Arrow, the rest pickled
    with (
        nbflow.Runtime(database, allow_pickle=False) as strict,
        pytest.raises(nbflow.SerializationError, match="allow_pickle"),
    ):
        strict.get_workflow(handle.workflow_id).result()


def test_old_pickled_frames_still_decode(database: str) -> None:
    """A row written before (the frame pickled) reads back with allow_pickle=True, and is
    refused with allow_pickle=False."""
    frame = pandas_frame()
    with nbflow.Runtime(database) as runtime:
        handle = runtime.start(everywhere, named={})
        runtime.send(handle.workflow_id, None, topic="frames")
        handle.result(timeout=30)
        wid = handle.workflow_id
        raw(
            runtime,
            "UPDATE workflows SET output_json = NULL, output_pickle = $1 WHERE workflow_id = $2",
            pickle.dumps(frame),
            wid,
        )
    with nbflow.Runtime(database) as runtime:
        assert_same(frame, runtime.get_workflow(wid).result())
    with (
        nbflow.Runtime(database, allow_pickle=False) as strict,
        pytest.raises(nbflow.SerializationError, match="allow_pickle"),
    ):
        strict.get_workflow(wid).result()


def test_frames_arrow_cannot_keep_are_pickled(database: str) -> None:
    """An object column of tuples, an object-dtype array, a nullable index level (which pyarrow
    brings back as int64 or float64) are pickled (so refused under allow_pickle=False), and
    come back exactly as they were."""
    odd = pd.DataFrame({"pairs": [(1, 2), (3,)]})
    objects = np.array([{"a": 1}, None], dtype=object)
    nullable_level = pandas_frame().set_index("count", append=True)  # pyarrow: int64, float64
    with nbflow.Runtime(database) as runtime:
        handle = runtime.start(echo_workflow, odd, objects, nullable_level)
        handle.result(timeout=30)
    with nbflow.Runtime(database) as runtime:
        got = runtime.get_workflow(handle.workflow_id).result()
        assert got[0]["pairs"].tolist() == [(1, 2), (3,)] and got[1].dtype == object
        assert_same(nullable_level, got[2])
    with (
        nbflow.Runtime(database, allow_pickle=False) as strict,
        pytest.raises(nbflow.SerializationError, match="Arrow cannot keep"),
    ):
        strict.start(echo_workflow, odd, None)


@nbflow.workflow(name="tests.values.echo_workflow")
def echo_workflow(*values: Any) -> Any:
    return values


def test_sql_reads_a_stored_frame(database: str) -> None:
    """``Runtime.read_value`` returns a step's frame; ``store.sql(frames=...)`` queries it on
    DuckDB, and says what to do on PostgreSQL."""
    frame = pandas_frame()
    with nbflow.Runtime(database) as runtime:
        handle = runtime.start(echo_workflow, frame)
        handle.result(timeout=30)
        stored = runtime.read_value(handle.workflow_id)[0]
        assert_same(frame, stored)
        with pytest.raises(nbflow.InvalidValueError, match="no step 7"):
            runtime.read_value(handle.workflow_id, 7)
        query = "SELECT count(*), sum(count) FROM scores WHERE ok"
        if database.startswith("postgresql"):
            with pytest.raises(nbflow.ConfigurationError, match="DuckDB"):
                runtime.store.sql(query, frames={"scores": stored})  # type: ignore[attr-defined]
        else:
            relation = runtime.store.sql(query, frames={"scores": stored})  # type: ignore[attr-defined]
            assert relation.fetchall() == [(2, 5)]


def test_missing_pyarrow_is_a_clear_error(database: str, tmp_path: Path) -> None:
    """Reading an Arrow value where pyarrow cannot be imported names the extra to install."""
    blob = _arrowvalues.encode(pandas_frame(), what="x", allow_pickle=False)
    assert blob is not None
    (tmp_path / "blob").write_bytes(blob)
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from nbflow._serialization import decode\n"
        "import nbflow\n"
        f"blob = open({str(tmp_path / 'blob')!r}, 'rb').read()\n"
        "try:\n"
        "    decode(None, blob, what='step 1')\n"
        "except nbflow.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'nbflow[pandas]'" in out.stdout and "pyarrow" in out.stdout


def test_import_nbflow_imports_no_data_library() -> None:
    code = (
        "import sys, nbflow, nbflow.store, nbflow._serialization\n"
        "nbflow._serialization.encode((1, {'a': [2]}), what='x')\n"
        "bad = [m for m in ('pandas', 'polars', 'pyarrow', 'numpy') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- large values in files (DuckDB) ------------------------------------------------------------


def value_files(db: str) -> list[Path]:
    return sorted(Path(db + ".values").glob("*/*.bin"))


def test_large_values_live_in_files_beside_a_duckdb_file(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the threshold, a value's bytes go to a content-addressed file, its row holds a
    reference; it restores in a new runtime; a missing file is a clear error. PostgreSQL keeps
    every value in its row."""
    monkeypatch.setattr(_valuefiles, "LARGE_VALUE_BYTES", 10_000)
    frame = pd.DataFrame(
        {"x": np.arange(50_000, dtype="float64"), "kind": pd.Categorical(["a"] * 50_000)}
    )
    with nbflow.Runtime(database) as runtime:
        handle = runtime.start(echo_workflow, frame, frame)
        assert_same((frame, frame), handle.result(timeout=30))
        wid = handle.workflow_id
        blobs = [
            bytes(b)
            for (b,) in raw(
                runtime, "SELECT output_pickle FROM workflows WHERE workflow_id = $1", wid
            )
        ]
    if database.startswith("postgresql"):
        assert blobs[0].startswith(_arrowvalues.MAGIC)
        return
    [ref] = blobs
    assert ref.startswith(REF_MAGIC) and len(ref) == REF_SIZE
    files = value_files(database)
    assert len(files) == 2  # the inputs' and the output's
    path = Path(f"{database}.values/{parse(ref)[:2]}/{parse(ref)}.bin")
    assert path in files
    assert _arrowvalues.is_container(path.read_bytes())
    with nbflow.Runtime(database, allow_pickle=False) as again:
        assert_same((frame, frame), again.get_workflow(wid).result())
    path.unlink()
    with nbflow.Runtime(database) as again:
        with pytest.raises(nbflow.DatabaseError, match="missing") as info:
            again.get_workflow(wid).result()
        assert str(path) in str(info.value)


def test_unreferenced_value_files_are_collected(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``collect_value_files`` removes a file no row refers to and keeps those rows refer to;
    ``remove_unreferenced`` keeps a file its process wrote whose row may not be committed yet."""
    monkeypatch.setattr(_valuefiles, "LARGE_VALUE_BYTES", 1_000)
    database = str(db_path)
    with nbflow.Runtime(database) as runtime:
        runtime.start(echo_workflow, np.arange(10_000)).result(timeout=30)
        kept = value_files(database)
        assert len(kept) == 2  # the inputs' and the output's
        other = ValueFiles(database + ".values")  # as another process's, never committed
        orphan = other.path(parse(other.put(b"\x80" + b"x" * 5000)))
        assert runtime.collect_value_files() == 1
        assert value_files(database) == kept and not orphan.exists()
        pending = parse(other.put(b"in flight"))
        assert other.remove_unreferenced({p.stem for p in kept}) == 0
        assert other.path(pending).exists()


def parse(ref: bytes) -> str:
    found = _valuefiles.parse_ref(ref)
    assert found is not None
    return found[0]


@nbflow.step(name="tests.values.make_big")
def make_big(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    when = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.DataFrame({"x": rng.random(rows), "when": when})


@nbflow.workflow(name="tests.values.big")
def big(rows: int) -> pd.DataFrame:
    return make_big(rows)


def test_a_large_step_result_at_the_default_threshold(db_path: Path) -> None:
    """A frame of more than 8 MB (encoded) goes to a file at the default threshold; the step's
    output and the workflow's, the same bytes, share it."""
    with nbflow.Runtime(str(db_path)) as runtime:
        frame = runtime.start(big, 1_200_000).result(timeout=60)
    assert_same(make_big(1_200_000), frame)
    assert len(value_files(str(db_path))) == 1
    assert os.path.getsize(db_path) < 8 << 20


def test_prune_and_delete_workflow_remove_the_value_files_they_freed(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted or pruned workflow's large values leave the folder with it; a file another
    workflow's row still refers to stays (content-addressed files are shared)."""
    monkeypatch.setattr(_valuefiles, "LARGE_VALUE_BYTES", 1_000)
    database = str(db_path)
    with nbflow.Runtime(database) as runtime:
        first = runtime.start(echo_workflow, np.arange(10_000)).result(timeout=30)
        wids = [runtime.start(echo_workflow, np.arange(n)).workflow_id for n in (20_000, 30_000)]
        for wid in wids:
            runtime.get_workflow(wid).result(timeout=30)
        shared = runtime.start(echo_workflow, np.arange(10_000))  # the same bytes as the first
        assert_same(first, shared.result(timeout=30))
        before = value_files(database)
        assert runtime.delete_workflow(wids[0]) == 1
        after_delete = value_files(database)
        assert len(after_delete) == len(before) - 2  # its inputs' and its output's
        assert runtime.prune(older_than=1e-6, status="SUCCESS") == 3
        assert value_files(database) == []
