"""A timeline's rows: how a workflow, its steps, streams and children become a Gantt chart.

Each workflow gets a row with its own span (coloured by its status; an error marker and its error
in the tooltip when it failed), then a row of ticks per stream it wrote to, then its steps, then
its children, each as a block of the same rows, indented. Steps:

- up to :data:`STEP_ROWS` steps: one row each, in the order they started (a ``map`` of 20 items
  is 20 rows);
- more: one group per step name (a ``map``'s items share one), its steps packed into lanes (a
  step goes on the first lane free at its start; so a map run 8 at a time takes 8 lanes), at most
  :data:`MAX_LANES` lanes a group (past that a step goes on the lane that frees first, drawn
  over), labelled ``name (count)``; at most :data:`MAX_GROUPS` groups, the other names' steps
  share one last group. The chart then draws, per lane, bars closer than a pixel as one
  (:mod:`nbflow.text._gantt`), so a 10,000-item map is a few lanes of at most a chart's width of
  rectangles each.

A step that ran more than once is orange with a retry marker; one that failed red with an error
marker; one that took its result from elsewhere (a step cache hit, a re-run's reuse) pale.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from nbflow._records import utc
from nbflow.engine._timeline import TimelineData, TimelineNode
from nbflow.store._sqltimeline import TimelineStep, TimelineWorkflow
from nbflow.text._format import format_duration, format_time, status_word
from nbflow.text._gantt import Bar, Chart, Row
from nbflow.text._tables import step_label

__all__ = ["MAX_GROUPS", "MAX_LANES", "STEP_ROWS", "timeline_chart"]

STEP_ROWS = 30  # steps of one workflow drawn a row each; more are grouped by name into lanes
MAX_LANES = 8  # lanes of one group
MAX_GROUPS = 12  # groups of one workflow (the others' steps share a last one)
_KINDS = {
    "SUCCESS": "success",
    "ERROR": "error",
    "CANCELLED": "cancelled",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "error",
}


def timeline_chart(data: TimelineData, *, interrupted: bool = False) -> Chart:
    """The chart of ``data`` (see the module docstring); ``interrupted``: the workflow is
    PENDING but nothing runs it (drawn grey up to its last change, not live)."""
    if interrupted:  # the axis ends at its last change, not now
        data = data._replace(now=_last_change(data))
    root = data.root.workflow
    rows: list[Row] = []
    _block(data, data.root, rows)
    if interrupted:
        (bar,) = rows[0].bars
        rows[0] = rows[0]._replace(bars=(bar._replace(kind="pending"),))
    word = status_word(root.status, running_here=not interrupted)
    end = root.ended_at if root.ended_at is not None else data.now
    title = f"{step_label(root.name)} · {root.workflow_id} · {word} · "
    title += format_duration(end - root.created_at)
    steps = sum(len(node.steps) for node in data.nodes())
    note = f"{steps:,} steps, {len(data.nodes()):,} workflows drawn; started "
    note += format_time(utc(root.created_at))
    live = not data.final and not interrupted
    return Chart(title, data.end - data.start, tuple(rows), live=live, note=note)


def _last_change(data: TimelineData) -> float:
    """When anything drawn last changed: a workflow's row, a step's end, a stream write."""
    times = [data.start]
    for node in data.nodes():
        times.append(node.workflow.updated_at)
        times.extend(step.ended_at for step in node.steps)
        times.extend(tick.created_at for tick in node.ticks)
    return max(times)


def _block(data: TimelineData, node: TimelineNode, rows: list[Row]) -> None:
    """The rows of one workflow: its span, its streams, its steps, its children."""
    w, depth, t0 = node.workflow, node.depth, data.start
    rows.append(_workflow_row(w, data.now, t0, depth))
    by_key: dict[str, list[float]] = {}
    items: dict[str, int] = {}
    for tick in node.ticks:
        by_key.setdefault(tick.key, []).append(tick.created_at - t0)
        items[tick.key] = tick.items
    for key, ticks in by_key.items():
        drawn = "" if len(ticks) == items[key] else f" ({len(ticks):,} drawn)"
        title = f"stream {key!r} of {w.workflow_id}: {items[key]:,} writes{drawn}"
        rows.append(Row(f"✎ {key} ({items[key]:,})", (), tuple(ticks), title, depth + 1, "stream"))
    if len(node.steps) <= STEP_ROWS:
        rows.extend(
            Row(step_label(s.name), (_step_bar(s, t0),), (), _step_title(s, t0), depth + 1)
            for s in sorted(node.steps, key=lambda s: (s.started_at, s.function_id))
        )
    else:
        rows.extend(_grouped(node.steps, t0, depth + 1))
    for child in node.children:
        _block(data, child, rows)
    if node.more_children:
        text = f"… {node.more_children:,} more child workflows not drawn"
        rows.append(Row(text, indent=depth + 1, kind="note"))


def _workflow_row(w: TimelineWorkflow, now: float, t0: float, depth: int) -> Row:
    end = w.ended_at if w.ended_at is not None else max(w.updated_at, now)
    kind = _KINDS.get(w.status, "running" if w.ended_at is None else "pending")
    word = status_word(w.status)
    lines = [
        f"workflow {step_label(w.name)} ({w.workflow_id}): {word}",
        f"created {format_time(utc(w.created_at))}, {format_duration(end - w.created_at)}"
        + ("" if w.ended_at is not None else " so far"),
    ]
    if w.error:
        lines.append(f"error: {w.error}")
    bar = Bar(w.created_at - t0, end - t0, kind, "\n".join(lines), error=w.error is not None)
    label = step_label(w.name) if depth == 0 else f"↳ {step_label(w.name)}"
    return Row(label, (bar,), (), "\n".join(lines), depth, "workflow")


def _step_kind(step: TimelineStep) -> str:
    if step.error is not None:
        return "error"
    if step.attempts > 1:
        return "retry"
    return "step" if step.cached_from is None else "cached"


def _step_title(step: TimelineStep, t0: float) -> str:
    lines = [
        f"{step_label(step.name)} (step {step.function_id})",
        f"started +{format_duration(step.started_at - t0)}, took "
        f"{format_duration(step.ended_at - step.started_at)}",
        f"attempts: {step.attempts}",
    ]
    if step.error is not None:
        lines.append(f"error: {step.error}")
    if step.cached_from is not None:
        lines.append(f"result taken from {step.cached_from}")
    return "\n".join(lines)


def _step_bar(step: TimelineStep, t0: float) -> Bar:
    return Bar(
        step.started_at - t0,
        step.ended_at - t0,
        _step_kind(step),
        _step_title(step, t0),
        error=step.error is not None,
        attempts=step.attempts,
    )


def _grouped(steps: list[TimelineStep], t0: float, indent: int) -> list[Row]:
    """The steps grouped by name (first seen first), each group packed into lanes."""
    groups: dict[str, list[TimelineStep]] = {}
    for step in steps:
        name = step.name if step.name in groups or len(groups) < MAX_GROUPS else ""
        groups.setdefault(name, []).append(step)
    rows = []
    for name, members in groups.items():
        label = step_label(name) if name else "other steps"
        label += f" ({len(members):,})" if len(members) > 1 else ""
        lanes = _lanes(members)
        for index, lane in enumerate(lanes):
            bars = tuple(_step_bar(s, t0) for s in lane)
            title = f"{label}: lane {index + 1} of {len(lanes)}, {len(lane):,} steps"
            rows.append(Row(label if index == 0 else "", bars, (), title, indent, "lane"))
    return rows


def _lanes(steps: Iterable[TimelineStep]) -> list[list[TimelineStep]]:
    """Pack spans into lanes: each on the lane free first at its start (a new lane while fewer
    than :data:`MAX_LANES`), else on the lane that frees first."""
    lanes: list[list[TimelineStep]] = []
    free: list[tuple[float, int]] = []  # (end of its last span, lane)
    for step in sorted(steps, key=lambda s: (s.started_at, s.function_id)):
        if free and (free[0][0] <= step.started_at or len(lanes) >= MAX_LANES):
            end, lane = heapq.heappop(free)
        else:
            end, lane = step.started_at, len(lanes)
            lanes.append([])
        lanes[lane].append(step)
        heapq.heappush(free, (max(end, step.ended_at), lane))
    return lanes
