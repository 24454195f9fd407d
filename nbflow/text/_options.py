"""The history's options as ``nbflow list``/``stats`` and ``%nbflow list``/``stats`` take them,
and the step statistics table.

A time (``--since``, ``--until``) is an ISO datetime (``2025-01-31``, ``2025-01-31T12:00+02:00``;
without a zone: local time), epoch seconds, or an age (``90s``, ``30m``, ``2h``, ``7d``, ``2w``:
that long ago).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections.abc import Sequence
from typing import Any

from nbflow.text._format import format_duration
from nbflow.text._status import status_value, unknown_status
from nbflow.text._tables import format_table, step_label, table_duration

__all__ = [
    "add_list_options",
    "add_stats_options",
    "list_options",
    "parse_moment",
    "stats_columns",
    "stats_options",
    "stats_table",
]

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MOMENT_HELP = "an ISO datetime (no zone: local time), epoch seconds, or an age like 30m, 2h, 7d"


def parse_moment(text: str) -> dt.datetime | float:
    """A point in time from the command line: an age (``2h``: two hours ago, as epoch seconds),
    epoch seconds, or an ISO datetime.

    Raises:
        argparse.ArgumentTypeError: ``text`` is none of them.
    """
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age:
        return time.time() - float(age.group(1)) * _UNITS[age.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time ({_MOMENT_HELP}): {text!r}") from None


def _at_least(minimum: int) -> Any:
    """An argparse type: a whole number, at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def _statuses(names: Sequence[str]) -> Any:
    """An argparse type: a comma list of statuses among ``names`` (their values), each as the
    tables say it (``failed``) or by its name (``ERROR``), in any case (:mod:`nbflow.text._status`)."""

    def parse(text: str) -> list[str]:
        given = [status_value(s) for s in text.split(",") if s.strip()]
        if not given or any(s is None or s not in names for s in given):
            message = unknown_status(text, names).removesuffix(".")
            raise argparse.ArgumentTypeError(f"{message} (or a comma list)")
        return [s for s in given if s is not None]

    parse.__name__ = "status"
    return parse


def add_list_options(
    parser: argparse.ArgumentParser, *, limit: int, statuses: Sequence[str]
) -> None:
    """Add the filters of ``list_workflows`` to ``parser``.

    Args:
        parser: The command's parser.
        limit: The default limit.
        statuses: The status names ``--status`` takes.
    """
    parser.add_argument(
        "--status",
        action="append",
        type=_statuses(statuses),
        metavar="STATUS",
        help="only those with this status (repeat, or a comma list: succeeded,failed; "
        "the statuses' names work too: SUCCESS,ERROR)",
    )
    parser.add_argument("--name", help="only workflows with this registered name")
    parser.add_argument("--id-prefix", metavar="PREFIX", help="only ids starting with it (literal)")
    parser.add_argument(
        "--since", type=parse_moment, metavar="TIME", help=f"created at or after: {_MOMENT_HELP}"
    )
    parser.add_argument("--until", type=parse_moment, metavar="TIME", help="created before")
    parser.add_argument("--queue", help="only those enqueued on this queue")
    parser.add_argument("--parent", metavar="ID", help="only the children of this workflow")
    parser.add_argument(
        "--offset", type=_at_least(0), default=0, metavar="N", help="skip N first (0)"
    )
    parser.add_argument(
        "--limit", type=_at_least(1), default=limit, metavar="N", help=f"at most N ({limit})"
    )
    parser.add_argument("--oldest-first", action="store_true", help="oldest first")


def list_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``list_workflows`` for options added by :func:`add_list_options`."""
    statuses = [s for given in args.status or () for s in given]
    return {
        "status": list(dict.fromkeys(statuses)) or None,
        "name": args.name,
        "id_prefix": args.id_prefix,
        "since": args.since,
        "until": args.until,
        "queue": args.queue,
        "parent_id": args.parent,
        "offset": args.offset,
        "limit": args.limit,
        "newest_first": not args.oldest_first,
    }


def add_stats_options(parser: argparse.ArgumentParser) -> None:
    """Add the filters of ``step_stats`` to ``parser``."""
    parser.add_argument("--name", help="only the steps of this name")
    parser.add_argument(
        "--since", type=parse_moment, metavar="TIME", help=f"started at or after: {_MOMENT_HELP}"
    )
    parser.add_argument("--until", type=parse_moment, metavar="TIME", help="started before")


def stats_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``step_stats`` for options added by :func:`add_stats_options`."""
    return {"name": args.name, "since": args.since, "until": args.until}


def stats_columns(stats: Sequence[Any]) -> tuple[list[str], list[list[str]]]:
    """The columns of a step statistics table and its rows, as text.

    Args:
        stats: ``nbflow.StepStats`` records.

    Returns:
        The headers, and one row of texts per step name.
    """
    headers = ["step", "count", "errors", "retries", "p50", "p95", "max", "total"]
    rows = [
        [
            step_label(s.name),
            str(s.count),
            str(s.errors),
            str(s.retries),
            table_duration(s.p50_s),
            table_duration(s.p95_s),
            table_duration(s.max_s),
            format_duration(s.total_s),
        ]
        for s in stats
    ]
    return headers, rows


def stats_table(stats: Sequence[Any]) -> str:
    """Step statistics (``nbflow.StepStats`` records) as a text table."""
    return format_table(*stats_columns(stats))
