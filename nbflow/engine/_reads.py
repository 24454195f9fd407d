"""The runtime's history reads: steps, streams, workflows by filters, step statistics, a stream
as a frame.

:class:`HistoryReads` is a part of :class:`~nbflow.Runtime` (its base): each method checks its
arguments (:mod:`nbflow.engine._queries`) and asks the runtime's
:class:`~nbflow.engine._history.History`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbflow._records import Records, Status, StepInfo, StepStats, StreamInfo, WorkflowInfo
from nbflow._serialization import check_text
from nbflow.engine._messages import get_events
from nbflow.engine._queries import Moment, step_stats_query, workflow_query

if TYPE_CHECKING:
    import pandas

    from nbflow.engine._core import RuntimeCore
    from nbflow.engine._execution import Execution
    from nbflow.engine._workflows import WorkflowRun

__all__ = ["HistoryReads"]


class HistoryReads:
    """The history's filtered reads of a :class:`~nbflow.Runtime`."""

    _core: RuntimeCore

    def list_steps(self, workflow_id: str) -> Records[StepInfo]:
        """A workflow's recorded steps, in order."""
        return self._core.history.list_steps(workflow_id)

    def list_streams(self, workflow_id: str) -> Records[StreamInfo]:
        """A workflow's streams, by key."""
        return self._core.history.list_streams(workflow_id)

    def get_events(self, workflow_id: str) -> dict[str, Any]:
        """Every event a workflow set (:func:`nbflow.set_event`), each key's last value: from a
        workflow body one checkpoint, so a replay gets what the first run got."""
        check_text(workflow_id, "A workflow id")
        return get_events(self._core.engine, self._event_body(), workflow_id)

    def _event_body(self) -> tuple[Execution, WorkflowRun] | None:
        """The execution and body of the workflow this thread runs, if any (an event read from
        a body is checkpointed)."""
        body = self._core.body()
        return None if body is None else (body.ex, body)

    def list_workflows(
        self,
        *,
        status: str | Status | Sequence[str | Status] | None = None,
        name: str | None = None,
        id_prefix: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        queue: str | None = None,
        parent_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
        newest_first: bool = True,
        include_internal: bool = False,
    ) -> Records[WorkflowInfo]:
        """Workflows (including those started a moment ago), newest first; every filter given
        must hold. One query, whatever the filters.

        Args:
            status: A status, or a list of them: only workflows with one of them.
            name: Only workflows with this registered name.
            id_prefix: Only workflows whose id starts with it, taken literally (``_`` and ``%``
                are not wildcards).
            since: Only workflows created at or after it: a :class:`datetime.datetime` (any time
                zone; a naive one is local time) or epoch seconds.
            until: Only workflows created before it (as ``since``).
            queue: Only workflows enqueued on this queue.
            parent_id: Only the children of this workflow.
            offset: Skip this many first (for pages).
            limit: At most this many.
            newest_first: Newest first by creation time (False: oldest first).
            include_internal: Also nbflow's own record-keeping workflows (those of durable
                cells, and ``record_step``'s ``nbflow.record``), left out unless ``name`` names
                them.

        Raises:
            InvalidValueError: A bad value (a negative offset or limit, an unknown status, a
                ``since`` that is neither a datetime nor a number), naming the argument.
        """
        query = workflow_query(
            status=status,
            name=name,
            id_prefix=id_prefix,
            since=since,
            until=until,
            queue=queue,
            parent_id=parent_id,
            offset=offset,
            limit=limit,
            newest_first=newest_first,
            include_internal=include_internal,
        )
        return self._core.history.list_workflows(query)

    def step_stats(
        self, *, name: str | None = None, since: Moment | None = None, until: Moment | None = None
    ) -> Records[StepStats]:
        """Statistics of the recorded steps, one :class:`~nbflow.StepStats` per step name, by
        name, computed by the database in one query.

        nbflow's own operations recorded as steps (``nbflow.sleep``, ``nbflow.recv(…)``,
        ``nbflow.start(…)``: names starting ``nbflow.``) are left out unless ``name`` names one.

        Args:
            name: Only the steps of this name.
            since: Only steps started at or after it: a datetime (naive: local time) or epoch
                seconds.
            until: Only steps started before it.
        """
        query = step_stats_query(name=name, since=since, until=until)
        return self._core.history.step_stats(query)

    def read_stream_frame(self, workflow_id: str, key: str) -> pandas.DataFrame:
        """A stream's items as a pandas DataFrame indexed by ``offset``: a column per key when
        every item is a dict, else one column ``value``.

        It reads the items there are now, from offset 0, without waiting: for a workflow that is
        still running, the items written so far. Needs the extra ``nbflow[pandas]``.
        """
        from nbflow import _frames

        return _frames.stream_frame(self._core.history.stream_items(workflow_id, key))
