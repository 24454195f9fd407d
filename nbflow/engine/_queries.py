"""The history's filters as the user gives them, checked and turned into the store's queries.

``since`` and ``until`` take a :class:`datetime.datetime` (aware in any time zone; naive: local
time) or epoch seconds; ``status`` a status or a list of them. Each bad value raises
:class:`~nbflow.InvalidValueError` naming the argument.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from nbflow._errors import InvalidValueError
from nbflow._records import Status
from nbflow._serialization import check_text
from nbflow.store._history import StepStatsQuery, WorkflowQuery
from nbflow.text._tables import INTERNAL_WORKFLOWS

__all__ = ["Moment", "step_stats_query", "to_epoch", "workflow_query"]

#: A point in time as the history's filters take it.
Moment = dt.datetime | float | int


def to_epoch(value: Moment | None, what: str) -> float | None:
    """``value`` (a datetime, or epoch seconds) as epoch seconds; None stays None.

    A naive datetime is taken as local time (as :meth:`datetime.datetime.timestamp` does).
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InvalidValueError(
        f"{what} must be a datetime (naive: local time) or epoch seconds (a number), "
        f"not {value!r}.",
        what=what,
        value=value,
    )


def _statuses(status: Any) -> tuple[str, ...]:
    if status is None:
        return ()
    given = [status] if isinstance(status, (str, Status)) else status
    if not isinstance(given, Iterable):
        given = [given]
    found = []
    for one in given:
        if not isinstance(one, (str, Status)):
            raise InvalidValueError(
                f"status must be a status or a list of them, not {status!r}.",
                what="status",
                value=status,
            )
        try:
            found.append(Status.parse(one).value)
        except ValueError as exc:
            raise InvalidValueError(f"status: {exc}", what="status", value=one) from None
    return tuple(dict.fromkeys(found))


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(
            f"{what} must be a whole number >= 0, not {value!r}.", what=what, value=value
        )
    return value


def _text(value: str | None, what: str) -> str | None:
    if value is not None:
        check_text(value, what)
    return value


def workflow_query(
    *,
    status: Any = None,
    name: str | None = None,
    id_prefix: str | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
    queue: str | None = None,
    parent_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
    newest_first: bool = True,
    include_internal: bool = False,
) -> WorkflowQuery:
    """The store's query for :meth:`nbflow.Runtime.list_workflows`'s arguments (checked)."""
    internal = include_internal or name is not None
    return WorkflowQuery(
        statuses=_statuses(status),
        name=_text(name, "A workflow name"),
        id_prefix=_text(id_prefix, "id_prefix") if id_prefix != "" else None,
        since=to_epoch(since, "since"),
        until=to_epoch(until, "until"),
        queue=_text(queue, "A queue name"),
        parent_id=_text(parent_id, "A parent workflow id"),
        exclude_names=() if internal else tuple(sorted(INTERNAL_WORKFLOWS)),
        offset=_count(offset, "offset"),
        limit=_count(limit, "limit"),
        newest_first=bool(newest_first),
    )


def step_stats_query(
    *, name: str | None = None, since: Moment | None = None, until: Moment | None = None
) -> StepStatsQuery:
    """The store's query for :meth:`nbflow.Runtime.step_stats`'s arguments (checked)."""
    return StepStatsQuery(
        name=_text(name, "A step name"),
        since=to_epoch(since, "since"),
        until=to_epoch(until, "until"),
    )
