"""The scheduler: the thread (``nbflow-schedules``) that starts a runtime's scheduled workflows.

It sleeps until the soonest next tick of the schedules declared in the process (see
:mod:`nbflow.workflow._schedules`), or until a schedule is declared or the runtime closes, then
starts each schedule whose tick has come. A tick that passed while the thread could not run (the
process stopped, the machine slept) is not run late; a schedule declared with ``catch_up`` runs
the ticks it missed since its latest recorded one when this runtime first takes it up.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

from nbflow.workflow._schedules import (
    Schedule,
    declared_schedules,
    missed_ticks,
    next_tick,
)

__all__ = ["Scheduler"]

logger = logging.getLogger("nbflow")

#: How long (seconds) the thread waits before trying again after the database failed.
RETRY_INTERVAL = 1.0
#: The longest it sleeps at once (seconds): a change of the wall clock, or a machine that slept,
#: is noticed within it.
MAX_WAIT = 60.0
#: A tick this late (seconds) was missed (the process or the machine stopped): not run late.
LATE = 60.0


class _Plan(NamedTuple):
    """A schedule the thread follows, and its next tick."""

    schedule: Schedule
    tick: dt.datetime


class Scheduler:
    """Starts the scheduled workflows of one runtime (thread ``nbflow-schedules``).

    Args:
        fire: ``fire(schedule, tick)`` starts the schedule's workflow for ``tick`` (an id that
            exists: nothing happens).
        last_tick: ``last_tick(name)``: the latest tick of the schedule recorded in the
            database, or None (read only for schedules that catch up).
    """

    def __init__(
        self,
        fire: Callable[[Schedule, dt.datetime], None],
        last_tick: Callable[[str], dt.datetime | None],
    ) -> None:
        self._fire = fire
        self._last_tick = last_tick
        self._plans: dict[str, _Plan] = {}
        self._failing: set[str] = set()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nbflow-schedules", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the declared schedules again (one was declared or removed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                timeout = self._round()
            except Exception:  # the runtime closing, or the database failing: try again later
                if self._stopping:
                    return
                logger.warning("nbflow could not run its schedules", exc_info=True)
                timeout = RETRY_INTERVAL
            self._wake.wait(timeout)

    def _round(self) -> float | None:
        """Take up new schedules, start those whose tick has come; seconds until the next tick
        (None: no schedule)."""
        declared = declared_schedules()
        for name, plan in list(self._plans.items()):
            if declared.get(name) is not plan.schedule:  # removed, or declared again
                del self._plans[name]
        now = _now()
        for name, schedule in declared.items():
            if name not in self._plans:
                if schedule.catch_up:
                    self._catch_up(schedule, now)
                self._plans[name] = _Plan(schedule, next_tick(schedule.cron, now))
        for name, plan in list(self._plans.items()):
            if self._stopping:
                return None
            if plan.tick <= now:
                if (now - plan.tick).total_seconds() <= LATE:
                    self._start(plan.schedule, plan.tick)
                # the ticks that passed meanwhile are not run late
                self._plans[name] = plan._replace(tick=next_tick(plan.schedule.cron, _now()))
        if not self._plans:
            return None
        soonest = min(plan.tick for plan in self._plans.values())
        return min(MAX_WAIT, max(0.0, (soonest - _now()).total_seconds()))

    def _catch_up(self, schedule: Schedule, now: dt.datetime) -> None:
        last = self._last_tick(schedule.name)
        if last is not None:
            for tick in missed_ticks(schedule.cron, last, now, schedule.catch_up):
                self._start(schedule, tick)

    def _start(self, schedule: Schedule, tick: dt.datetime) -> None:
        try:
            self._fire(schedule, tick)
        except Exception:  # e.g. inputs it cannot store: the next tick tries again
            if self._stopping:
                return
            failing = schedule.name in self._failing  # said once, until a tick starts again
            self._failing.add(schedule.name)
            logger.log(
                logging.DEBUG if failing else logging.WARNING,
                "nbflow could not start schedule %r for %s",
                schedule.name,
                tick,
                exc_info=True,
            )
        else:
            self._failing.discard(schedule.name)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
