"""The runtime's removals: finished workflows, old ones, durable cells' records, value files.

:class:`Removals` is a part of :class:`~nbflow.Runtime` (its base): each method asks the
runtime's :class:`~nbflow.engine._retention.Retention` or engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from nbflow._records import Status

if TYPE_CHECKING:
    from nbflow.engine._core import RuntimeCore

__all__ = ["Removals"]


class Removals:
    """What a :class:`~nbflow.Runtime` removes from its database."""

    _core: RuntimeCore

    def delete_workflow(self, workflow_id: str, *, delete_children: bool = False) -> int:
        """Delete a finished workflow with its steps, events, stream items and the messages
        addressed to it (not the step cache); with ``delete_children`` the workflows it started,
        recursively, each finished. Returns how many workflows were deleted.

        Raises:
            WorkflowNotFoundError: No workflow has this id.
            WorkflowRunningError: It (or a child) is PENDING, ENQUEUED or DELAYED: nothing was deleted.
        """
        return self._core.retention.delete(workflow_id, delete_children=delete_children)

    def prune(
        self,
        *,
        older_than: float | dt.timedelta,
        status: str | Status | Iterable[str | Status] | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete the finished workflows (of ``status``: one or a list; None: all finished)
        created more than ``older_than`` (seconds > 0, or a timedelta) ago; how many.

        Each is judged by itself (a young child of a pruned parent stays); never a running one,
        nor durable cells' records. ``dry_run``: count only. The file shrinks at :meth:`close`.
        """
        return self._core.retention.prune(older_than, status, dry_run=dry_run)

    def delete_recorded(self, workflow_id: str, function_ids: Iterable[int]) -> int:
        """Delete steps of a record-keeping workflow by function id; how many."""
        return self._core.retention.delete_recorded(workflow_id, function_ids)

    def collect_value_files(self) -> int:
        """Remove the files of large values (beside a DuckDB file) that no row refers to any more;
        how many were removed (``prune`` and ``delete_workflow`` call it). A file whose row may
        not be committed yet (written while a workflow of this process runs) is kept."""
        return self._core.retention.collect_value_files()
