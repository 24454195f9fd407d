"""The tables of ``%nbflow list``, ``%nbflow steps`` and ``%nbflow stats``: HTML in a notebook, text elsewhere.

Both show the curated columns of :mod:`nbflow.text._tables` (the ``nbflow`` command's text tables):
header words a person reads, durations with units, local times that do not wrap, status words
(coloured in HTML), step and workflow names without ``__main__.``. The records stay as
``list_workflows`` and ``list_steps`` return them: a table is a list of them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import nbflow
from nbflow._records import Records
from nbflow.notebook._theme import muted, text_colour
from nbflow.text._options import stats_columns
from nbflow.text._tables import (
    fold_rows,
    format_table,
    more_row,
    schedule_columns,
    step_columns,
    workflow_columns,
)
from nbflow.text._tables import step_table as step_table_text

__all__ = [
    "Table",
    "running_here",
    "schedule_table",
    "stats_table",
    "step_table",
    "workflow_table",
]

#: Columns aligned right (numbers).
_RIGHT = frozenset(
    {"#", "duration", "attempts", "count", "errors", "retries", "p50", "p95", "max", "total"}
)
#: The colour of each status word: the live views' kinds (:mod:`nbflow.notebook._theme`).
_COLOURS = {
    "succeeded": text_colour("success"),
    "failed": text_colour("danger"),
    "cancelled": text_colour("warning"),
    "gave up": text_colour("danger"),
    "running": text_colour("info"),
    "enqueued": text_colour("info"),
    "delayed": text_colour("info"),
    "interrupted": muted(),
}
#: The most characters of an error the HTML table shows (all of it is in the cell's tooltip).
_HTML_ERROR_WIDTH = 160


class Table(Records[Any]):
    """Records shown as an HTML table in a notebook, and as the CLI's text table elsewhere.

    Args:
        records: The records.
        title: The line above the table.
        headers: The columns' header words.
        rows: One row of texts per record (:mod:`nbflow.text._tables`).
        text: The text table (:func:`~nbflow.text._tables.format_table`), shown outside HTML.
        tips: Per row, a tooltip per cell (the whole error where the cell shows part), or ``''``.
    """

    def __init__(
        self,
        records: Sequence[Any],
        title: str,
        headers: list[str],
        rows: list[list[str]],
        text: str,
        tips: list[list[str]] | None = None,
    ) -> None:
        super().__init__(records)
        self.title, self.headers, self.rows = title, headers, rows
        self.text = text if rows else "(none)"
        self.tips = tips or [[""] * len(headers) for _ in rows]

    def _repr_html_(self) -> str:
        title = f'<p style="margin:0 0 4px 0"><b>{html.escape(self.title)}</b></p>'
        if not self.rows:
            return title + "<p><em>(none)</em></p>"
        head = "".join(f"<th{_style(h)}>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>"
            + "".join(_cell(*cell) for cell in zip(self.headers, row, tips, strict=True))
            + "</tr>"
            for row, tips in zip(self.rows, self.tips, strict=True)
        )
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f'<div class="nbflow-table">{title}{table}</div>'

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"{self.title}\n{self.text}")


def _style(column: str, colour: str | None = None) -> str:
    """The ``style`` attribute of a cell (or header) of ``column``."""
    rules = ["text-align:right" if column in _RIGHT else "text-align:left"]
    rules.append("min-width:20em;max-width:40em" if column == "error" else "white-space:nowrap")
    if colour is not None:
        rules.append(colour)
    return f' style="{";".join(rules)}"'


def _cell(column: str, text: str, tip: str) -> str:
    """One ``<td>``: escaped, coloured for a status, with a tooltip when it shows part of it."""
    style = _style(column, _COLOURS.get(text) if column == "status" else None)
    title = f' title="{html.escape(tip)}"' if tip and tip != text else ""
    return f"<td{style}{title}>{html.escape(text)}</td>"


def running_here(rt: nbflow.Runtime) -> Callable[[Any], bool]:
    """Says whether a PENDING workflow runs: in this process, or possibly in another one that
    shares the database (PostgreSQL); otherwise it is interrupted."""
    shared = not rt.store.single_process
    return lambda w: shared or rt.execution(w.workflow_id) is not None


def workflow_table(rows: Sequence[Any], title: str, rt: nbflow.Runtime) -> Table:
    """The table of ``%nbflow list``.

    Args:
        rows: The workflows (``WorkflowInfo`` records).
        title: The line above the table.
        rt: The runtime they are in (to tell running workflows from interrupted ones).

    Returns:
        The table.
    """
    running = running_here(rt)
    headers, cells = workflow_columns(rows, running=running, error_width=_HTML_ERROR_WIDTH)
    text = format_table(*workflow_columns(rows, running=running))
    return Table(rows, title, headers, cells, text, _error_tips(headers, rows))


def step_table(steps: Sequence[Any], title: str, *, everything: bool = False) -> Table:
    """The table of ``%nbflow steps``: numbered from 1, each call's place among its step's
    calls, folded to its first and last rows when long (``… N more``).

    Args:
        steps: The steps (``StepInfo`` records).
        title: The line above the table.
        everything: Show every row (``--all``), not folded.

    Returns:
        The table.
    """
    headers, cells = step_columns(steps, started=True, error_width=_HTML_ERROR_WIDTH)
    tips = _error_tips(headers, steps)
    text = step_table_text(steps, started=True, everything=everything, hint="--all")
    if not everything:
        cells = fold_rows(cells, lambda n: more_row(headers, n, "--all shows all"))
        tips = fold_rows(tips, lambda n: [""] * len(headers))
    return Table(steps, title, headers, cells, text, tips)


def stats_table(stats: Sequence[Any], title: str) -> Table:
    """The table of ``%nbflow stats``: ``StepStats`` records under ``title``."""
    headers, cells = stats_columns(stats)
    return Table(stats, title, headers, cells, format_table(headers, cells))


def schedule_table(schedules: Sequence[Any]) -> Table:
    """The schedules declared in this kernel with their next tick, under ``%nbflow list``."""
    headers, cells = schedule_columns(schedules)
    return Table(schedules, "schedules", headers, cells, format_table(headers, cells))


def _error_tips(headers: list[str], records: Sequence[Any]) -> list[list[str]]:
    """Per record, its whole error under the ``error`` column (a tooltip), else ``''``."""
    return [[(r.error or "") if h == "error" else "" for h in headers] for r in records]
