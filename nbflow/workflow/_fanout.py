"""Fanning items out to an executor: at most ``concurrency`` in flight, retries, the rate.

:class:`Fanout` is the loop both maps share: ``nbflow.map`` inside a workflow
(:mod:`nbflow.engine._parallel`, items as checkpointed steps) and outside one (:mod:`nbflow.workflow._parallel`,
plain calls). What is done with each item is the :class:`Items`' business; the loop keeps at most
``concurrency`` items in flight (an item waiting to be retried counts), retries items that ran in
another process after their policy's delay, sends an item that reached its worker after its
window of the rate (:class:`~nbflow.workflow._remote.RemoteOutcome` ``late``) again with a new window, and
stops starting items once one failed for good or the workflow stopped (``running``). Items on
threads of this process retry and take their slots of the rate where they run.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import time
from collections.abc import Iterator
from typing import Any, Protocol

from nbflow.workflow._alarm import Alarm
from nbflow.workflow._calls import RetryPolicy
from nbflow.workflow._remote import Output, RemoteOutcome, output_of

__all__ = ["Fanout", "Items"]


class Items(Protocol):
    """The items of one map, as :class:`Fanout` runs them.

    Attributes:
        failure: The first item that failed for good and its error, else None.
        local: Whether items run on threads of this process (else in other processes: retried
            and paced from here, their output carried back).
        policy: The retry policy of items run elsewhere.
        alarm: Rings to cut a wait for a retry short (a cancel, a closing runtime).
    """

    failure: tuple[int, BaseException] | None
    local: bool
    policy: RetryPolicy
    alarm: Alarm

    @property
    def running(self) -> bool:
        """Whether items may still start (False once the workflow is cancelled or stopping)."""

    def submit(
        self, pool: concurrent.futures.Executor, index: int, attempt: int
    ) -> concurrent.futures.Future[Any]:
        """Start attempt ``attempt`` (1, 2, … in this run) of item ``index``."""

    def succeeded(self, index: int, value: Any, started: float, attempts: int) -> None:
        """Item ``index`` returned ``value`` (a :class:`RemoteOutcome` from elsewhere)."""

    def printed(self, index: int, attempt: int, output: Output) -> None:
        """What attempt ``attempt`` of item ``index``, run elsewhere, printed before it raised."""


class Fanout:
    """Runs the items of one map on ``pool`` (see the module docstring)."""

    def __init__(self, items: Items, pool: concurrent.futures.Executor, concurrency: int) -> None:
        self.items, self.pool, self.concurrency = items, pool, concurrency
        self.in_flight: dict[concurrent.futures.Future[Any], int] = {}
        self.retries: list[tuple[float, int]] = []  # (when, index): items to run again
        self.attempts: dict[int, int] = {}  # index -> attempts made in this run
        self.started: dict[int, float] = {}

    def go_on(self) -> bool:
        return self.items.failure is None and self.items.running

    def start(self, index: int, again: bool = False) -> None:
        """Start the item's next attempt (``again``: the same attempt, which arrived late)."""
        attempt = self.attempts.get(index, 0) + (not again)
        self.attempts[index] = attempt
        self.started.setdefault(index, time.time())
        self.in_flight[self.items.submit(self.pool, index, attempt)] = index

    def run(self, todo: Iterator[int]) -> None:
        """Run the items ``todo`` until all ran, or one failed for good, or the workflow stops."""
        while True:
            while self.go_on() and self.retries and self.retries[0][0] <= time.monotonic():
                self.start(heapq.heappop(self.retries)[1])
            while self.go_on() and len(self.in_flight) + len(self.retries) < self.concurrency:
                index = next(todo, None)
                if index is None:
                    break
                self.start(index)
            if not self.go_on():
                self.retries.clear()  # (not run again: a resume runs them)
            if not self.in_flight and not self.retries:
                return
            timeout = None
            if self.retries:
                timeout = max(0.0, self.retries[0][0] - time.monotonic())
            if not self.in_flight:
                self.items.alarm.pause(timeout)  # (a cancel or a close cuts the backoff short)
                continue
            finished, _ = concurrent.futures.wait(
                self.in_flight, timeout, return_when="FIRST_COMPLETED"
            )
            for future in finished:
                self.finished(self.in_flight.pop(future), future)

    def finished(self, index: int, future: concurrent.futures.Future[Any]) -> None:
        """Take an attempt's outcome: the item's result, a retry, or the map's failure."""
        __tracebackhide__ = True
        items, attempts = self.items, self.attempts[index]
        error = future.exception()  # (not future.result(): its frames would join the traceback)
        if not isinstance(error, Exception):
            value = future.result()
            if not items.local and isinstance(value, RemoteOutcome) and value.late:
                if self.go_on():
                    self.start(index, again=True)  # it did not run: a new window of the rate
                return
            items.succeeded(index, value, self.started[index], attempts)
            return
        delay = None
        if not items.local:
            items.printed(index, attempts, output_of(error))
            if items.running:
                delay = items.policy.after(attempts, error)
        if delay is None:
            items.failure = items.failure or (index, error)
        else:
            heapq.heappush(self.retries, (time.monotonic() + delay, index))
