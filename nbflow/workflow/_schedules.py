"""Schedules: a workflow started by every open runtime at each tick of a cron expression.

``@nbflow.scheduled("*/5 * * * *")`` above ``@nbflow.workflow`` declares the schedule in this
process, as :class:`~nbflow.Queue` declares a queue. Every runtime of the process (a notebook's, a
script's, ``nbflow worker``'s) runs it from then on: its scheduler thread (``nbflow-schedules``)
starts the workflow at each tick with the id ``sched-<workflow name>-<tick, ISO 8601>``. Since
starting an id that exists returns that workflow, each tick runs once in all the processes that
share a database, however many declare the schedule.

The cron text is parsed by croniter: five fields (minute, hour, day of month, month, day of
week), or six with the seconds FIRST (``"*/10 * * * * *"``: every ten seconds), as DBOS reads it.
Times are UTC.
"""

from __future__ import annotations

import datetime as dt
import inspect
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol, TypeVar

from nbflow.workflow._workflows import WorkflowFunction, lookup_workflow

__all__ = [
    "MAX_CATCH_UP",
    "Schedule",
    "ScheduleInfo",
    "ScheduleServer",
    "declared_schedules",
    "list_schedules",
    "missed_ticks",
    "next_tick",
    "remove_schedule",
    "schedule_id",
    "schedule_prefix",
    "scheduled",
    "serve_declared_schedules",
    "tick_of",
]

#: How many missed ticks ``catch_up=True`` runs at most (the most recent ones).
MAX_CATCH_UP = 100

_EXAMPLE = '"*/5 * * * *" (every five minutes) or "*/10 * * * * *" (every ten seconds)'

W = TypeVar("W")


class Schedule(NamedTuple):
    """A declared schedule: the workflow, its cron text, and how many missed ticks it catches up."""

    workflow: WorkflowFunction
    cron: str
    catch_up: int

    @property
    def name(self) -> str:
        """The schedule's name: its workflow's registered name."""
        return self.workflow.name


class ScheduleInfo(NamedTuple):
    """A declared schedule as :func:`list_schedules` shows it."""

    name: str
    """The registered name of its workflow."""
    cron: str
    """Its cron text."""
    next_tick: dt.datetime
    """When it runs next (UTC)."""
    catch_up: int
    """How many missed ticks it runs late at most (0: none)."""


class ScheduleServer(Protocol):
    """Something that runs schedules (a runtime), told when one is declared."""

    def serve_schedules(self) -> None: ...


_schedules: dict[str, Schedule] = {}
_servers: weakref.WeakSet[Any] = weakref.WeakSet()


def serve_declared_schedules(server: ScheduleServer) -> None:
    """Call ``server.serve_schedules()`` whenever a schedule is declared (while ``server`` lives)."""
    _servers.add(server)


def scheduled(cron: str, *, catch_up: bool | int = False) -> Callable[[W], W]:
    """Run a workflow at each tick of ``cron``, once per tick across processes.

    Write it above ``@nbflow.workflow``; the workflow takes ``(scheduled_time, actual_time)``:
    the tick, and when it was started (UTC-aware datetimes). Every open runtime of this process
    runs the schedule once it is declared, including ``nbflow worker`` for the modules it
    imports. Declaring it opens no runtime: in a notebook, ``nbflow.configure()`` (or any call
    that opens the default runtime) starts it.
    Each tick is the workflow ``sched-<workflow name>-<tick>``, so it runs once however many
    processes sharing the database declare the schedule, and is recovered like any other.

    Ticks missed while no runtime ran are not run late, unless ``catch_up`` asks for it: then,
    when a runtime first takes the schedule up, it starts the ticks missed since the latest one
    recorded in the database (oldest first; none if no tick was ever recorded): at most
    :data:`MAX_CATCH_UP` (100) with ``catch_up=True``, at most ``catch_up`` with a number.

    Re-running a notebook cell that defines the workflow again without this decorator ends the
    schedule.

    Args:
        cron: Five fields (minute hour day month weekday), or six with the seconds first, UTC.
        catch_up: Whether (True, or how many at most) to run missed ticks late.

    Raises:
        ValueError: The cron text is not five or six valid fields, or ``catch_up`` is negative.
        TypeError: It is not written above ``@nbflow.workflow``, or the workflow cannot take
            two arguments.

    Example:
        >>> @nbflow.scheduled("0 6 * * *")          # every day at 06:00 UTC
        ... @nbflow.workflow
        ... def morning_report(scheduled_time, actual_time):
        ...     ...
    """
    check_cron(cron)
    limit = _catch_up_limit(catch_up)

    def decorate(wf: W) -> W:
        if not isinstance(wf, WorkflowFunction):
            raise TypeError(
                f"@nbflow.scheduled({cron!r}) goes above @nbflow.workflow, not below it nor on "
                f"a plain function ({wf!r}): write @nbflow.scheduled({cron!r}) on the line "
                "above @nbflow.workflow."
            )
        _check_signature(wf)
        _schedules[wf.name] = Schedule(wf, cron, limit)  # declared again: replaced
        for server in list(_servers):
            server.serve_schedules()
        return wf

    return decorate


