"""DuckDB's memory limit: small at first, raised when a large value needs it (issue 14, item 4).

DuckDB keeps the blocks it wrote in its buffer pool up to its memory limit, 80% of the machine's
memory by default: writing 400 MB as 10 KB items grew the process by 350 MB even with nbflow's
write log bounded (``benchmarks/load.py`` measures it: +169 MB with the limit). nbflow opens
DuckDB with a limit of 128 MB and raises it, four times over, when a statement runs out of it.
These tests write and read back values larger than the first limit: without the raise, both the
commit and the read fail with DuckDB's "Out of Memory Error".
"""

from __future__ import annotations

from pathlib import Path

import pytest

import nbflow
from nbflow.store import _valuefiles
from nbflow.store._duckdb import _FIRST_LIMIT

SIZE = _FIRST_LIMIT + (32 << 20)  # a value larger than DuckDB's first memory limit


@nbflow.step(name="tests.duckdb_memory.big")
def big() -> bytes:
    return b"y" * SIZE


@nbflow.workflow(name="tests.duckdb_memory.flow")
def flow() -> int:
    return len(big())


def test_a_value_larger_than_the_first_limit_is_written_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_valuefiles, "LARGE_VALUE_BYTES", 1 << 40)  # kept in its row
    path = str(tmp_path / "big.duckdb")
    with nbflow.Runtime(path) as rt, nbflow.set_workflow_id("big"):
        assert rt.start(flow).result(timeout=120) == SIZE
        assert rt.store._limit > _FIRST_LIMIT  # type: ignore[attr-defined]  # raised for it
    with nbflow.Runtime(path) as again:  # a new process would start from the first limit
        assert again.store._limit == _FIRST_LIMIT  # type: ignore[attr-defined]
        [(length,)] = again.store._fetchall(  # type: ignore[attr-defined]
            "SELECT octet_length(output_pickle) FROM steps WHERE workflow_id = 'big'"
        )
        assert length > SIZE
        with nbflow.set_workflow_id("big"):  # replayed: the step's output read back
            assert again.start(flow).result(timeout=120) == SIZE
