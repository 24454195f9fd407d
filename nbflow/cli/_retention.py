"""The commands of ``nbflow`` that remove history: ``prune``, ``delete`` and ``compact``.

Each closes the runtime itself before it prints, so that a DuckDB file is compacted (see
:meth:`nbflow.Runtime.close`) and its size after is the size it keeps::

    $ nbflow prune --older-than 30d
    removed 1,204 workflows created before 2026-11-07 14:03:07
    .nbflow/nbflow.duckdb: 412.3 MB -> 38.1 MB
"""

from __future__ import annotations

import argparse
import os
import time

import nbflow
from nbflow.text._format import AGES, format_time, parse_age, status_word
from nbflow.text._status import status_value, unknown_status

__all__ = ["age", "cmd_compact", "cmd_delete", "cmd_prune", "file_size", "finished_status"]

_FINISHED = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


def age(text: str) -> float:
    """An age (:func:`~nbflow.text._format.parse_age`: ``30d``, ``12h``, ``45m``, ``90s`` or
    seconds) in seconds, as an argparse type: bad text is a usage error (exit status 2)."""
    seconds = parse_age(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: give {AGES}")
    return seconds


def finished_status(text: str) -> str:
    """A finished status as typed (``failed`` or ``ERROR``, any case: :mod:`nbflow.text._status`),
    as an argparse type giving its value; another word is a usage error."""
    value = status_value(text)
    if value not in _FINISHED:
        raise argparse.ArgumentTypeError(unknown_status(text, _FINISHED))
    return value


def file_size(database: str) -> int | None:
    """Bytes of a DuckDB file and the log beside it; None for another database."""
    if database.startswith(("postgresql://", "postgres://")) or database.startswith(":memory:"):
        return None
    path = database.removeprefix("duckdb://")
    total = 0
    for name in (path, path + ".wal"):
        try:
            total += os.stat(name).st_size
        except OSError:
            continue
    return total


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _close_and_report(rt: nbflow.Runtime, before: int | None, *, compact: bool | None) -> None:
    """Close the runtime (compacting a DuckDB file), then print its size before and after."""
    rt.close(compact=compact)
    after = file_size(rt.database)
    if before is not None and after is not None:
        print(f"{rt.database}: {_megabytes(before)} -> {_megabytes(after)}")


def cmd_prune(args: argparse.Namespace) -> int:
    """``nbflow prune --older-than AGE [--status S …] [--dry-run]``."""
    rt = nbflow.runtime()
    before = file_size(rt.database)
    status = args.status or None
    count = rt.prune(older_than=args.older_than, status=status, dry_run=args.dry_run)
    cutoff = format_time(time.time() - args.older_than)
    which = f" ({', '.join(status_word(s) for s in status)})" if status else ""
    plural = "workflow" if count == 1 else "workflows"
    if args.dry_run:
        print(f"would remove {count:,} finished {plural}{which} created before {cutoff}")
        rt.close()
        return 0
    print(f"removed {count:,} finished {plural}{which} created before {cutoff}")
    _close_and_report(rt, before, compact=None)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``nbflow delete ID [--children]``."""
    rt = nbflow.runtime()
    before = file_size(rt.database)
    count = rt.delete_workflow(args.id, delete_children=args.children)
    extra = f" and {count - 1:,} workflows it started" if count > 1 else ""
    print(f"removed workflow {args.id}{extra}")
    _close_and_report(rt, before, compact=None)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """``nbflow compact``: rewrite a DuckDB file without the space deleted rows held."""
    rt = nbflow.runtime()
    before = file_size(rt.database)
    if before is None:
        print(f"{rt.database} is not a DuckDB file: nothing to compact")
        return 0
    _close_and_report(rt, before, compact=True)
    return 0
