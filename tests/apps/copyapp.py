"""A workflow for the copy tests, run in a child process that the test kills, and by
``nbflow worker --queue tests-copy --import tests.apps.copyapp`` on the database it was copied to.

Usage::

    python tests/apps/copyapp.py DB N

runs :func:`writer` under the id :data:`WRITER_ID` on DB: N steps, each returning ``i * i``
(and appending ``ran <i> <pid>`` to ``$NBFLOW_COPY_LOG`` when set), each result written to the
stream ``items`` from the workflow body (exactly once). Then it waits to be killed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nbflow

WRITER_ID = "copy-writer"
#: `nbflow worker` serves a queue; the copied workflow is recovered by it, not enqueued.
queue = nbflow.Queue("tests-copy")


@nbflow.step(name="tests.apps.copyapp.item")
def item(i: int) -> int:
    log = os.environ.get("NBFLOW_COPY_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"ran {i} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
    time.sleep(0.01)  # the work: a kill from the parent lands mid-run
    return i * i


@nbflow.workflow(name="tests.apps.copyapp.writer")
def writer(n: int) -> int:
    for i in range(n):
        nbflow.write_stream("items", item(i))
    return n


if __name__ == "__main__":
    database, count = sys.argv[1], int(sys.argv[2])
    with nbflow.configure(database), nbflow.set_workflow_id(WRITER_ID):
        nbflow.start(writer, count).result()
        threading.Event().wait()  # finished before the kill: wait for it all the same
