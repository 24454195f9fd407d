"""Tables for people: workflows and steps as the ``nbflow`` command and the ``%nbflow`` magics
show them.

:func:`workflow_columns` and :func:`step_columns` give the curated columns (header words a person
reads, durations with units, local times, status words, step names without ``__main__.``) as
text; :func:`format_table` lays them out for a terminal, and the notebook layer builds its HTML
table from the same columns. nbflow's own workflows (the record keeping of durable cells,
:data:`INTERNAL_WORKFLOWS`) are left out by ``list_workflows`` unless asked for.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from nbflow.text._format import format_duration, format_time, status_word, truncate

__all__ = [
    "FOLD_ABOVE",
    "INTERNAL_WORKFLOWS",
    "error_summary",
    "fold_rows",
    "format_table",
    "is_internal",
    "more_row",
    "schedule_columns",
    "schedule_table",
    "step_columns",
    "step_label",
    "step_table",
    "table_duration",
    "workflow_columns",
    "workflow_table",
]

T = TypeVar("T")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A text table: the headers, a rule of dashes, then one line per row; columns left-aligned.

    Args:
        headers: The columns' names.
        rows: The rows, one value per column (shown with ``str``).

    Returns:
        The table's lines, without a final newline.
    """
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


#: The registered names of nbflow's own workflows, which tables leave out unless asked for them:
#: record keeping (that of durable cells, and ``Runtime.record_step``'s default).
INTERNAL_WORKFLOWS = frozenset({"nbflow.notebook", "nbflow.record"})


def is_internal(workflow: Any) -> bool:
    """Whether a workflow is nbflow's own record keeping (:data:`INTERNAL_WORKFLOWS`).

    Args:
        workflow: A ``WorkflowInfo`` (or anything with its ``name``).

    Returns:
        True for an internal workflow.
    """
    return getattr(workflow, "name", None) in INTERNAL_WORKFLOWS


def step_label(name: str) -> str:
    """A step's (or workflow's) name as a person reads it: ``__main__.parse`` is ``parse``;
    others stay whole.

    Args:
        name: The step's recorded name (module and qualified name).

    Returns:
        The name without ``__main__.``.
    """
    return name.removeprefix("__main__.")


def table_duration(seconds: float | None) -> str:
    """A duration in a table: ``350 ms`` below a second (``<1 ms`` below a millisecond), else as
    :func:`~nbflow.text._format.format_duration` says it (``1.20 s``, ``2 min 05 s``); ``''`` for None.

    Args:
        seconds: The duration in seconds, or None (not ended).

    Returns:
        The duration's text.
    """
    if seconds is None or seconds >= 0.9995:  # (what would round to 1000 ms)
        return format_duration(seconds)
    return "<1 ms" if seconds < 0.0005 else f"{seconds * 1000:.0f} ms"


def error_summary(error: str | None, width: int = 80) -> str:
    """A recorded error on one line: its lines (``Type: message``, then the notes saying where
    it was raised) joined by `` · ``, cut to ``width`` characters.

    Args:
        error: The recorded error's text, or None.
        width: The most characters kept.

    Returns:
        The line (``''`` for None).
    """
    lines = [" ".join(line.split()) for line in (error or "").splitlines()]
    return truncate(" · ".join(line for line in lines if line), width)


def workflow_columns(
    workflows: Sequence[Any],
    *,
    running: Callable[[Any], bool] | None = None,
    error_width: int = 80,
) -> tuple[list[str], list[list[str]]]:
    """The columns of a workflow table and its rows, as text: id, name (without ``__main__.``),
    status, queue (when one has a queue), started, duration and error.

    Args:
        workflows: The workflows (``nbflow.WorkflowInfo`` records, or anything with their
            fields).
        running: Says whether a PENDING workflow runs (False: ``interrupted``); None: it does.
        error_width: The most characters of an error kept.

    Returns:
        The headers, and one row of texts per workflow.
    """
    queues = any(w.queue for w in workflows)
    headers = ["id", "name", "status", *(["queue"] if queues else []), "started", "duration"]
    rows = [
        [
            w.workflow_id,
            step_label(w.name),
            status_word(w.status, running_here=running is None or running(w)),
            *([w.queue or ""] if queues else []),
            format_time(w.created_at),
            table_duration(w.duration),
            error_summary(w.error, error_width),
        ]
        for w in workflows
    ]
    return [*headers, "error"], rows


