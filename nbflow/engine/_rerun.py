"""Runs that notice changed code: what changed since a workflow ran, and its re-run.

A resume replays (deterministic); a *re-run* is a new workflow, ``<id>.2`` (``.3``, …), over the
same inputs, that takes the old run's checkpoints where they still hold: a step call whose name,
code and arguments match one takes its output without running (:class:`~nbflow.engine._code.Reuse`).
So fixing ``parse`` in ``for url in urls: rows.append(parse(fetch(url)))`` runs every ``parse``
again and no ``fetch``; a body that now calls something else simply runs it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from nbflow._fingerprint import fingerprint
from nbflow.engine._code import Reuse, code_of_step
from nbflow.engine._lifecycle import Lifecycle
from nbflow.store import Store, WorkflowRow
from nbflow.text._tables import step_label
from nbflow.workflow._calls import WorkflowCall
from nbflow.workflow._handle import WorkflowHandle
from nbflow.workflow._steps import lookup_step
from nbflow.workflow._workflows import lookup_workflow

__all__ = ["CodeChanges", "RerunPlan", "code_changes", "next_run_id", "rerun"]


class CodeChanges(NamedTuple):
    """What changed in a workflow's code since a run of it.

    Attributes:
        body: Whether the body's fingerprint (which covers what it calls) differs.
        steps: The names of the recorded steps whose code differs now.
    """

    body: bool
    steps: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.body or bool(self.steps)

    def describe(self) -> str:
        """``step 'parse' changed``, ``steps 'a', 'b' changed``, ``the workflow's code changed``."""
        if not self.steps:
            return "the workflow's code changed"
        names = ", ".join(repr(step_label(n)) for n in self.steps)
        return f"step {names} changed" if len(self.steps) == 1 else f"steps {names} changed"


class RerunPlan(NamedTuple):
    """A re-run to make: its id, and what changed since the run it re-runs."""

    new_id: str
    changes: CodeChanges


def code_changes(store: Store, row: WorkflowRow) -> CodeChanges:
    """What changed since the workflow ``row`` ran (its function must be declared here)."""
    wf = lookup_workflow(row.name)
    body = wf is not None and row.code is not None and fingerprint(wf.fn) != row.code
    recorded: dict[str, str] = {}
    for step in store.list_steps(row.workflow_id, outputs=False):
        if step.code is not None:
            recorded.setdefault(step.name, step.code)
    steps = []
    for name, code in recorded.items():
        declared = lookup_step(name)
        if declared is not None and fingerprint(code_of_step(declared.step)) != code:
            steps.append(name)
    return CodeChanges(body, tuple(sorted(steps)))


def next_run_id(store: Store, workflow_id: str) -> str:
    """The id of the next run of the same call: ``<id>.2``, or ``<base>.<n+1>`` for ``<base>.<n>``."""
    base, number = workflow_id, 2
    found = re.fullmatch(r"(.+)\.(\d+)", workflow_id)
    if found is not None and store.get_status(found[1]) is not None:
        base, number = found[1], int(found[2]) + 1
    while store.get_status(f"{base}.{number}") is not None:
        number += 1
    return f"{base}.{number}"


def rerun(lifecycle: Lifecycle, store: Store, row: WorkflowRow, new_id: str) -> WorkflowHandle:
    """Run the workflow ``row`` again as ``new_id``, taking its checkpoints where they hold.

    An interrupted ``row`` is cancelled first (the new run supersedes it: ``recover()`` must not
    run it too).
    """
    wf = lookup_workflow(row.name)
    assert wf is not None
    if row.status == "PENDING":
        lifecycle.cancel(row.workflow_id)
    args, kwargs = lifecycle.inputs(row)
    reuse = Reuse(row.workflow_id, store.list_steps(row.workflow_id))
    return lifecycle.begin_child(WorkflowCall(wf, args, kwargs, new_id), reuse=reuse)
