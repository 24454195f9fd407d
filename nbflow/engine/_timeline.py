"""What a timeline shows of a workflow: it and its children, gathered from the store.

:func:`gather_timeline` reads a workflow with :meth:`~nbflow.store.Store.timeline_rows`, then its
children and theirs, breadth first, bounded: at most :data:`MAX_DEPTH` levels below it and
:data:`MAX_WORKFLOWS` workflows in all (the others are counted, not read). :mod:`nbflow.engine._timelayout`
turns the result into rows of a chart.
"""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

from nbflow._errors import WorkflowNotFoundError
from nbflow._records import Status
from nbflow.store import Store
from nbflow.store._sqltimeline import TimelineRows, TimelineStep, TimelineTick, TimelineWorkflow

__all__ = ["MAX_DEPTH", "MAX_WORKFLOWS", "TimelineData", "TimelineNode", "gather_timeline"]

MAX_DEPTH = 3  # levels of children read below the workflow
MAX_WORKFLOWS = 50  # workflows read in all (the workflow and its descendants)
ROOT_TICKS = 2000  # stream writes read of the workflow (thinned beyond)
CHILD_TICKS = 200  # … and of each child


class TimelineNode(NamedTuple):
    """One workflow of a timeline.

    Attributes:
        workflow: Its span and status.
        steps: Its steps' spans, by function id.
        ticks: Its stream writes, thinned (see :mod:`nbflow.store._sqltimeline`).
        children: Its children that were read, oldest first.
        more_children: How many of its children were not read (past the bounds).
        depth: 0 for the workflow the timeline is of, 1 for its children, …
    """

    workflow: TimelineWorkflow
    steps: list[TimelineStep]
    ticks: list[TimelineTick]
    children: list[TimelineNode]
    more_children: int
    depth: int

    @property
    def final(self) -> bool:
        """Whether this workflow and every child read have ended."""
        ended = Status(self.workflow.status).is_final
        return ended and all(child.final for child in self.children)


class TimelineData(NamedTuple):
    """A workflow and its children as a timeline draws them, read at ``now`` (epoch seconds)."""

    root: TimelineNode
    now: float

    @property
    def final(self) -> bool:
        """Whether nothing drawn can change any more (every workflow read has ended)."""
        return self.root.final

    @property
    def start(self) -> float:
        """When the workflow was created: the left end of the time axis."""
        return self.root.workflow.created_at

    @property
    def end(self) -> float:
        """The right end of the time axis: the last end of anything drawn, or ``now`` while
        something runs."""
        ends = [self.start]
        for node in self.nodes():
            w = node.workflow
            ends.append(w.ended_at if w.ended_at is not None else max(w.updated_at, self.now))
            ends.extend(step.ended_at for step in node.steps)
            ends.extend(tick.created_at for tick in node.ticks)
        return max(ends)

    def nodes(self) -> list[TimelineNode]:
        """Every workflow read, depth first (the workflow, then each child with its own)."""
        found: list[TimelineNode] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.children))
        return found


def gather_timeline(
    store: Store, workflow_id: str, *, database: str | None = None, now: float | None = None
) -> TimelineData:
    """Read a workflow and its children (bounded: see the module docstring).

    Args:
        store: The store to read.
        workflow_id: The workflow.
        database: Where the store is, for the error message.
        now: The time of the reading (default: the clock's).

    Raises:
        WorkflowNotFoundError: No workflow has this id.
    """
    now = time.time() if now is None else now
    rows = store.timeline_rows(workflow_id, max_ticks=ROOT_TICKS, max_children=MAX_WORKFLOWS)
    if rows is None:
        raise WorkflowNotFoundError(workflow_id, database)
    read: dict[str, tuple[TimelineRows, int]] = {workflow_id: (rows, 0)}
    queue = deque([(rows, 0)])
    while queue:
        parent, depth = queue.popleft()
        if depth >= MAX_DEPTH:
            continue
        for child in parent.children:
            if len(read) >= MAX_WORKFLOWS or child.workflow_id in read:
                continue
            found = store.timeline_rows(
                child.workflow_id, max_ticks=CHILD_TICKS, max_children=MAX_WORKFLOWS
            )
            if found is not None:
                read[child.workflow_id] = (found, depth + 1)
                queue.append((found, depth + 1))
    return TimelineData(_node(workflow_id, read), now)


def _node(workflow_id: str, read: dict[str, tuple[TimelineRows, int]]) -> TimelineNode:
    """The node of ``workflow_id`` with the children that were read (recursively)."""
    rows, depth = read[workflow_id]
    children = [
        _node(child.workflow_id, read)
        for child in rows.children
        if child.workflow_id in read and read[child.workflow_id][1] == depth + 1
    ]
    more = rows.more_children + len(rows.children) - len(children)
    return TimelineNode(rows.workflow, rows.steps, rows.ticks, children, more, depth)
