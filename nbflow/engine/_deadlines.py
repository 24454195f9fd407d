"""Workflow timeouts: one thread per runtime cancels each workflow when its deadline passes."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Deadlines"]

logger = logging.getLogger("nbflow")


class Deadlines:
    """Deadlines of running workflows; ``passed(workflow_id, deadline)`` is called when one passes.

    The thread (``nbflow-deadlines``) starts with the first deadline and stops on :meth:`close`.
    """

    def __init__(self, passed: Callable[[str, float], None]) -> None:
        self._passed = passed
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, deadline: float, workflow_id: str) -> None:
        """Cancel ``workflow_id`` at ``deadline`` (epoch seconds), unless it ended by then."""
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._heap, (deadline, workflow_id))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="nbflow-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.time()):
                    self._cond.wait(None if not self._heap else self._heap[0][0] - time.time())
                if self._closed:
                    return
                deadline, workflow_id = heapq.heappop(self._heap)
            try:
                self._passed(workflow_id, deadline)
            except Exception:  # a closing runtime, a lost database: the next open sees the deadline
                logger.warning(
                    "nbflow could not cancel workflow %r at its deadline",
                    workflow_id,
                    exc_info=True,
                )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
