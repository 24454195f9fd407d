"""Durable cells keep DataFrames and arrays among their variables as Arrow, not pickled: a
notebook run in a fresh kernel, then again in another, which restores them with their dtypes."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbflow
from nbflow import _arrowvalues
from tests.notebook.test_durable_cells import execute, split_note
from tests.support.kernels import venv_kernel

MAKE = (
    "import numpy as np, pandas as pd, fractions\n"
    "def build():\n"
    "    frame = pd.DataFrame({\n"
    "        'when': pd.date_range('2024-03-31', periods=3, freq='h', tz='Europe/Paris'),\n"
    "        'kind': pd.Categorical(['a', None, 'b']),\n"
    "        'count': pd.array([1, None, 3], dtype='Int64'),\n"
    "        'label': pd.array(['x', None, 'z'], dtype='string'),\n"
    "    }, index=pd.Index([10, 20, 30], name='id'))\n"
    "    return frame, np.arange(12, dtype='int16').reshape(3, 4)\n"
)
NOTEBOOK = [
    "%load_ext nbflow",
    MAKE,
    "%%nbflow step frames\n"
    "frame, grid = build()\n"
    "both = {'frame': frame, 'ratio': fractions.Fraction(1, 3)}\n"
    "same_object = both['frame'] is frame",
    "expected, expected_grid = build()\n"
    "pd.testing.assert_frame_equal(frame, expected, check_exact=True)\n"
    "assert grid.dtype == expected_grid.dtype and (grid == expected_grid).all()\n"
    "print('same', both['frame'] is frame, both['ratio'], dict(frame.dtypes.astype(str)))",
]


@pytest.mark.kernel
def test_frames_in_durable_cells_are_kept_as_arrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = venv_kernel(tmp_path, monkeypatch)
    database = tmp_path / "notebook.duckdb"
    monkeypatch.setenv("NBFLOW_DATABASE", str(database))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    first = execute(NOTEBOOK, tmp_path, kernel)
    second = execute(NOTEBOOK, tmp_path, kernel)
    assert "ran in" in split_note(first[2]["stdout"])[1]
    assert "restored in" in split_note(second[2]["stdout"])[1], second[2]
    dtypes = "{'when': 'datetime64[us, Europe/Paris]', 'kind': 'category', 'count': 'Int64', 'label': 'string'}"
    for out in (first, second):
        assert "stderr" not in out[3], out[3]
        assert out[3]["stdout"] == f"same True 1/3 {dtypes}\n"
    with nbflow.Runtime(database) as rt:
        [(blob,)] = rt.store.sql(  # type: ignore[attr-defined]
            "SELECT output_pickle FROM steps WHERE output_pickle IS NOT NULL"
        ).fetchall()
    assert _arrowvalues.is_container(blob)  # the frame and the array as Arrow parts
    assert blob.count(b"ARROW") == 0 and b'"kind":"pandas"' in blob and b'"kind":"numpy"' in blob
