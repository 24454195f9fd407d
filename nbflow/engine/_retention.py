"""Removing finished workflows from the database: ``delete_workflow`` and ``prune``.

Both go through the write path: what was written so far is made durable first (so a workflow
that has just ended is seen ended, and nothing of it is committed after its deletion), a workflow
running in this runtime is never removed, and the store removes a workflow only if it is
finished in the deleting transaction itself (:meth:`~nbflow.store.Store.delete_workflows`): on
PostgreSQL a workflow another process resumed meanwhile stays. What a deletion removes: the
workflow's row, its steps (and events), its stream items and the messages addressed to it. The
step cache stays (it is shared by workflows: ``nbflow.clear_cache`` clears it).

A stream reader or live view reading a workflow that is deleted meanwhile ends with
:class:`~nbflow.WorkflowNotFoundError` (see :class:`~nbflow.engine._reader.StreamReader`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import Any

from nbflow._errors import InvalidValueError, WorkflowRunningError
from nbflow._records import Status
from nbflow._serialization import check_text
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Executions
from nbflow.engine._history import History
from nbflow.store._base import Related
from nbflow.text._status import status_choices
from nbflow.text._tables import INTERNAL_WORKFLOWS
from nbflow.workflow._calls import check_flag

__all__ = ["Retention", "age_seconds"]

_FINAL = tuple(s.value for s in Status if s.is_final)


def age_seconds(older_than: float | dt.timedelta) -> float:
    """``older_than`` (seconds, or a timedelta) in seconds, > 0.

    Raises:
        InvalidValueError: Not a number or timedelta, or not more than zero.
    """
    seconds = older_than.total_seconds() if isinstance(older_than, dt.timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise InvalidValueError(
            "older_than must be an age: seconds (a number > 0) or a datetime.timedelta, e.g. "
            f"older_than=dt.timedelta(days=30), not {older_than!r}.",
            what="older_than",
            value=older_than,
        )
    if seconds == float("inf"):
        raise InvalidValueError(
            "older_than must be a finite age.", what="older_than", value=older_than
        )
    return float(seconds)


def _statuses(status: str | Status | Iterable[str | Status] | None) -> list[str]:
    """The finished statuses ``status`` names (None: every one)."""
    if status is None:
        return list(_FINAL)
    single = isinstance(status, (str, Status)) or not isinstance(status, Iterable)
    items: list[Any] = [status] if single else list(status)  # type: ignore[arg-type]
    parsed = []
    for item in items:
        try:
            found = Status.parse(item)
        except (ValueError, TypeError, AttributeError):
            raise InvalidValueError(
                f"status must be a workflow status or a list of them ({status_choices(_FINAL)}), "
                f"not {status!r}.",
                what="status",
                value=status,
            ) from None
        if not found.is_final:
            raise InvalidValueError(
                f"prune removes finished workflows only: status={item!r} ({found.value}) is never "
                f"pruned. Use {status_choices(_FINAL)} (or cancel the workflows first).",
                what="status",
                value=status,
            )
        parsed.append(found.value)
    return list(dict.fromkeys(parsed))


class Retention:
    """Deleting workflows of one runtime."""

    def __init__(self, engine: Engine, executions: Executions, history: History) -> None:
        self._engine = engine
        self._executions = executions
        self._history = history

    def delete(self, workflow_id: str, *, delete_children: bool = False) -> int:
        """Delete a finished workflow (see :meth:`nbflow.Runtime.delete_workflow`)."""
        check_text(workflow_id, "A workflow id")
        check_flag(delete_children, "delete_children")
        self._engine.check_open()
        self._engine.flush()  # a workflow that has just ended is durably ended
        row = self._history.row(workflow_id)
        self._refuse_running(workflow_id, row.status, workflow_id)
        ids = [workflow_id]
        if delete_children:
            for child in self._descendants(workflow_id):
                self._refuse_running(child.workflow_id, child.status, workflow_id)
                ids.append(child.workflow_id)
        deleted = self._engine.store.delete_workflows(ids)
        self._deleted(ids)
        if deleted < len(ids):  # started again meanwhile, by another process
            status = self._engine.store.get_status(workflow_id) or row.status
            if status not in _FINAL:
                raise WorkflowRunningError(workflow_id, status)
        return deleted

    def prune(
        self,
        older_than: float | dt.timedelta,
        status: str | Status | Iterable[str | Status] | None = None,
        *,
        dry_run: bool = False,
    ) -> int:
        """Delete finished workflows created more than ``older_than`` ago (see
        :meth:`nbflow.Runtime.prune`); how many."""
        before = time.time() - age_seconds(older_than)
        statuses = _statuses(status)
        self._engine.check_open()
        self._engine.flush()
        store = self._engine.store
        ids = store.prunable(before, statuses, sorted(INTERNAL_WORKFLOWS))
        with self._executions.lock:
            ids = [i for i in ids if i not in self._executions]
        if dry_run:
            return len(ids)
        deleted = store.delete_workflows(ids)
        self._deleted(ids)
        return deleted

    def delete_recorded(self, workflow_id: str, function_ids: Iterable[int]) -> int:
        """Delete steps of a record-keeping workflow (see :meth:`nbflow.Runtime.delete_recorded`)."""
        check_text(workflow_id, "A workflow id")
        ids = list(function_ids)
        if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise InvalidValueError(
                f"function_ids must be step numbers (int), not {ids!r}.",
                what="function_ids",
                value=ids,
            )
        self._engine.check_open()
        self._engine.flush()
        deleted = self._engine.store.delete_records(workflow_id, ids)
        if deleted:
            self.collect_value_files()  # (a cell's variables may be kept in files)
        return deleted

    def _refuse_running(self, workflow_id: str, status: str, asked: str) -> None:
        if status not in _FINAL:
            raise WorkflowRunningError(workflow_id, status, asked)
        if workflow_id in self._executions:  # ended, and its end is not yet all done
            raise WorkflowRunningError(workflow_id, Status.PENDING.value, asked)

    def _descendants(self, workflow_id: str) -> list[Related]:
        """Every workflow ``workflow_id`` started, recursively (children before grandchildren)."""
        found: list[Related] = []
        seen = {workflow_id}
        level: Sequence[str] = [workflow_id]
        while level:
            children = [c for c in self._engine.store.children(level) if c.workflow_id not in seen]
            seen.update(c.workflow_id for c in children)
            found += children
            level = [c.workflow_id for c in children]
        return found

    def _deleted(self, ids: Sequence[str]) -> None:
        """Tell this runtime's readers and records that these workflows may be gone, and remove
        the value files (large values beside a DuckDB file) no row refers to any more."""
        self._history.forget(ids)
        for workflow_id in ids:
            self._engine.notifier.changed(workflow_id)
        if ids:
            self.collect_value_files()

    def collect_value_files(self) -> int:
        """Remove the value files no committed row refers to; a file this process wrote is
        kept while a workflow runs here (its row may not be appended yet)."""
        with self._executions.lock:
            settled = not len(self._executions)
        return self._engine.collect_value_files(settled=settled)
