"""What a live view reads from a workflow's record: whether something runs it, where it failed.

Plain functions over a :class:`~nbflow.store.WorkflowRow` (and the runtime for the questions only
it can answer); nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import re

from nbflow.engine._runtime import Runtime
from nbflow.store import WorkflowRow

__all__ = ["failure", "latest_start", "runs"]

_STEP_NOTE = re.compile(r"raised in step '(?P<step>.+?)'(?: \(attempt \d+ of \d+\))?")
_MAP_NOTE = re.compile(r"nbflow\.map: (?P<item>.+) failed in step '(?P<step>.+)'")
_MAIN = "__main__."


def runs(runtime: Runtime, row: WorkflowRow) -> bool:
    """Whether something runs the workflow of ``row``: an execution of ``runtime``, or (on a
    shared database) a live executor of another process. A PENDING workflow that nothing runs
    is interrupted; a workflow of any other status counts as running (it is not interrupted).

    Args:
        runtime: The runtime of the view.
        row: The workflow's record.

    Returns:
        Whether it runs.
    """
    if runtime.execution(row.workflow_id) is not None or row.status != "PENDING":
        return True
    if row.executor_id is None or row.executor_id == runtime.executor_id:
        return False  # this process runs it no more (its execution would be found)
    return runtime.store.executor_alive(row.executor_id)


def latest_start(runtime: Runtime, row: WorkflowRow, *, was_interrupted: bool = False) -> float:
    """When the workflow of ``row`` last started running: its creation for a first run, its
    resume for a resumed one (rates and elapsed times leave out the idle gap before it).

    A resume by another process (PostgreSQL) writes its time as ``updated_at``; a resume here is
    the start of this runtime's execution, when it replays recorded steps or when the caller saw
    it interrupted before (DuckDB's claim leaves ``updated_at`` as it was).

    Args:
        runtime: The runtime of the view.
        row: The workflow's record (PENDING).
        was_interrupted: Whether the caller saw it interrupted before.

    Returns:
        The time, in seconds since the epoch.
    """
    ex = runtime.execution(row.workflow_id)
    if ex is not None and (was_interrupted or ex.recorded):
        return max(row.updated_at, ex.started)
    return row.updated_at


def failure(error: str, step_name: str | None = None) -> str:
    """A recorded error as a person reads it, naming the step (and ``map`` item) that raised it:
    ``failed in step `parse_batch` (item 5 of 9): ValueError: could not parse batch 5``.

    Args:
        error: The workflow's recorded error: ``Type: message``, then its notes, one a line
            (``raised in step 'parse'``, ``nbflow.map: item 5 of 9 failed in step 'parse'``).
        step_name: The name of the step the record says ended the workflow (``error_step``), if
            known: used when no note names one.

    Returns:
        The text; the error as it is when no step is known.
    """
    lines, step, item = [], step_name or "", ""
    for line in error.split("\n"):
        if (mapped := _MAP_NOTE.fullmatch(line)) is not None:
            step, item = mapped["step"], mapped["item"]
        elif (raised := _STEP_NOTE.fullmatch(line)) is not None:
            step = step if item else raised["step"]
        else:
            lines.append(line)
    message = "\n".join(lines).strip("\n")
    if not step:
        return message
    step = step[len(_MAIN) :] if step.startswith(_MAIN) else step
    return f"failed in step `{step}`{f' ({item})' if item else ''}: {message}"
