"""Schedules on the command line: what ``nbflow list --import MODULE`` shows under its table.

``nbflow worker`` runs the schedules of the modules it imports (its runtime does, as any
runtime does); ``nbflow list`` only shows them: it forgets them before it opens its database.
"""

from __future__ import annotations

from collections.abc import Sequence

from nbflow.cli._commands import import_modules
from nbflow.workflow._schedules import ScheduleInfo, list_schedules, remove_schedule

__all__ = ["schedules_of"]


def schedules_of(modules: Sequence[str]) -> list[ScheduleInfo]:
    """The schedules ``modules`` declare, with their next tick; none of them runs here.

    Raises:
        ConfigurationError: A module cannot be imported.
    """
    if not modules:
        return []
    import_modules(modules)
    schedules = list_schedules()
    for schedule in schedules:  # so that the runtime this command opens runs none of them
        remove_schedule(schedule.name)
    return schedules
