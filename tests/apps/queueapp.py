"""Queues and workflows for the queue tests (imported by ``nbflow worker --import tests.apps.queueapp``).

Each run of :func:`job` appends ``start <i> <pid> <time>`` and ``end <i> <pid> <time>`` to the file
named by ``$NBFLOW_QUEUE_LOG``, so a test can tell which process ran what, and how many ran at once.
"""

from __future__ import annotations

import os
import time

import nbflow

#: At most two of its workflows run at once, in all processes together.
shared = nbflow.Queue("tests-shared", concurrency=2)
#: The same across workers: at most two at once in all, one per process (so work is shared).
spread = nbflow.Queue("tests-spread", concurrency=2, worker_concurrency=1)
#: At most one per process.
per_worker = nbflow.Queue("tests-per-worker", worker_concurrency=1)


def _log(line: str) -> None:
    with open(os.environ["NBFLOW_QUEUE_LOG"], "a", encoding="utf-8") as file:
        file.write(line + "\n")


@nbflow.step(name="tests.apps.queueapp.work")
def work(i: int, seconds: float) -> int:
    _log(f"start {i} {os.getpid()} {time.time()}")
    time.sleep(seconds)  # the work itself: it keeps a slot busy
    _log(f"end {i} {os.getpid()} {time.time()}")
    return i


@nbflow.workflow(name="tests.apps.queueapp.job")
def job(i: int, seconds: float = 0.1) -> int:
    return work(i, seconds) * 10