def step_columns(
    steps: Sequence[Any], *, started: bool = False, error_width: int = 80
) -> tuple[list[str], list[list[str]]]:
    """The columns of a step table and its rows, as text: #, step, call, (argument,) status,
    (started,) duration, attempts and error.

    ``#`` counts the steps from 1 as a person does (``StepInfo.function_id`` is the step's
    position among all the workflow's operations: 2, 5, 8, …). ``call`` says which call of its
    step a row is, ``3 of 40`` (a ``nbflow.map``'s items are its step's calls, in the items'
    order), and is empty for a step called once. ``argument`` is the call's arguments in a few
    characters (``StepInfo.arguments``: a map item's is its item), shown when any step has them.

    Args:
        steps: The steps (``nbflow.StepInfo`` records, or anything with their fields).
        started: Whether to show when each started too (a column after the status).
        error_width: The most characters of an error kept.

    Returns:
        The headers, and one row of texts per step.
    """
    when = ["started"] if started else []
    shown = any(getattr(s, "arguments", None) for s in steps)
    argument = ["argument"] if shown else []
    headers = ["#", "step", "call", *argument, "status", *when, "duration", "attempts", "error"]
    calls = collections.Counter(s.name for s in steps)
    seen: collections.Counter[str] = collections.Counter()
    rows = []
    for number, s in enumerate(steps, start=1):
        seen[s.name] += 1
        rows.append(
            [
                str(number),
                step_label(s.name),
                f"{seen[s.name]:,} of {calls[s.name]:,}" if calls[s.name] > 1 else "",
                *([getattr(s, "arguments", None) or ""] if shown else []),
                status_word(s.status),
                *([format_time(s.started_at)] if started else []),
                table_duration(s.duration),
                str(s.attempts),
                error_summary(s.error, error_width),
            ]
        )
    return headers, rows


#: A table of more rows than this folds (:func:`fold_rows`) to its first and last rows.
FOLD_ABOVE = 25
_FOLD_HEAD, _FOLD_TAIL = 10, 10


def fold_rows(rows: list[T], gap: Callable[[int], T]) -> list[T]:
    """The rows of a long table folded: the first and last ten, and between them ``gap(n)``, a
    row saying that ``n`` more are not shown; up to :data:`FOLD_ABOVE` rows stay whole.

    Args:
        rows: The table's rows.
        gap: Makes the row that stands for ``n`` rows left out.

    Returns:
        The rows shown.
    """
    if len(rows) <= FOLD_ABOVE:
        return rows
    hidden = len(rows) - _FOLD_HEAD - _FOLD_TAIL
    return [*rows[:_FOLD_HEAD], gap(hidden), *rows[-_FOLD_TAIL:]]


def more_row(headers: list[str], hidden: int, hint: str, column: str = "step") -> list[str]:
    """The row of a folded table: ``… 20 more (--all shows all)`` under ``column``."""
    return [f"… {hidden:,} more ({hint})" if h == column else "" for h in headers]


def workflow_table(
    workflows: Sequence[Any], *, running: Callable[[Any], bool] | None = None
) -> str:
    """Workflows as a text table (:func:`workflow_columns`).

    Args:
        workflows: The workflows (``nbflow.WorkflowInfo`` records, or anything with their
            fields).
        running: Says whether a PENDING workflow runs (False: ``interrupted``); None: it does.

    Returns:
        The table (:func:`format_table`).
    """
    return format_table(*workflow_columns(workflows, running=running))


def step_table(
    steps: Sequence[Any], *, started: bool = False, everything: bool = False, hint: str = "--all"
) -> str:
    """Steps as a text table (:func:`step_columns`), folded when long (:func:`fold_rows`).

    Args:
        steps: The steps (``nbflow.StepInfo`` records, or anything with their fields).
        started: Whether to show when each started too (a column after the status).
        everything: Show every row (no fold).
        hint: The option that shows all, named in the fold's row.

    Returns:
        The table (:func:`format_table`).
    """
    headers, rows = step_columns(steps, started=started)
    if not everything:
        rows = fold_rows(rows, lambda n: more_row(headers, n, f"{hint} shows all"))
    return format_table(headers, rows)


def schedule_columns(schedules: Sequence[Any]) -> tuple[list[str], list[list[str]]]:
    """The columns of a table of schedules and its rows, as text: schedule (its workflow's
    name, without ``__main__.``), cron and next tick (local time).

    Args:
        schedules: The schedules (``nbflow.ScheduleInfo`` records, or anything with their
            fields).

    Returns:
        The headers, and one row of texts per schedule.
    """
    rows = [[step_label(s.name), s.cron, format_time(s.next_tick)] for s in schedules]
    return ["schedule", "cron", "next tick"], rows


def schedule_table(schedules: Sequence[Any]) -> str:
    """Schedules as a text table (:func:`schedule_columns`)."""
    return format_table(*schedule_columns(schedules))
