"""The threads workflows run in: a thread per running workflow, kept for the next one a while.

Starting a thread costs more than it seems when many workflows start at once: ``Thread.start``
waits until the new thread runs, and with a hundred others running the caller waits for the
interpreter lock each time. So a thread whose workflow ended waits (idle, ``nbflow-idle``) for the
next workflow to start, for up to :data:`IDLE_SECONDS`, and takes it at once. A workflow never
waits for a thread: when none is idle a new one starts, so there are never fewer threads than
running workflows (one that waits for a message or a child holds its thread, as before).

Each workflow runs in a fresh :class:`contextvars.Context`, as in a new thread, and its thread is
named ``nbflow-workflow-<id>`` while it runs it.
"""

from __future__ import annotations

import collections
import contextvars
import threading
from collections.abc import Callable

__all__ = ["IDLE_SECONDS", "WorkflowThreads"]

#: How long a thread whose workflow ended waits for another before it ends.
IDLE_SECONDS = 2.0

_IDLE_NAME = "nbflow-idle"


class WorkflowThreads:
    """Runs each callable it is handed in a thread of its own, reusing idle ones; :meth:`close`
    ends the idle threads (and those that become idle after).

    The callables wait in one queue, taken first in, first out by the threads: workflows begin
    in the order they were started, as when each started a thread of its own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._tasks: collections.deque[tuple[Callable[[], object], str]] = collections.deque()
        self._waiting = 0  # idle threads waiting for a task
        self._closed = False

    def run(self, task: Callable[[], object], name: str) -> None:
        """Run ``task()`` in a thread named ``name`` now: an idle one, else a new one.

        Raises:
            RuntimeError: No thread could be started.
        """
        with self._cond:
            self._tasks.append((task, name))
            if self._waiting >= len(self._tasks):  # an idle thread for each task queued
                self._cond.notify()
                return
        try:
            threading.Thread(target=self._serve, name=name, daemon=True).start()
        except RuntimeError:  # no thread to be had: the task is not run, unless taken meanwhile
            with self._cond:
                if (task, name) not in self._tasks:
                    return
                self._tasks.remove((task, name))
            raise

    def close(self) -> None:
        """End the idle threads; threads running a workflow end when it does."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _serve(self) -> None:
        current = threading.current_thread()
        while True:
            with self._cond:
                if not self._tasks and not self._closed:
                    current.name = _IDLE_NAME
                    self._waiting += 1
                    try:
                        self._cond.wait(IDLE_SECONDS)
                    finally:
                        self._waiting -= 1
                if not self._tasks:  # waited long enough, or closed
                    return
                task, current.name = self._tasks.popleft()
            contextvars.Context().run(task)
