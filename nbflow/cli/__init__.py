"""The ``nbflow`` command: run the demo, and inspect and manage the workflows of a database.

Usage::

    nbflow [--db URL] [--json] COMMAND [ARGS]

Commands: ``demo``, ``list``, ``stats``, ``show``, ``steps``, ``timeline``, ``tail``, ``cancel``,
``resume``, ``recover``, ``send``, ``prune``, ``delete``, ``compact``, ``copy`` (into another
database: ``nbflow --db FILE copy --to postgresql://…``), ``worker`` (runs the workflows of
queues and the schedules of the modules it imports: ``nbflow --db URL worker --queue NAME
--import MODULE``). ``--db`` and
``--json`` may be given before or after the command. ``python -m nbflow`` is the same command.
Errors print one line, ``nbflow: error: <message>``, and exit with status 1.

This module holds the parser and :func:`main`; the commands are in :mod:`nbflow.cli._commands`,
the removal of history in :mod:`nbflow.cli._retention`, ``copy`` in :mod:`nbflow.cli._copy`, the
schedules ``list --import`` shows in :mod:`nbflow.cli._schedules`, the progress bar in
:mod:`nbflow.cli._progress`, and their text comes from :mod:`nbflow.text._format`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import nbflow
from nbflow.cli._commands import (
    cmd_cancel,
    cmd_demo,
    cmd_list,
    cmd_recover,
    cmd_resume,
    cmd_send,
    cmd_show,
    cmd_stats,
    cmd_steps,
    cmd_tail,
    cmd_timeline,
    cmd_worker,
    import_modules,
)
from nbflow.cli._copy import add_copy, cmd_copy
from nbflow.cli._progress import ProgressBar
from nbflow.cli._retention import age, cmd_compact, cmd_delete, cmd_prune, finished_status
from nbflow.cli._schedules import schedules_of
from nbflow.text._hints import set_front_end
from nbflow.text._options import add_list_options, add_stats_options

__all__ = ["ProgressBar", "main"]

_DB_HELP = (
    "the database: a path, duckdb:///path or postgresql://… "
    "(default: $NBFLOW_DATABASE, else .nbflow/nbflow.duckdb)"
)
_JSON_HELP = "print JSON instead of text (allowed before or after the command)"

#: Adds a subcommand: ``add(name, function, help)`` returns its parser.
_Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _number(kind: Callable[[str], Any], minimum: float) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, at least ``minimum``."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _add_reading(add: _Add) -> None:
    """The commands that run the demo and read workflows: demo, list, stats, show, steps,
    timeline, tail."""
    p = add("demo", cmd_demo, "run (or resume) a demo pipeline with a live progress bar")
    p.add_argument("--steps", type=_number(int, 1), default=60, help="items to process (60)")
    p.add_argument("--delay", type=_number(float, 0), default=0.05, help="seconds per step (0.05)")
    p.add_argument(
        "--crash-after",
        type=_number(int, 1),
        metavar="N",
        help="kill this process with SIGKILL after N steps ran; run `nbflow demo` again to resume",
    )
    p = add("list", cmd_list, "list workflows, newest first")
    add_list_options(p, limit=100, statuses=[s.value for s in nbflow.Status])
    p.add_argument(
        "--all",
        action="store_true",
        help="also nbflow's own workflows (the record keeping of a notebook's durable cells)",
    )
    p.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module and show the next tick of the schedules it declares (repeat "
        "for more; this command runs none of them)",
    )
    add_stats_options(add("stats", cmd_stats, "statistics of the recorded steps, per step name"))
    add("show", cmd_show, "show a workflow: fields, result or error, streams").add_argument("id")
    p = add("steps", cmd_steps, "list a workflow's recorded steps")
    p.add_argument("id")
    p.add_argument("--all", action="store_true", help="every step (default: a long list folds)")
    p = add("timeline", cmd_timeline, "a Gantt chart of a workflow: SVG, or an HTML page")
    p.add_argument("id")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML page to PATH")
    p = add("tail", cmd_tail, "print a stream's items as JSON lines until it closes")
    p.add_argument("id")
    p.add_argument("key")
    p.add_argument("--start", type=_number(int, 0), default=0, help="first offset (0)")
    p.add_argument("--timeout", type=_number(float, 0), help="seconds to wait for each item")


def _add_managing(add: _Add) -> None:
    """The commands that manage workflows: cancel, resume, recover, send, worker."""
    add("cancel", cmd_cancel, "cancel a workflow").add_argument("id")
    p = add("resume", cmd_resume, "resume a workflow from its last checkpoint and wait for it")
    p.add_argument("id")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return at once (the workflow runs only while this process lives; "
        "it stays PENDING otherwise)",
    )
    recover = "resume every interrupted workflow whose function is declared here (the demo)"
    add("recover", cmd_recover, recover)
    p = add("send", cmd_send, "send a message to a workflow (it gets it with nbflow.recv)")
    p.add_argument("id")
    p.add_argument("message", help="JSON (e.g. '{\"go\": true}'), else taken as text")
    p.add_argument("--topic", help="the topic it is sent on (default: none)")
    worker = "run the workflows enqueued on queues, and schedules, until Ctrl-C or SIGTERM"
    p = add("worker", cmd_worker, worker)
    p.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="a queue to serve (repeat for more; none: only the schedules the modules declare)",
    )
    p.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first: it declares the queues, schedules and workflows (repeat "
        "for more); the worker runs every schedule they declare",
    )
    p.add_argument(
        "--recover-every",
        type=_number(float, 0.1),
        default=5.0,
        metavar="S",
        help="resume the workflows of dead workers every S seconds (5)",
    )


def _add_retention(add: _Add) -> None:
    """The commands that remove history: prune, delete, compact (nbflow/cli/_retention.py)."""
    p = add("prune", cmd_prune, "remove finished workflows older than an age, and shrink the file")
    p.add_argument(
        "--older-than",
        type=age,
        required=True,
        metavar="AGE",
        help="created longer ago than this: 30d, 12h, 45m, 90s or seconds",
    )
    p.add_argument(
        "--status",
        type=finished_status,
        action="append",
        metavar="STATUS",
        help="only workflows with this status: succeeded, failed, cancelled or gave up (or "
        "SUCCESS, ERROR, CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED; repeat for more; default: all "
        "four)",
    )
    p.add_argument("--dry-run", action="store_true", help="count them, remove nothing")
    p = add("delete", cmd_delete, "remove a finished workflow, its steps, streams and messages")
    p.add_argument("id")
    p.add_argument("--children", action="store_true", help="also the workflows it started")
    add("compact", cmd_compact, "rewrite a DuckDB file without the space deleted rows held")
    copying = "copy workflows into another database (DuckDB to PostgreSQL and back)"
    add_copy(add("copy", cmd_copy, copying))


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

    def add(
        name: str, func: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    _add_reading(add)
    _add_managing(add)
    _add_retention(add)
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
    front_end = set_front_end("cli")  # hints in messages name `nbflow` commands
    try:
        if args.command == "worker":
            import_modules(args.modules)
            runtime = nbflow.configure(args.db, queues=args.queue)
        elif args.command == "list":
            args.schedules = schedules_of(args.modules)
            runtime = nbflow.configure(args.db)
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
        set_front_end(front_end)
