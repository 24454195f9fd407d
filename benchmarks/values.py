"""DataFrames stored as Arrow against today's pickle: ``python -m benchmarks.values [--sizes 50,500]``.

For each size (MB of the pandas frame in memory, ``memory_usage(deep=True)``), a frame of float
columns (four random, two rounded to cents), an int64 column, a timestamp with a time zone and a
categorical is stored two ways, each on a fresh DuckDB file:

  step    as the result of a step (``nbflow.start`` of a workflow calling it, until durable);
          restored by ``Runtime.read_value`` in a newly opened runtime;
  cell    as a durable cell's variable, by the code the cells use (``_pickle_variables`` then
          ``Runtime.record_step(pickled=)``); restored by ``recorded_pickle`` and the cells' loads.

``arrow`` is nbflow now (Arrow IPC, zstd; over 8 MB in a value file beside the database, read
memory-mapped); ``pickle`` is nbflow before it (the frame pickled, kept in its DuckDB row). Columns:
write and restore seconds (best of ``--rounds``), restore speed (in-memory bytes / restore
seconds) and bytes on disk (the database file and its values folder). Restores read files the
write left in the page cache. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import nbflow
from nbflow import _arrowvalues
from nbflow.notebook import _cells
from nbflow.store import _valuefiles

__all__ = ["main", "make_frame"]

_FRAME: list[pd.DataFrame] = []  # the frame the step returns


def make_frame(megabytes: float) -> pd.DataFrame:
    """A frame of about ``megabytes`` MB in memory."""
    rows = int(megabytes * 1e6 / 65)  # 7 x 8 bytes, a timestamp, a category code
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {f"r{i}": rng.random(rows) for i in range(4)}
    columns.update({f"c{i}": np.round(rng.random(rows) * 100, 2) for i in range(2)})
    columns["n"] = np.arange(rows, dtype="int64")
    columns["when"] = pd.date_range("2024-01-01", periods=rows, freq="s", tz="Europe/Paris")
    columns["kind"] = pd.Categorical.from_codes(
        rng.integers(0, 20, rows), [f"k{i}" for i in range(20)]
    )
    return pd.DataFrame(columns)


@nbflow.step(name="benchmarks.values.produce")
def produce() -> pd.DataFrame:
    return _FRAME[0]


@nbflow.workflow(name="benchmarks.values.pipeline")
def pipeline() -> None:
    produce()


@contextmanager
def today() -> Iterator[None]:
    """nbflow before Arrow: frames pickled, kept in their rows."""
    found, threshold = _arrowvalues.has_frames, _valuefiles.LARGE_VALUE_BYTES
    _arrowvalues.has_frames = lambda value: False  # type: ignore[assignment]
    _valuefiles.LARGE_VALUE_BYTES = 1 << 62
    try:
        yield
    finally:
        _arrowvalues.has_frames = found  # type: ignore[assignment]
        _valuefiles.LARGE_VALUE_BYTES = threshold


def _disk(db: Path) -> int:
    files = [db, *Path(f"{db}.values").glob("*/*.bin")]
    return sum(f.stat().st_size for f in files if f.exists())


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def step_round(db: Path) -> tuple[float, float, int]:
    """Write as a step result, restore with read_value: (write s, restore s, bytes)."""
    with nbflow.Runtime(db) as rt:
        took, handle = _timed(lambda: rt.start(pipeline))
        write = took + _timed(lambda: handle.result(timeout=600))[0]
    with nbflow.Runtime(db) as rt:
        restore, value = _timed(lambda: rt.read_value(handle.workflow_id, 1))
    assert value.shape == _FRAME[0].shape
    del value
    return write, restore, _disk(db)


def cell_round(db: Path, arrow: bool) -> tuple[float, float, int]:
    """Write as a durable cell's variable, restore as the cells do: (write s, restore s, bytes)."""
    frame = _FRAME[0]
    with nbflow.Runtime(db) as rt:

        def write() -> int:
            if arrow:
                blob, bad = _cells._pickle_variables({"frame": frame}, set())
                assert not bad
            else:  # what _pickle_variables did before
                blob = pickle.dumps({"frame": frame}, protocol=pickle.HIGHEST_PROTOCOL)
            return rt.record_step("bench", "cell", {"k": 1}, started=0.0, ended=1.0, pickled=blob)

        took, function_id = _timed(write)
    with nbflow.Runtime(db) as rt:
        load = _arrowvalues.loads if arrow else pickle.loads
        restore, value = _timed(lambda: load(rt.recorded_pickle("bench", function_id)))
    assert value["frame"].shape == frame.shape
    del value
    return took, restore, _disk(db)


def measure(megabytes: float, rounds: int) -> list[tuple[str, str, float, float, int]]:
    """Rows ``(path, format, write s, restore s, bytes)`` for one frame size."""
    rows = []
    for path in ("step", "cell"):
        for fmt in ("arrow", "pickle"):
            best: tuple[float, float, int] | None = None
            for _ in range(rounds):
                with tempfile.TemporaryDirectory() as tmp:
                    db = Path(tmp) / "values.duckdb"
                    try:
                        with today() if fmt == "pickle" else _nothing():
                            run = step_round if path == "step" else cell_round
                            got = run(db) if path == "step" else run(db, fmt == "arrow")
                    except Exception as exc:  # (today's record of a 500 MB pickle fails)
                        print(f"  {path} {fmt}: failed: {type(exc).__name__}: {str(exc)[:90]}")
                        got = (float("nan"), float("nan"), 0)
                best = got if best is None else (min(best[0], got[0]), min(best[1], got[1]), got[2])
            assert best is not None
            rows.append((path, fmt, *best))
    return rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500", help="frame sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    head = ("frame", "path", "format", "write s", "restore s", "restore GB/s", "on disk MB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (14, 5, 7, 8, 9, 12, 10), strict=True)))
    for size in (float(s) for s in args.sizes.split(",")):
        _FRAME[:] = [make_frame(size)]
        memory = int(_FRAME[0].memory_usage(deep=True).sum())
        label = f"{memory / 1e6:.0f} MB {len(_FRAME[0]):,}r"
        for path, fmt, write, restore, disk in measure(size, args.rounds):
            speed = memory / restore / 1e9
            line = f"{label:>14} {path:>5} {fmt:>7} {write:8.3f} {restore:9.3f} {speed:12.2f}"
            print(f"{line} {disk / 1e6:10.1f}")
        _FRAME.clear()
        gc.collect()


if __name__ == "__main__":
    main()
