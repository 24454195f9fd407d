"""Queues with rate and partition limits for the queue option tests (imported by ``nbflow worker
--import tests.apps.queueoptsapp``).

Each run of :func:`job` appends ``start <i> <pid> <time>`` and ``end <i> <pid> <time>`` to the file
named by ``$NBFLOW_QUEUE_LOG`` (the step of :mod:`tests.apps.queueapp`).
"""

from __future__ import annotations

import nbflow
from tests.apps.queueapp import work

#: At most four of its workflows start in any 1.5 s, in all processes together; at most two run
#: at once in one process (so that two workers share the work).
rated = nbflow.Queue("tests-rated", worker_concurrency=2, rate=(4, 1.5))
#: At most one workflow per partition key runs at once, in all processes together; one per
#: process (so that the work is spread over the workers).
tenants = nbflow.Queue("tests-tenants", worker_concurrency=1, partition_concurrency=1)


@nbflow.workflow(name="tests.apps.queueoptsapp.job")
def job(i: int, seconds: float = 0.1) -> int:
    return work(i, seconds) * 10
