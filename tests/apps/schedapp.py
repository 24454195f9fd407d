"""A schedule for the schedule tests (imported by ``nbflow worker --import tests.apps.schedapp``).

Only child processes import it: a schedule declared in the test process would be run by every
runtime the later tests open. Each run of :func:`every_second` appends ``<tick> <pid>`` to the
file named by ``$NBFLOW_SCHED_LOG`` (from a step: the side effect a test counts), then sleeps
``$NBFLOW_SCHED_SLEEP`` seconds (0 unless set: a test that kills a worker mid-tick sets it).
"""

from __future__ import annotations

import datetime as dt
import os
import time

import nbflow


@nbflow.step(name="tests.apps.schedapp.note")
def note(tick: str) -> None:
    with open(os.environ["NBFLOW_SCHED_LOG"], "a", encoding="utf-8") as file:
        file.write(f"{tick} {os.getpid()}\n")
    time.sleep(float(os.environ.get("NBFLOW_SCHED_SLEEP", "0")))


@nbflow.scheduled("* * * * * *")  # six fields, seconds first: every second
@nbflow.workflow(name="tests.apps.schedapp.every_second")
def every_second(scheduled_time: dt.datetime, actual_time: dt.datetime) -> str:
    note(scheduled_time.isoformat())
    return scheduled_time.isoformat()
