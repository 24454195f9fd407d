"""The ``nbflow`` command: run the demo, and inspect and manage the workflows of a database.

Usage::

    nbflow [--db URL] [--json] COMMAND [ARGS]

Commands: ``demo``, ``list``, ``show``, ``steps``, ``tail``, ``cancel``, ``resume``, ``recover``,
``worker`` (runs the workflows of queues: ``nbflow --db URL worker --queue NAME --import MODULE``).
``--db`` and ``--json`` may be given before or after the command. ``python -m nbflow`` is the same
command. Errors print one line, ``nbflow: error: <message>``, and exit with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import nbflow
from nbflow import _demo
from nbflow._queues import lookup_queue

__all__ = ["ProgressBar", "main"]


class ProgressBar:
    """A text progress bar in the manner of tqdm: ``[#####.....] 23/60 38% 12.3 it/s item 22``.

    On a terminal it redraws one line with ``\\r``, at most once per ``min_interval`` seconds (the
    last state is always drawn). Elsewhere (a pipe, a log file) it prints a plain line each time
    another tenth of the work is done.

    Args:
        file: Where to draw (default: ``sys.stderr`` at the time of the call).
        width: The bar's width in characters.
        tty: Whether to redraw in place (default: ``file.isatty()``).
        min_interval: The shortest time between two redraws on a terminal, in seconds.
    """

    def __init__(
        self, file: TextIO | None = None, *, width: int = 30, tty: bool | None = None,
        min_interval: float = 0.05,
    ) -> None:  # fmt: skip
        self.file = file if file is not None else sys.stderr
        self.tty = self.file.isatty() if tty is None else tty
        self.width = width
        self.min_interval = min_interval
        self._base: tuple[float, float] | None = None  # (done, time) of the first update
        self._last_draw, self._last_len, self._tenth = 0.0, 0, 0
        self._undrawn: str | None = None

    def render(self, done: float, total: float | None, message: str | None, now: float) -> str:
        """The bar's text for a state (``now`` is a ``time.monotonic()`` value, for the rate)."""
        parts = []
        if total:
            frac = min(max(done / total, 0.0), 1.0)
            bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
            parts += [f"[{bar}]", f"{_num(done)}/{_num(total)}", f"{frac:.0%}"]
        else:
            parts.append(f"{_num(done)} it")
        if self._base is not None and now > self._base[1] and done > self._base[0]:
            parts.append(f"{(done - self._base[0]) / (now - self._base[1]):.1f} it/s")
        return " ".join([*parts, message] if message else parts)

    def update(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Show a new state: ``done`` of ``total`` units, with an optional message."""
        now = time.monotonic()
        if self._base is None:
            self._base, self._last_draw = (done, now), now - 3600
        line = self.render(done, total, message, now)
        if self.tty:
            due = now - self._last_draw >= self.min_interval
        elif total:
            tenth = int(10 * done / total)
            due, self._tenth = tenth > self._tenth or not self._last_len, max(tenth, self._tenth)
        else:
            due = now - self._last_draw >= 1.0  # no total: a line per second at most
        if due or (bool(total) and done >= (total or 0)):
            self._draw(line, now)
        else:
            self._undrawn = line

    def _draw(self, line: str, now: float) -> None:
        if self.tty:
            self.file.write("\r" + line + " " * max(0, self._last_len - len(line)))
        else:
            self.file.write(line + "\n")
        self.file.flush()
        self._last_len, self._last_draw, self._undrawn = len(line), now, None

    def close(self) -> None:
        """Draw the last state if it was not drawn yet, and end the line."""
        if self._undrawn is not None:
            self._draw(self._undrawn, time.monotonic())
        if self.tty and self._last_len:
            self.file.write("\n")
        self.file.flush()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _ranges(items: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    spans: list[list[int]] = []
    for i in sorted(items):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"


# -- output helpers ---------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return repr(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _as_dicts(records: Iterable[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in records]


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def _time(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.2f}s" if seconds < 60 else f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def _short(text: str | None, width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


# -- commands ---------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    _demo.ran.clear()
    _demo.crash_after = args.crash_after
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
        handle = nbflow.start(_demo.pipeline, args.steps, args.delay)
        workflow_id, start = handle.workflow_id, 0
        print(f"started demo workflow {workflow_id} ({args.steps} items)", flush=True)
    bar = ProgressBar()
    try:
        for item in nbflow.read_stream(workflow_id, "progress", start=start):
            bar.update(item["done"], item.get("total"), item.get("message"))
        bar.close()
        items = handle.result()["items"]
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: demo workflow {workflow_id} stays PENDING; `nbflow demo` resumes it")
        raise
    finally:
        _demo.crash_after = None
    ran = list(_demo.ran)
    replayed = sorted(set(range(items)) - set(ran))
    print(f"workflow id: {workflow_id}")
    print(f"steps run in this process: {len(ran)} (items {_ranges(ran)})")
    print(f"steps replayed from checkpoints: {len(replayed)} (items {_ranges(replayed)})")
    counts = f"{len(replayed)} replayed from checkpoints, {len(ran)} run now"
    print(f"demo finished: {items} items, {counts}")
    return 0


def _print_records(
    args: argparse.Namespace,
    records: Sequence[Any],
    headers: list[str],
    row: Callable[[Any], list[Any]],
    empty: str,
) -> int:
    """Print records as JSON, or as a table of ``headers`` with one ``row(record)`` each."""
    if args.json:
        _print_json(_as_dicts(records))
    else:
        print(_table(headers, [row(r) for r in records]) if records else empty)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    rows = nbflow.list_workflows(status=args.status, name=args.name, limit=args.limit)
    headers = ["id", "name", "status", "queue", "created", "duration", "error"]

    def row(w: nbflow.WorkflowInfo) -> list[Any]:
        created, duration = _time(w.created_at), _duration(w.duration)
        return [w.workflow_id, w.name, w.status.value, w.queue or "", created, duration, _short(w.error)]  # fmt: skip

    return _print_records(args, rows, headers, row, "(no workflows)")


def _cmd_show(args: argparse.Namespace) -> int:
    rt = nbflow.runtime()
    row = rt.workflow_row(args.id)
    fields: dict[str, Any] = {
        "workflow_id": row.workflow_id, "name": row.name, "status": row.status,
        "created_at": _utc(row.created_at), "ended_at": _utc(row.ended_at),
        "duration": None if row.ended_at is None else row.ended_at - row.created_at,
        "parent_id": row.parent_id, "executor_id": row.executor_id, "queue": row.queue_name,
        "deadline": _utc(row.deadline),
        "inputs": "<pickled>" if row.inputs_json is None else json.loads(row.inputs_json),
        "result": None, "error": row.error, "events": rt.events(args.id),
        "streams": _as_dicts(nbflow.list_streams(args.id)),
    }  # fmt: skip
    if row.status == nbflow.Status.SUCCESS:
        try:
            fields["result"] = rt.outcome(row)
        except nbflow.NbflowError as exc:  # e.g. a pickle of a class this process lacks
            fields["result"] = f"<cannot load the result: {exc}>"
    if args.json:
        _print_json(fields)
        return 0
    streams = fields.pop("streams")
    fields.update(created_at=_time(fields["created_at"]), ended_at=_time(fields["ended_at"]))
    fields.update(
        deadline=_time(fields["deadline"]), events=json.dumps(fields["events"], default=repr)
    )
    fields.update(duration=_duration(fields["duration"]), inputs=json.dumps(fields["inputs"]))
    fields["result"] = json.dumps(fields["result"], default=repr)
    if row.status != nbflow.Status.SUCCESS:
        del fields["result"]
    for key, value in fields.items():
        print(f"{key:<12} {'' if value is None else value}")
    rows = [[s["key"], s["items"], "yes" if s["closed"] else "no"] for s in streams]
    table = _table(["key", "items", "closed"], rows) if rows else "(none)"
    print("streams:\n  " + table.replace("\n", "\n  "))
    return 0


def _cmd_steps(args: argparse.Namespace) -> int:
    steps = nbflow.list_steps(args.id)
    headers = ["function_id", "name", "status", "duration", "attempts", "error"]

    def row(s: nbflow.StepInfo) -> list[Any]:
        return [s.function_id, s.name, s.status, _duration(s.duration), s.attempts, _short(s.error)]

    return _print_records(args, steps, headers, row, "(no steps recorded)")


def _cmd_tail(args: argparse.Namespace) -> int:
    if args.timeout is None and nbflow.get_workflow(args.id).status() == nbflow.Status.PENDING:
        hint = "is PENDING (interrupted, or running elsewhere); waiting for items"
        print(f"nbflow: workflow {args.id} {hint} (Ctrl-C or --timeout stops)", file=sys.stderr)
    for value in nbflow.read_stream(args.id, args.key, start=args.start, timeout=args.timeout):
        print(json.dumps(value, default=_json_default), flush=True)
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    status = nbflow.get_workflow(args.id).status()
    if not status.is_final:
        nbflow.cancel(args.id)
    new = nbflow.get_workflow(args.id).status()
    if args.json:
        _print_json({"workflow_id": args.id, "status": new, "cancelled": not status.is_final})
    elif status.is_final:
        print(f"workflow {args.id} already ended ({status}); nothing to cancel")
    else:
        print(f"cancelled workflow {args.id} (now {new})")
    return 0


def _outcome(handle: nbflow.WorkflowHandle) -> dict[str, Any]:
    """Wait for a workflow; its id, final status, and result or error (its own exception)."""
    out: dict[str, Any] = {"workflow_id": handle.workflow_id}
    try:
        out["result"] = handle.result()
    except nbflow.WorkflowCancelledError:
        raise
    except Exception as exc:
        out["error"] = f"{type(exc).__qualname__}: {exc}"
    return {**out, "status": "ERROR" if "error" in out else "SUCCESS"}


def _report(outcome: dict[str, Any]) -> int:
    """Print an outcome as text; 1 (and an error line) if the workflow failed."""
    wid = outcome["workflow_id"]
    if "error" in outcome:
        error = _short(outcome["error"], 300)
        print(f"nbflow: error: workflow {wid} failed: {error}", file=sys.stderr)
        return 1
    print(f"workflow {wid} SUCCESS: {json.dumps(outcome['result'], default=repr)}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    before = nbflow.get_workflow(args.id).status()
    handle = nbflow.resume(args.id)
    if not args.json:
        verb = "already finished" if before == nbflow.Status.SUCCESS else "resumed"
        later = "; not waiting (it runs while this process lives)" if args.no_wait else ""
        print(f"{verb}: workflow {args.id} (was {before}){later}", flush=True)
    if args.no_wait:
        if args.json:
            _print_json({"workflow_id": args.id, "status": handle.status()})
        return 0
    outcome = _outcome(handle)
    if args.json:
        _print_json(outcome)
        return 1 if "error" in outcome else 0
    return _report(outcome)


def _cmd_recover(args: argparse.Namespace) -> int:
    pending = nbflow.list_workflows(status="PENDING", limit=1_000_000)
    handles = nbflow.recover()
    resumed = {h.workflow_id for h in handles}
    skipped = [w for w in pending if w.workflow_id not in resumed]
    if not args.json:
        for w in pending:
            if w.workflow_id in resumed:
                print(f"resumed: {w.workflow_id} ({w.name})", flush=True)
        for w in skipped:
            print(f"not resumed: {w.workflow_id} ({w.name}): its function is not declared here")
        if not pending:
            print("no interrupted workflows")
        return max((_report(_outcome(h)) for h in handles), default=0)
    outcomes = [_outcome(h) for h in handles]
    _print_json({"resumed": outcomes, "not_resumed": [dataclasses.asdict(w) for w in skipped]})
    return 1 if any("error" in o for o in outcomes) else 0


def _send(workflow_id: str, text: str, topic: str | None) -> Any:
    """Send ``text`` (JSON, else the text itself) to a workflow; return the message sent."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        message = text
    nbflow.send(workflow_id, message, topic=topic)
    return message


def _sent(workflow_id: str, message: Any, topic: str | None) -> str:
    return f"sent to {workflow_id}{f' on topic {topic!r}' if topic else ''}: {json.dumps(message)}"


def _cmd_send(args: argparse.Namespace) -> int:
    message = _send(args.id, args.message, args.topic)
    if args.json:
        _print_json({"workflow_id": args.id, "topic": args.topic, "message": message})
    else:
        print(_sent(args.id, message, args.topic))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    missing = [name for name in args.queue if lookup_queue(name) is None]
    if missing:
        raise nbflow.ConfigurationError(
            f"No queue called {', '.join(map(repr, missing))} is declared in this process. "
            "Name the module that declares it (and its workflows) with --import MODULE."
        )
    recovered = nbflow.recover()
    runtime = nbflow.runtime()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not args.json:
        print(f"worker {runtime.executor_id} serving {', '.join(args.queue)} on {runtime.database}"
              f"{f'; recovered {len(recovered)} interrupted workflow(s)' if recovered else ''}; "
              "Ctrl-C or SIGTERM stops it", flush=True)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it as SIGTERM does
        while not stop.wait(args.recover_every):
            nbflow.recover()  # workflows of workers that died
    if not args.json:
        print("worker stopping: workflows still running stay PENDING, for recover()", flush=True)
    return 0


def _import_modules(modules: Sequence[str]) -> None:
    """Import the modules a worker names (from the working directory too)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise nbflow.ConfigurationError(f"Cannot import {module!r} ({type(exc).__name__}: {exc}).") from exc  # fmt: skip


# -- the parser -------------------------------------------------------------------------------

_DB_HELP = "the database: a path, duckdb:///path or postgresql://… (default: $NBFLOW_DATABASE, else .nbflow/nbflow.duckdb)"  # fmt: skip
_JSON_HELP = "print JSON instead of text (allowed before or after the command)"


def _number(kind: Callable[[str], Any], minimum: float) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, at least ``minimum``."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=_DB_HELP)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=_JSON_HELP)
    parser = argparse.ArgumentParser(
        prog="nbflow",
        description="Durable workflows in one database: run the demo, inspect and manage them.",
        epilog="Errors print one line 'nbflow: error: …' and exit with status 1.",
    )
    parser.add_argument("--db", metavar="URL", default=None, help=_DB_HELP)
    parser.add_argument("--json", action="store_true", help=_JSON_HELP)
    parser.add_argument("--version", action="version", version=f"nbflow {nbflow.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    p = add("demo", _cmd_demo, "run (or resume) a demo pipeline with a live progress bar")
    p.add_argument("--steps", type=_number(int, 1), default=60, help="items to process (60)")
    p.add_argument("--delay", type=_number(float, 0), default=0.05, help="seconds per step (0.05)")  # fmt: skip
    p.add_argument("--crash-after", type=_number(int, 1), metavar="N", help="kill this process with SIGKILL after N steps ran; run `nbflow demo` again to resume")  # fmt: skip
    p = add("list", _cmd_list, "list workflows, newest first")
    p.add_argument("--status", type=str.upper, choices=[s.value for s in nbflow.Status])
    p.add_argument("--name", help="only workflows with this registered name")
    p.add_argument("--limit", type=_number(int, 1), default=100, help="at most N (100)")
    add("show", _cmd_show, "show a workflow: fields, result or error, streams").add_argument("id")
    add("steps", _cmd_steps, "list a workflow's recorded steps").add_argument("id")
    p = add("tail", _cmd_tail, "print a stream's items as JSON lines until it closes")
    p.add_argument("id")
    p.add_argument("key")
    p.add_argument("--start", type=_number(int, 0), default=0, help="first offset (0)")
    p.add_argument("--timeout", type=_number(float, 0), help="seconds to wait for each item")
    add("cancel", _cmd_cancel, "cancel a workflow").add_argument("id")
    p = add("resume", _cmd_resume, "resume a workflow from its last checkpoint and wait for it")
    p.add_argument("id")
    p.add_argument("--no-wait", action="store_true", help="return at once (the workflow runs only while this process lives; it stays PENDING otherwise)")  # fmt: skip
    add("recover", _cmd_recover, "resume every interrupted workflow whose function is declared here (the demo)")  # fmt: skip
    p = add("send", _cmd_send, "send a message to a workflow (it gets it with nbflow.recv)")
    p.add_argument("id")
    p.add_argument("message", help="JSON (e.g. '{\"go\": true}'), else taken as text")
    p.add_argument("--topic", help="the topic it is sent on (default: none)")
    p = add("worker", _cmd_worker, "run the workflows enqueued on queues, until Ctrl-C or SIGTERM")
    p.add_argument("--queue", action="append", required=True, metavar="NAME", help="a queue to serve (repeat for more)")  # fmt: skip
    p.add_argument("--import", dest="modules", action="append", default=[], metavar="MODULE", help="import this module first: it declares the queues and workflows (repeat for more)")  # fmt: skip
    p.add_argument("--recover-every", type=_number(float, 0.1), default=5.0, metavar="S", help="resume the workflows of dead workers every S seconds (5)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nbflow`` command.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on an nbflow error or a failed workflow, 2 on bad usage,
        130 when interrupted.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    runtime: nbflow.Runtime | None = None
    try:
        if args.command == "worker":
            _import_modules(args.modules)
            runtime = nbflow.configure(args.db, queues=args.queue)
        else:
            runtime = nbflow.configure(args.db)
        return int(args.func(args))
    except nbflow.NbflowError as exc:
        print(f"nbflow: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nbflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nbflow tail ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        if runtime is not None:
            runtime.close()
