"""Moving workflows between databases: ``export_workflow``, ``import_workflow`` and ``copy_to``.

An export is the store's rows of a workflow (:meth:`~nbflow.store.Store.export_rows`: its row,
steps, events, stream items, the messages waiting for it), with every reference to a large value's
file beside a DuckDB file replaced by the value's bytes, in the portable form of
:mod:`nbflow.store._exported` (a dict ``json.dumps`` takes, with a format version). An import
writes each workflow in one transaction (:meth:`~nbflow.store.Store.import_rows`), putting large
values in files again when the database is a DuckDB file. A workflow whose id exists is left as it
is: identical (everything but which process ran it and when its row last changed), it counts as
imported before; else :class:`~nbflow.ImportConflictError`. A PENDING workflow is imported with no
executor, so it is interrupted there: ``recover()`` (or ``nbflow worker``) resumes it from its
checkpoints, and its streams go on from the items it holds.

:class:`Transfers` is a part of :class:`~nbflow.Runtime` (its base).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from nbflow._errors import ImportConflictError, InvalidValueError, WorkflowNotFoundError
from nbflow._records import Status
from nbflow._serialization import check_text
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Executions
from nbflow.engine._queries import Moment, workflow_query
from nbflow.store._exported import from_exported, to_exported
from nbflow.store._schema import BLOB, TABLES
from nbflow.store._transfer import TransferRows
from nbflow.workflow._calls import check_flag

if TYPE_CHECKING:
    from nbflow.engine._core import RuntimeCore

__all__ = ["CopyReport", "Transfers"]

R = TypeVar("R", bound=tuple[Any, ...])
#: Columns that say where and when a workflow last ran, not what it is: an import that differs
#: only in them is the same workflow.
_RUN_COLUMNS = ("executor_id", "updated_at")
#: Workflows listed per query when copying.
_PAGE = 500


class CopyReport(NamedTuple):
    """What :meth:`Transfers.copy_to` did, workflow ids in creation order.

    Attributes:
        copied: Copied into the target.
        already: In the target already, identical: left as they are.
        running: Left out: running (PENDING, in a live process).
        differ: In the target with different content: left as they are.
    """

    copied: list[str]
    already: list[str]
    running: list[str]
    differ: list[str]


def _blob_columns(table: str) -> list[str]:
    return [name for name, kind in TABLES[table] if kind == BLOB]


_BLOBS = {table: _blob_columns(table) for table in ("workflows", "steps", "streams", "messages")}


class _Mover:
    """Exports and imports of one runtime's database."""

    def __init__(self, engine: Engine, executions: Executions) -> None:
        self._engine = engine
        self._executions = executions

    def _each_blob(self, rows: TransferRows, change: Any) -> TransferRows:
        """``rows`` with ``change(blob, what)`` for every value blob they hold."""
        what = f"an exported row of workflow {rows.workflow.workflow_id!r}"

        def fix(row: R, table: str) -> R:
            new = {n: change(getattr(row, n), what) for n in _BLOBS[table] if getattr(row, n)}
            return row._replace(**new) if new else row  # type: ignore[attr-defined,no-any-return]

        return TransferRows(
            fix(rows.workflow, "workflows"),
            [fix(r, "steps") for r in rows.steps],
            [fix(r, "streams") for r in rows.streams],
            [fix(r, "messages") for r in rows.messages],
        )

    def _resolved(self, rows: TransferRows) -> TransferRows:
        """``rows`` with each large value's file reference replaced by the value's bytes."""
        return self._each_blob(rows, lambda blob, what: bytes(self._engine.read_blob(blob, what)))

    def export(self, workflow_id: str, children: bool) -> list[dict[str, Any]]:
        check_text(workflow_id, "A workflow id")
        check_flag(children, "children")
        self._engine.check_open()
        self._engine.flush()  # what this runtime wrote is in the export
        ids = [workflow_id, *(self._descendants(workflow_id) if children else [])]
        rows = self._engine.store.export_rows(ids)
        if not rows or rows[0].workflow.workflow_id != workflow_id:
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        return [to_exported(self._resolved(r)) for r in rows]

    def _descendants(self, workflow_id: str) -> list[str]:
        """Every workflow ``workflow_id`` started, recursively (children before grandchildren)."""
        found: list[str] = []
        seen = {workflow_id}
        level: Sequence[str] = [workflow_id]
        while level:
            children = self._engine.store.children(level)
            level = [c.workflow_id for c in children if c.workflow_id not in seen]
            seen.update(level)
            found += level
        return found

    def import_(self, exported: object) -> list[str]:
        if isinstance(exported, Mapping):
            exported = [exported]
        if isinstance(exported, (str, bytes)) or not isinstance(exported, Iterable):
            raise InvalidValueError(
                "import_workflow() takes what export_workflow() returned (a list of dicts), "
                f"not {type(exported).__name__}.",
                what="exported",
                value=exported,
            )
        parsed = [from_exported(item) for item in exported]  # all checked before any is written
        self._engine.check_open()
        imported = []
        for rows in parsed:
            if self._import_one(rows):
                imported.append(rows.workflow.workflow_id)
        return imported

    def _import_one(self, rows: TransferRows) -> bool:
        """Write one workflow; False when an identical one is here (else raise)."""
        row = rows.workflow
        if row.status == Status.PENDING.value:  # interrupted here: recovery resumes it
            row = row._replace(executor_id=None)
        kept = self._each_blob(rows._replace(workflow=row), lambda b, _: self._engine.keep_blob(b))
        store = self._engine.store
        if store.import_rows(kept):
            self._engine.notifier.changed(row.workflow_id)
            return True
        here = store.export_rows([row.workflow_id])
        if here:
            differences = _differences(self._resolved(here[0]), rows)
            if not differences:
                return False
        else:  # deleted meanwhile: try once more
            if store.import_rows(kept):
                self._engine.notifier.changed(row.workflow_id)
                return True
            differences = ["it was written and deleted meanwhile by another process"]
        raise ImportConflictError(row.workflow_id, self._engine.database, differences)

    def running(self, rows: Mapping[str, Any]) -> bool:
        """Whether an exported workflow runs now, here or in another live process."""
        row = rows["workflow"]
        if row["status"] != Status.PENDING.value:
            return False
        if row["workflow_id"] in self._executions:
            return True
        return self._engine.store.executor_alive(row["executor_id"])

    def candidates(self, status: Any, since: Moment | None) -> list[str]:
        """The ids of the workflows a copy takes (nbflow's own record keeping included), oldest
        first."""
        self._engine.check_open()
        self._engine.flush()
        ids: list[str] = []
        while True:
            query = workflow_query(
                status=status,
                since=since,
                include_internal=True,
                newest_first=False,
                offset=len(ids),
                limit=_PAGE,
            )
            page = self._engine.store.list_workflows(query)
            ids += [row.workflow_id for row in page]
            if len(page) < _PAGE:
                return list(dict.fromkeys(ids))


