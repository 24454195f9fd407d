"""What the committer and other processes report about the workflows running here.

After each commit the committer thread reports what became durable (final statuses wake their
waiters, committed rows go to readers) and which workflows' writes the store left out: another
process cancelled them, or took them over while this one was judged dead (PostgreSQL's fencing).
The listener thread reports workflows other processes changed. :class:`Reports` turns both into
changes of the executions running here.
"""

from __future__ import annotations

from nbflow._errors import TAKEN_OVER
from nbflow._records import Status
from nbflow.engine._execution import Executions
from nbflow.engine._notify import Notifier
from nbflow.store import Store
from nbflow.store._ops import Finish, Op

__all__ = ["Reports"]


class Reports:
    """Applies reports to the executions of one runtime.

    Args:
        executions: The workflows running here.
        notifier: Wakes readers and waiters.
        store: Where a left-out workflow's status is looked up.
    """

    def __init__(self, executions: Executions, notifier: Notifier, store: Store) -> None:
        self._executions = executions
        self._notifier = notifier
        self._store = store

    def committed(self, batch: list[Op], left_out: set[str]) -> None:
        """A batch is durable (committer thread): note final statuses, wake readers; and the
        workflows whose writes the store left out stop: another process cancelled them, or took
        them over (this one was judged dead meanwhile)."""
        executions, notifier = self._executions, self._notifier
        for op in batch:
            if type(op) is Finish:
                ex = executions.get(op.workflow_id)
                if ex is not None:
                    ex.ended(op.status)
        notifier.published(batch)
        for workflow_id in left_out:
            ex = executions.get(workflow_id)
            if ex is not None:
                if self._store.get_status(workflow_id) == Status.CANCELLED:
                    ex.cancelled_elsewhere()
                    ex.ended(Status.CANCELLED.value)
                else:
                    ex.interrupt(TAKEN_OVER)
            notifier.changed(workflow_id)

    def changed_elsewhere(self, workflow_ids: set[str]) -> None:
        """Other processes changed these workflows (listener thread): readers look again, and
        a workflow running here that was cancelled elsewhere stops."""
        for workflow_id in workflow_ids:
            self._notifier.changed(workflow_id)
            ex = self._executions.get(workflow_id)
            if ex is not None and ex.running and self._store.get_status(workflow_id) == "CANCELLED":
                ex.cancelled_elsewhere()
