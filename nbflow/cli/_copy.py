"""``nbflow copy --to URL``: copy the workflows of one database into another.

The way a project moves from its DuckDB file to a shared PostgreSQL database (or back)::

    $ nbflow --db .nbflow/nbflow.duckdb copy --to postgresql://host/db
    copied 12, already there 3, skipped 1 running: 5f0c…

Each workflow is exported and imported in a transaction of its own
(:meth:`nbflow.Runtime.copy_to`): one in the target already is left as it is, so running the copy
again copies nothing twice; a running one (PENDING in a live process) is left out; an interrupted
one is copied PENDING, and ``nbflow worker`` (or ``recover()``) on the target resumes it there.
"""

from __future__ import annotations

import argparse
import json
import os

import nbflow
from nbflow.store import resolve_database
from nbflow.text._options import parse_moment
from nbflow.text._status import status_value, unknown_status

__all__ = ["add_copy", "cmd_copy"]


def _statuses(text: str) -> list[str]:
    """An argparse type: a comma list of statuses (``succeeded``, ``PENDING``, any case)."""
    names = [s.value for s in nbflow.Status]
    given = [status_value(s) for s in text.split(",") if s.strip()]
    if not given or any(s is None or s not in names for s in given):
        raise argparse.ArgumentTypeError(unknown_status(text, names))
    return [s for s in given if s is not None]


def add_copy(parser: argparse.ArgumentParser) -> None:
    """The options of ``nbflow copy``."""
    parser.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the database to copy into: postgresql://…, a path or duckdb:///path",
    )
    parser.add_argument(
        "--status",
        action="append",
        type=_statuses,
        metavar="STATUS",
        help="only workflows with this status (repeat, or a comma list: succeeded,pending)",
    )
    parser.add_argument(
        "--since",
        type=parse_moment,
        metavar="TIME",
        help="only those created at or after: an ISO datetime, epoch seconds, or an age (7d)",
    )


def _same_place(a: str, b: str) -> bool:
    if "://" in a.removeprefix("duckdb://") or "://" in b.removeprefix("duckdb://"):
        return a == b
    paths = [os.path.realpath(x.removeprefix("duckdb://")) for x in (a, b)]
    return paths[0] == paths[1]


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def cmd_copy(args: argparse.Namespace) -> int:
    """``nbflow copy --to URL [--status S …] [--since TIME]``."""
    source = nbflow.runtime()
    target_url = resolve_database(args.to)
    if _same_place(source.database, target_url):
        raise nbflow.ConfigurationError(
            f"nbflow copy --to {args.to!r} names the database it copies from. Give --to "
            "another database (e.g. postgresql://…), and --db the one to copy from."
        )
    statuses = [s for group in args.status or [] for s in group] or None
    with nbflow.Runtime(target_url, queues=[]) as target:
        report = source.copy_to(target, status=statuses, since=args.since)
    if args.json:
        print(json.dumps(report._asdict()))
        return 0
    line = f"copied {len(report.copied)}, already there {len(report.already)}"
    if report.running:
        line += f", skipped {len(report.running)} running: {_ids(report.running)}"
    print(line)
    if report.differ:
        print(
            f"left {len(report.differ)} that differ in {target.database} as they are (each "
            f"changed there or here since it was copied): {_ids(report.differ)}"
        )
    return 0