def _croniter(cron: str, start: dt.datetime | None = None) -> Any:
    """croniter over ``cron`` from ``start``, seconds first (imported here: ``import nbflow``
    does not pay croniter's 12 ms unless a schedule is declared)."""
    from croniter import croniter

    return croniter(cron, start, second_at_beginning=True)


def check_cron(cron: object) -> None:
    """Raise ValueError unless ``cron`` is five or six cron fields croniter reads."""
    from croniter import croniter

    fields = cron.split() if isinstance(cron, str) else []
    if len(fields) in (5, 6) and croniter.is_valid(cron, second_at_beginning=True):
        return
    raise ValueError(
        f"Invalid cron schedule {cron!r}: give five fields (minute hour day month weekday) or "
        f"six with the seconds first, e.g. {_EXAMPLE}."
    )


def _catch_up_limit(catch_up: bool | int) -> int:
    if catch_up is True:
        return MAX_CATCH_UP
    if catch_up is False:
        return 0
    if isinstance(catch_up, int) and catch_up >= 0:
        return catch_up
    raise ValueError(f"catch_up must be False, True or a number of ticks >= 0, not {catch_up!r}.")


def _check_signature(wf: WorkflowFunction) -> None:
    try:
        inspect.signature(wf.fn).bind(dt.datetime.now(dt.timezone.utc), None)
    except TypeError:
        raise TypeError(
            f"A scheduled workflow takes (scheduled_time, actual_time); {wf.name!r} cannot be "
            "called with these two arguments. Give it these two parameters."
        ) from None
    except ValueError:  # no signature to read (a builtin): let it be
        pass


def declared_schedules() -> dict[str, Schedule]:
    """The schedules declared in this process, by name.

    One whose workflow was defined again without ``@scheduled`` (a re-run cell) is dropped.
    """
    for name, schedule in list(_schedules.items()):
        if lookup_workflow(name) is not schedule.workflow:
            _schedules.pop(name, None)
    return dict(_schedules)


def remove_schedule(name: str) -> None:
    """Forget the schedule of the workflow registered as ``name`` (runtimes stop running it)."""
    if _schedules.pop(name, None) is not None:
        for server in list(_servers):
            server.serve_schedules()


def list_schedules() -> list[ScheduleInfo]:
    """The schedules declared in this process, with their next tick, soonest first.

    Example:
        >>> for s in nbflow.list_schedules():
        ...     print(s.name, s.cron, s.next_tick)
    """
    now = _now()
    infos = [
        ScheduleInfo(s.name, s.cron, next_tick(s.cron, now), s.catch_up)
        for s in declared_schedules().values()
    ]
    return sorted(infos, key=lambda info: (info.next_tick, info.name))


def next_tick(cron: str, after: dt.datetime) -> dt.datetime:
    """The first tick of ``cron`` strictly after ``after`` (an aware datetime), in UTC."""
    tick: dt.datetime = _croniter(cron, after).get_next(dt.datetime)
    return tick.astimezone(dt.timezone.utc).replace(fold=0)


def missed_ticks(cron: str, last: dt.datetime, now: dt.datetime, limit: int) -> list[dt.datetime]:
    """The ticks of ``cron`` after ``last`` and at or before ``now``: the ``limit`` latest ones,
    oldest first."""
    found: list[dt.datetime] = []
    if limit <= 0:
        return found
    it = _croniter(cron, now + dt.timedelta(microseconds=1))
    for tick in _backwards(it):
        if tick <= last or len(found) == limit:
            break
        found.append(tick)
    return found[::-1]


def _backwards(it: Any) -> Iterator[dt.datetime]:
    while True:
        tick: dt.datetime = it.get_prev(dt.datetime)
        yield tick.astimezone(dt.timezone.utc).replace(fold=0)


def schedule_prefix(name: str) -> str:
    """What the ids of schedule ``name``'s workflows start with."""
    return f"sched-{name}-"


def schedule_id(name: str, tick: dt.datetime) -> str:
    """The id of the workflow that runs schedule ``name`` at ``tick`` (as DBOS names it)."""
    return schedule_prefix(name) + tick.astimezone(dt.timezone.utc).isoformat()


def tick_of(name: str, workflow_id: str) -> dt.datetime | None:
    """The tick in a workflow id made by :func:`schedule_id` for ``name``, or None."""
    prefix = schedule_prefix(name)
    if not workflow_id.startswith(prefix):
        return None
    try:
        tick = dt.datetime.fromisoformat(workflow_id[len(prefix) :])
    except ValueError:
        return None
    return tick if tick.tzinfo is not None else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
