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

import contextvars
import threading
from collections.abc import Callable

__all__ = ["IDLE_SECONDS", "WorkflowThreads"]

#: How long a thread whose workflow ended waits for another before it ends.
IDLE_SECONDS = 2.0

_IDLE_NAME = "nbflow-idle"


class _Idle:
    """A thread waiting for work: the work it is handed, and the event that wakes it."""

    __slots__ = ("task", "wake")

    def __init__(self) -> None:
        self.task: tuple[Callable[[], object], str] | None = None
        self.wake = threading.Event()


class WorkflowThreads:
    """Runs each callable it is handed in a thread of its own, reusing idle ones; :meth:`close`
    ends the idle threads (and those that become idle after)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Idle] = []
        self._closed = False

    def run(self, task: Callable[[], object], name: str) -> None:
        """Run ``task()`` in a thread named ``name`` now: an idle one, else a new one.

        Raises:
            RuntimeError: No thread could be started.
        """
        with self._lock:
            if self._idle:
                idle = self._idle.pop()
                idle.task = (task, name)
                idle.wake.set()
                return
        threading.Thread(target=self._serve, args=(task,), name=name, daemon=True).start()

    def close(self) -> None:
        """End the idle threads; threads running a workflow end when it does."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for waiting in idle:
            waiting.wake.set()

    def _serve(self, task: Callable[[], object]) -> None:
        current = threading.current_thread()
        me = _Idle()
        while True:
            contextvars.Context().run(task)
            current.name = _IDLE_NAME
            with self._lock:
                if self._closed:
                    return
                me.task = None
                me.wake.clear()
                self._idle.append(me)
            me.wake.wait(IDLE_SECONDS)
            with self._lock:
                if me.task is None:  # timed out, or closed: nobody will hand it work
                    if me in self._idle:
                        self._idle.remove(me)
                    return
            task, current.name = me.task
