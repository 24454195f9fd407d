"""The commands of ``nbflow``: each takes the parsed arguments and returns the exit status.

Their text comes from :mod:`nbflow.text._format`, shared with the ``%nbflow`` magics; with ``--json``
they print JSON instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import nbflow
from nbflow import _demo
from nbflow._errors import InvalidValueError
from nbflow._records import utc
from nbflow.cli._progress import ProgressBar
from nbflow.engine._timelayout import timeline_chart
from nbflow.engine._timeline import gather_timeline
from nbflow.text._format import (
    format_cancel,
    format_duration,
    format_error,
    format_ranges,
    format_recover,
    format_resume,
    format_sent,
    format_time,
    parse_message,
    shorten,
)
from nbflow.text._gantt import html_page, render_svg
from nbflow.text._options import list_options, stats_options, stats_table
from nbflow.text._tables import format_table, schedule_table, step_table, workflow_table
from nbflow.workflow._queues import lookup_queue
from nbflow.workflow._recovery import reported_by_caller

__all__ = [
    "cmd_cancel",
    "cmd_demo",
    "cmd_list",
    "cmd_recover",
    "cmd_resume",
    "cmd_send",
    "cmd_show",
    "cmd_stats",
    "cmd_steps",
    "cmd_tail",
    "cmd_timeline",
    "cmd_worker",
    "import_modules",
]


# -- output helpers ---------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return repr(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _as_dicts(records: Iterable[Any]) -> list[dict[str, Any]]:
    """Records as dictionaries of their public fields (a step's lazy output left out)."""
    return [
        {k: v for k, v in dataclasses.asdict(r).items() if not k.startswith("_")} for r in records
    ]


def _print_records(
    args: argparse.Namespace,
    records: Sequence[Any],
    table: Callable[[Sequence[Any]], str],
    empty: str,
) -> int:
    """Print records as JSON, or as the text ``table(records)`` (``empty`` when there are none)."""
    if args.json:
        _print_json(_as_dicts(records))
    else:
        print(table(records) if records else empty)
    return 0


# -- commands ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """``nbflow demo``: run (or resume) the demo pipeline with a live progress bar."""
    _demo.ran.clear()
    _demo.crash_after = args.crash_after
    try:
        workflow_id, items = _run_demo(args.steps, args.delay)
    finally:
        _demo.crash_after = None
    ran = [i + 1 for i in _demo.ran]  # items counted from 1, as the bar counts them
    replayed = sorted(set(range(1, items + 1)) - set(ran))
    print(f"workflow id: {workflow_id}")
    print(f"steps run in this process: {len(ran)} (items {format_ranges(ran)})")
    print(f"steps replayed from checkpoints: {len(replayed)} (items {format_ranges(replayed)})")
    counts = f"{len(replayed)} replayed from checkpoints, {len(ran)} run now"
    print(f"demo finished: {items} items, {counts}")
    return 0


def _run_demo(steps: int, delay: float) -> tuple[str, int]:
    """Start the demo, or resume an interrupted one, and follow its progress; its id and items."""
    interrupted = nbflow.list_workflows(status="PENDING", name=_demo.NAME, limit=1_000_000)
    if interrupted:
        workflow_id = interrupted[0].workflow_id
        print(f"resuming interrupted demo workflow {workflow_id} ...", flush=True)
        if len(interrupted) > 1:
            print(f"({len(interrupted) - 1} older one(s) left; `nbflow recover` resumes them)")
        done = next((s.items for s in nbflow.list_streams(workflow_id) if s.key == "progress"), 0)
        start = max(0, done - 1)  # the last recorded progress item: the bar starts where it was
        handle = nbflow.resume(workflow_id)
    else:
        handle = nbflow.start(_demo.pipeline, steps, delay)
        workflow_id, start = handle.workflow_id, 0
        print(f"started demo workflow {workflow_id} ({steps} items)", flush=True)
    bar = ProgressBar()
    try:
        for item in nbflow.read_stream(workflow_id, "progress", start=start):
            bar.update(item["done"], item.get("total"), item.get("message"))
        bar.close()
        return workflow_id, int(handle.result()["items"])
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: demo workflow {workflow_id} stays PENDING; `nbflow demo` resumes it")
        raise


def cmd_list(args: argparse.Namespace) -> int:
    """``nbflow list``: workflows, newest first, filtered; nbflow's own only with ``--all`` (or
    named)."""
    rows = nbflow.list_workflows(**list_options(args), include_internal=args.all)
    rt = nbflow.runtime()
    shared = not rt.store.single_process  # another process may run a PENDING one

    def table(records: Sequence[Any]) -> str:
        return workflow_table(
            records, running=lambda w: shared or rt.execution(w.workflow_id) is not None
        )

    code = _print_records(args, rows, table, "(no workflows)")
    schedules = getattr(args, "schedules", [])  # those of the modules named with --import
    if schedules and not args.json:
        print(f"\nschedules (next tick in local time):\n{schedule_table(schedules)}")
    return code


def cmd_stats(args: argparse.Namespace) -> int:
    """``nbflow stats``: statistics of the recorded steps, per step name."""
    stats = nbflow.step_stats(**stats_options(args))
    return _print_records(args, stats, stats_table, "(no steps recorded)")


def _show_fields(rt: nbflow.Runtime, row: Any) -> dict[str, Any]:
    """A workflow's fields, as ``nbflow show --json`` prints them."""
    fields: dict[str, Any] = {
        "workflow_id": row.workflow_id,
        "name": row.name,
        "status": row.status,
        "created_at": utc(row.created_at),
        "ended_at": utc(row.ended_at),
        "duration": None if row.ended_at is None else row.ended_at - row.created_at,
        "parent_id": row.parent_id,
        "executor_id": row.executor_id,
        "queue": row.queue_name,
        "deadline": utc(row.deadline),
        "inputs": "<pickled>" if row.inputs_json is None else json.loads(row.inputs_json),
        "result": None,
        "error": row.error,
        "events": rt.events(row.workflow_id),
        "streams": _as_dicts(nbflow.list_streams(row.workflow_id)),
    }
    if row.status == nbflow.Status.SUCCESS:
        try:
            fields["result"] = rt.get_workflow(row.workflow_id).result(timeout=0)
        except nbflow.NbflowError as exc:  # e.g. a pickle of a class this process lacks
            fields["result"] = f"<cannot load the result: {exc}>"
    return fields


def _print_show(fields: dict[str, Any]) -> None:
    """Print a workflow's fields as text, then its streams as a table."""
    streams = fields.pop("streams")
    fields.update(
        created_at=format_time(fields["created_at"]),
        ended_at=format_time(fields["ended_at"]),
        deadline=format_time(fields["deadline"]),
        duration=format_duration(fields["duration"]),
        inputs=json.dumps(fields["inputs"]),
        events=json.dumps(fields["events"], default=repr),
        result=json.dumps(fields["result"], default=repr),
    )
    if fields["status"] != nbflow.Status.SUCCESS:
        del fields["result"]
    for key, value in fields.items():
        print(f"{key:<12} {'' if value is None else value}")
    rows = [[s["key"], s["items"], "yes" if s["closed"] else "no"] for s in streams]
    table = format_table(["key", "items", "closed"], rows) if rows else "(none)"
    print("streams:\n  " + table.replace("\n", "\n  "))


def cmd_show(args: argparse.Namespace) -> int:
    """``nbflow show ID``: a workflow's fields, result or error, and streams."""
    rt = nbflow.runtime()
    fields = _show_fields(rt, rt.workflow_row(args.id))
    if args.json:
        _print_json(fields)
    else:
        _print_show(fields)
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    """``nbflow steps ID``: a workflow's recorded steps."""
    steps = nbflow.list_steps(args.id)
    table = functools.partial(step_table, everything=args.all)
    return _print_records(args, steps, table, "(no steps recorded)")


def cmd_timeline(args: argparse.Namespace) -> int:
    """``nbflow timeline ID [--html PATH]``: a Gantt chart of a workflow, as a self-contained
    HTML page written to PATH, else as SVG on standard output."""
    rt = nbflow.runtime()
    rt.flush()
    data = gather_timeline(rt.store, args.id, database=rt.database)
    svg = render_svg(timeline_chart(data))
    if args.html is None:
        print(svg)
        return 0
    title = f"nbflow timeline of {data.root.workflow.name} ({args.id})"
    try:
        Path(args.html).write_text(html_page(title, svg), encoding="utf-8")
    except OSError as exc:
        raise InvalidValueError(
            f"Cannot write the timeline to {args.html!r}: {exc.strerror or exc}. Give a path in "
            "a folder that exists and that you may write to.",
            what="--html",
            value=args.html,
        ) from exc
    steps = sum(len(node.steps) for node in data.nodes())
    if args.json:
        _print_json({"workflow_id": args.id, "html": args.html, "steps": steps})
    else:
        print(f"wrote the timeline of {args.id} ({steps:,} steps) to {args.html}")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """``nbflow tail ID KEY``: a stream's items as JSON lines, until it closes."""
    if args.timeout is None and nbflow.get_workflow(args.id).status() == nbflow.Status.PENDING:
        hint = "is PENDING (interrupted, or running elsewhere); waiting for items"
        print(f"nbflow: workflow {args.id} {hint} (Ctrl-C or --timeout stops)", file=sys.stderr)
    for value in nbflow.read_stream(args.id, args.key, start=args.start, timeout=args.timeout):
        print(json.dumps(value, default=_json_default), flush=True)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """``nbflow cancel ID``: cancel a workflow that has not ended."""
    status = nbflow.get_workflow(args.id).status()
    if not status.is_final:
        nbflow.cancel(args.id)
    new = nbflow.get_workflow(args.id).status()
    if args.json:
        _print_json({"workflow_id": args.id, "status": new, "cancelled": not status.is_final})
    else:
        print(format_cancel(args.id, new, cancelled=not status.is_final))
    return 0


def _outcome(handle: nbflow.WorkflowHandle) -> dict[str, Any]:
    """Wait for a workflow; its id, final status, and result or error (its own exception)."""
    out: dict[str, Any] = {"workflow_id": handle.workflow_id}
    try:
        out["result"] = handle.result()
    except nbflow.WorkflowCancelledError:
        raise
    except Exception as exc:
        out["error"] = format_error(exc)
    return {**out, "status": "ERROR" if "error" in out else "SUCCESS"}


def _report(outcome: dict[str, Any]) -> int:
    """Print an outcome as text; 1 (and an error line) if the workflow failed."""
    wid = outcome["workflow_id"]
    if "error" in outcome:
        error = shorten(outcome["error"], 300)
        print(f"nbflow: error: workflow {wid} failed: {error}", file=sys.stderr)
        return 1
    print(f"workflow {wid} succeeded: {json.dumps(outcome['result'], default=repr)}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """``nbflow resume ID``: resume a workflow and (unless ``--no-wait``) wait for it."""
    before = nbflow.get_workflow(args.id).status()
    handle = nbflow.resume(args.id)
    if not args.json:
        later = "; not waiting (it runs while this process lives)" if args.no_wait else ""
        print(format_resume(args.id, before) + later, flush=True)
    if args.no_wait:
        if args.json:
            _print_json({"workflow_id": args.id, "status": handle.status()})
        return 0
    outcome = _outcome(handle)
    if args.json:
        _print_json(outcome)
        return 1 if "error" in outcome else 0
    return _report(outcome)


def cmd_recover(args: argparse.Namespace) -> int:
    """``nbflow recover``: resume every interrupted workflow declared here, and wait for them."""
    with reported_by_caller():  # (the reasons are printed below, not warned as well)
        handles = nbflow.recover()
    if not args.json:
        print("\n".join(format_recover(handles)), flush=True)
        return max((_report(_outcome(h)) for h in handles), default=0)
    outcomes = [_outcome(h) for h in handles]
    skipped = [s._asdict() for s in handles.skipped]
    _print_json({"resumed": outcomes, "not_resumed": skipped})
    return 1 if any("error" in o for o in outcomes) else 0


def cmd_send(args: argparse.Namespace) -> int:
    """``nbflow send ID MESSAGE``: send a message (JSON, else text) to a workflow."""
    message = parse_message(args.message)
    nbflow.send(args.id, message, topic=args.topic)
    if args.json:
        _print_json({"workflow_id": args.id, "topic": args.topic, "message": message})
    else:
        print(format_sent(args.id, message, args.topic))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """``nbflow worker --queue NAME``: run enqueued workflows, and the schedules of the modules
    it imports, until Ctrl-C or SIGTERM."""
    missing = [name for name in args.queue if lookup_queue(name) is None]
    if missing:
        raise nbflow.ConfigurationError(
            f"No queue called {', '.join(map(repr, missing))} is declared in this process. "
            "Name the module that declares it (and its workflows) with --import MODULE."
        )
    schedules = [s.name for s in nbflow.list_schedules()]
    if not args.queue and not schedules:
        raise nbflow.ConfigurationError(
            "This worker has nothing to run: name a queue with --queue NAME, or import a module "
            "that declares a schedule (@nbflow.scheduled) with --import MODULE."
        )
    recovered = nbflow.recover()
    runtime = nbflow.runtime()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not args.json:
        served = [*args.queue, *(f"schedule {name}" for name in schedules)]
        serving = f"worker {runtime.executor_id} serving {', '.join(served)}"
        found = f"; recovered {len(recovered)} interrupted workflow(s)" if recovered else ""
        print(f"{serving} on {runtime.database}{found}; Ctrl-C or SIGTERM stops it", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it as SIGTERM does
        while not stop.wait(args.recover_every):
            nbflow.recover()  # workflows of workers that died
    if not args.json:
        print("worker stopping: workflows still running stay PENDING, for recover()", flush=True)
    return 0


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules a worker names (from the working directory too)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise nbflow.ConfigurationError(f"Cannot import {module!r} ({error}).") from exc
