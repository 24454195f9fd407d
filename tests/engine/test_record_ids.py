"""Durable-cell records from two kernels on one PostgreSQL database (issue 14, item 14).

``record_step`` numbered a record-keeping workflow's steps with a counter of its own process: two
kernels recording into one notebook's record both took the next id after the last one each had
seen, and the second record of an id was dropped (``ON CONFLICT DO NOTHING``). The id is now
claimed in SQL, one recorder at a time per record: every record is kept, each under its own id.
Two runtimes of one process stand for the two kernels (each has its own executor and
connections); the DuckDB case checks the same numbering on the embedded store.
"""

from __future__ import annotations

import threading

import pytest

import nbflow

pytestmark = pytest.mark.contract


def record(rt: nbflow.Runtime, cell: str) -> int:
    return rt.record_step("notebook:shared.ipynb", cell, {"cell": cell}, started=1.0, ended=2.0)


def test_two_kernels_recording_into_one_notebook_keep_every_record(
    rt: nbflow.Runtime, database: str
) -> None:
    kernels = [rt] if rt.store.single_process else [rt, nbflow.Runtime(database)]
    try:
        ids = [record(kernels[n % len(kernels)], f"cell-{n}") for n in range(6)]
        if len(kernels) > 1:  # and at the same moment, from threads of both
            threads = [
                threading.Thread(target=lambda n=n: ids.append(record(kernels[n % 2], f"t-{n}")))
                for n in range(20)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    finally:
        for other in kernels[1:]:
            other.close()
    steps = rt.list_steps("notebook:shared.ipynb")
    assert sorted(ids) == list(range(1, len(ids) + 1)), ids
    assert [s.function_id for s in steps] == sorted(ids)
    names = [s.name for s in steps]
    assert sorted(names) == sorted(
        [f"cell-{n}" for n in range(6)]
        + ([f"t-{n}" for n in range(20)] if len(kernels) > 1 else [])
    )
