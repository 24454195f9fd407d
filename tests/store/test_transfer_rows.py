"""``Store.export_rows`` / ``import_rows`` at the store's interface, on every store (the rules the
runtime's export, import and copy stand on; see ``store/_transfer.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nbflow.store import Store, open_store
from nbflow.store._ops import MessageRow, StepRow, StreamRow, WorkflowRow
from nbflow.store._transfer import TransferRows

T = 1_700_000_000.0


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        opened = open_store(str(request.getfixturevalue("pg_url")))
    else:
        opened = open_store(str(tmp_path / "store.duckdb"))
    try:
        yield opened
    finally:
        opened.close()


def _rows(workflow_id: str, items: int = 3) -> TransferRows:
    return TransferRows(
        WorkflowRow(
            workflow_id,
            "w",
            "ENQUEUED",
            "[]",
            None,
            created_at=T,
            updated_at=T,
            queue_name="q",
            priority=3,
            deduplication_id="d",
            partition_key="p",
            available_at=T + 1,
            started_at=T + 2,
            recovery_attempts=4,
        ),
        [
            StepRow(workflow_id, 1, "s", "1", None, None, None, T, T, 1),
            StepRow(workflow_id, 2, "p", None, b"\x80pickle", None, None, T, T, 2, code="c"),
        ],
        [StreamRow(workflow_id, "k", i, str(i), None, False, 3 + i, None, T) for i in range(items)],
        [MessageRow(f"m-{workflow_id}", workflow_id, "topic", '"hi"', None, T)],
    )


def test_rows_written_are_read_back_as_they_were(store: Store) -> None:
    """An import writes a workflow with every row of it (every column: the queue options too);
    an export reads exactly those rows (the
    workflows asked for that exist, in the order asked); a second import of the id writes
    nothing and says so."""
    rows = _rows("a", items=7000)  # more than one insert statement
    assert store.import_rows(rows) is True
    assert store.import_rows(_rows("b")) is True
    assert store.export_rows(["b", "nobody", "a"]) == [_rows("b"), rows]
    changed = rows._replace(steps=[], streams=[], messages=[])
    assert store.import_rows(changed) is False
    assert store.export_rows(["a"]) == [rows]  # nothing of the second import was written


def test_an_import_is_one_transaction(store: Store) -> None:
    """A row the schema refuses (a step without a name) fails the whole import: no workflow row
    is left behind, and the import can be made again."""
    rows = _rows("t")
    nameless = StepRow("t", 9, None, None, None, None, None, T, T, 1)  # type: ignore[arg-type]
    bad = rows._replace(steps=[*rows.steps, nameless])
    with pytest.raises(Exception, match=r"(?i)not.null|null value"):
        store.import_rows(bad)
    assert store.export_rows(["t"]) == []
    assert store.import_rows(rows) is True