def _first_difference(what: str, mine: Sequence[tuple[Any, ...]], theirs: Sequence[Any]) -> str:
    """How two lists of rows differ: their lengths, or the first row that differs."""
    if len(mine) != len(theirs):
        return f"{what}: {len(mine)} here, {len(theirs)} in the export"
    index = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
    return f"{what} differ from row {index} ({mine[index][1]!r})"


def _differences(here: TransferRows, there: TransferRows) -> list[str]:
    """What differs between a workflow here and its export (the run columns left out)."""
    found = []
    for (name, _), mine, theirs in zip(
        TABLES["workflows"], here.workflow, there.workflow, strict=True
    ):
        if name not in _RUN_COLUMNS and mine != theirs:
            if name in ("status", "name", "parent_id", "queue_name"):
                found.append(f"{name}: {mine!r} here, {theirs!r} in the export")
            else:
                found.append(f"{name} differs")
    for what, mine_rows, their_rows in (
        ("steps", here.steps, there.steps),
        ("stream rows", here.streams, there.streams),
        ("waiting messages", here.messages, there.messages),
    ):
        if mine_rows != their_rows:
            found.append(_first_difference(what, mine_rows, their_rows))
    return found


class Transfers:
    """What a :class:`~nbflow.Runtime` exports, imports and copies to another database."""

    _core: RuntimeCore

    def _mover(self) -> _Mover:
        return _Mover(self._core.engine, self._core.executions)

    def export_workflow(self, workflow_id: str, *, children: bool = False) -> list[dict[str, Any]]:
        """The workflow as stored, in a portable form (DBOS's ``export_workflow``): a list of one
        dict per workflow (with ``children``, then the workflows it started, recursively), which
        ``json.dumps`` takes and :meth:`import_workflow` reads in another database.

        Each holds a format version, the workflow's row, its steps (events are steps), its stream
        items and end markers, and the messages waiting for it, values as stored (JSON text;
        pickles and Arrow containers as base64 text; a large value kept in a file beside a
        DuckDB file is included).

        Raises:
            WorkflowNotFoundError: No workflow has this id.
        """
        return self._mover().export(workflow_id, children)

    def import_workflow(
        self, exported: Iterable[Mapping[str, Any]] | Mapping[str, Any]
    ) -> list[str]:
        """Write workflows :meth:`export_workflow` exported into this database (DBOS's
        ``import_workflow``), each in one transaction; returns the ids written.

        A workflow whose id is here already is left as it is: identical, it is skipped (so an
        import run twice writes nothing twice). A PENDING workflow is imported interrupted:
        :meth:`recover` (or ``nbflow worker``) resumes it from its checkpoints.

        Raises:
            InvalidValueError: Not an export (or one of a newer format): nothing was written.
            ImportConflictError: A workflow with its id and different content is here; those
                before it in the list were written.
        """
        return self._mover().import_(exported)

    def copy_to(
        self,
        target: Transfers,
        *,
        status: str | Status | Sequence[str | Status] | None = None,
        since: Moment | None = None,
    ) -> CopyReport:
        """Copy this database's workflows (of ``status``; created at or after ``since``) into the
        runtime ``target``'s, one by one (``nbflow copy``). Those already there are left as they
        are, and those running now (here or in another live process) are left out: a copy run
        again copies only what is new."""
        mover = self._mover()
        report = CopyReport([], [], [], [])
        for workflow_id in mover.candidates(status, since):
            try:
                [exported] = mover.export(workflow_id, False)
            except WorkflowNotFoundError:  # deleted meanwhile
                continue
            if mover.running(exported):
                report.running.append(workflow_id)
                continue
            try:
                written = target.import_workflow([exported])
            except ImportConflictError:
                report.differ.append(workflow_id)
                continue
            (report.copied if written else report.already).append(workflow_id)
        return report
