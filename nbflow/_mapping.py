"""``nbflow.map`` inside a workflow: each item a checkpointed step, run in parallel, in order.

At the call, the map reserves one function id per item and one per progress item, in program
order; so however the items interleave, a replay finds each item's checkpoint at the same place.
Items whose checkpoint exists return it without running; the others run at most
``concurrency`` at a time (starts paced by ``rate``):

- on nbflow's worker threads, or a :class:`~concurrent.futures.ThreadPoolExecutor` given as
  ``executor``: each item runs as a step of the workflow (its stream writes are credited to it,
  its retries follow the step's policy) and is recorded there;
- on any other executor (a process pool, a Dask cluster's): the function and the item are sent
  to it, the result comes back and is recorded here. Such an item has no workflow context where it
  runs: a stream write from it raises :class:`~nbflow.NotInWorkflowError`.

After each item a progress item ``{"done", "total", "message"}`` goes to the stream
``progress``. An item that still fails after its retries is not checkpointed: the map stops
starting items, waits for those in flight (their checkpoints are kept), and raises that item's
error, so a resume runs only what failed or never ran.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from typing import Any

from nbflow import _steps as steps
from nbflow._calls import MapOptions, step_of
from nbflow._context import WorkflowContext, mark_remote
from nbflow._execution import Execution
from nbflow._tables import step_label
from nbflow._workers import Pacer, Workers

__all__ = ["call_remote", "prepare_map", "run_map"]


def call_remote(fn: Callable[..., Any], item: Any, name: str, attempt: int = 1) -> Any:
    """Run a map item in another process (module-level, so executors can pickle it).

    ``attempt`` makes each retry a call of its own: an executor that caches calls by their
    arguments (a Dask client's, by default) would hand back the failed one."""
    with mark_remote(name):
        # A forked worker inherits the forking thread's context, that is the workflow body's
        # scope: the item must not run as a step of a workflow whose writer is not here.
        return contextvars.Context().run(fn, item)


class _Map:
    """One map being run by the workflow body's thread."""

    def __init__(
        self,
        ex: Execution,
        ctx: WorkflowContext,
        fn: Callable[..., Any],
        items: list[Any],
        options: MapOptions,
    ) -> None:
        self.ex, self.ctx, self.items, self.options = ex, ctx, items, options
        self.fn, self.step = fn, step_of(fn)
        self.item_ids = ex.reserve(len(items))
        self.progress_ids = ex.reserve(len(items) + 1)
        self.results: list[Any] = [None] * len(items)
        self.failure: tuple[int, BaseException] | None = None
        self.errors: dict[int, Exception] = {}
        self.done = 0
        executor = options.executor
        self.local = executor is None or isinstance(
            executor, (concurrent.futures.ThreadPoolExecutor, Workers)
        )

    def todo(self) -> list[int]:
        """The indexes of the items without a checkpoint (those with one are taken from it)."""
        todo = []
        for index, function_id in enumerate(self.item_ids):
            record = self.ex.replayed(function_id, "step", self.step.name)
            if record is None:
                todo.append(index)
            else:
                what = f"step {self.step.name!r}"
                self.results[index] = steps.replay_outcome(self.ex, function_id, record, what)
                self.done += 1
        return todo

    def progress(self, message: str | None = None) -> None:
        total = len(self.items)
        value = {"done": self.done, "total": total, "message": message}
        self.ex.write_stream("progress", value, at=self.progress_ids[self.done])

    def submit(
        self, pool: concurrent.futures.Executor, index: int, attempt: int = 1
    ) -> concurrent.futures.Future[Any]:
        item, function_id = self.items[index], self.item_ids[index]
        if self.local:
            step = self.step._replace(keep_errors=False)
            return pool.submit(self.ctx.run_step, step, (item,), {}, function_id)
        return pool.submit(call_remote, self.fn, item, self.step.name, attempt)

    def run(self) -> list[Any]:
        """Run the items without a checkpoint; the results, in input order."""
        __tracebackhide__ = True
        ex = self.ex
        todo = iter(self.todo())
        self.progress()
        own = self.options.executor is None
        pool = Workers(self.options.concurrency, "map") if own else self.options.executor
        try:
            _schedule(self, pool, todo)
        finally:
            if own:
                pool.shutdown(wait=True, cancel_futures=True)
        ex.check_running()
        if self.failure is not None:
            index, error = self.failure
            where = f"{self.label(index)} of {len(self.items)}"
            _note(error, f"nbflow.map: {where} failed in step {step_label(self.step.name)!r}")
            raise error
        return self.results

    def label(self, index: int) -> str:
        label = self.options.label
        return f"item {index}" + ("" if label is None else f" ({label(self.items[index])})")

    def finished(self, index: int, future: concurrent.futures.Future[Any], started: float) -> bool:
        """Take a finished item's outcome; False when it failed (and is not retried here)."""
        __tracebackhide__ = True
        error = future.exception()  # (not future.result(): its frames would join the traceback)
        if isinstance(error, Exception):
            self.errors[index] = error
            return False
        value = future.result()
        if not self.local:  # the checkpoint of an item that ran elsewhere is written here
            ex, name = self.ex, self.step.name
            encoded = ex.engine.encode(value, f"the output of step {name!r}")
            span = (started, time.time())
            ex.append(steps.step_row(ex.workflow_id, self.item_ids[index], name, span, encoded))
        self.results[index] = value
        self.done += 1
        self.progress(self.label(index))
        return True


def run_map(
    ex: Execution,
    ctx: WorkflowContext,
    fn: Callable[..., Any],
    items: list[Any],
    options: MapOptions,
) -> list[Any]:
    """Run ``fn`` over ``items`` in the body of ``ex`` (see the module docstring)."""
    __tracebackhide__ = True
    return prepare_map(ex, ctx, fn, items, options)()


def prepare_map(
    ex: Execution,
    ctx: WorkflowContext,
    fn: Callable[..., Any],
    items: list[Any],
    options: MapOptions,
) -> Callable[[], list[Any]]:
    """Reserve the map's function ids now (in program order); return what runs it, from any
    thread (``map_async`` runs it in a thread of its own)."""
    run = _Map(ex, ctx, fn, items, options)
    return run.run


def _schedule(run: _Map, pool: concurrent.futures.Executor, todo: Iterator[int]) -> None:
    """Keep at most ``concurrency`` items in flight until all ran or one failed for good."""
    ex, pacer = run.ex, Pacer(run.options.per_second)
    in_flight: dict[concurrent.futures.Future[Any], tuple[int, float]] = {}
    tries: dict[int, int] = {}
    while True:
        while run.failure is None and ex.running and len(in_flight) < run.options.concurrency:
            index = next(todo, None)
            if index is None:
                break
            pacer.wait(ex.wakeup)
            in_flight[run.submit(pool, index)] = (index, time.time())
        if not in_flight:
            return
        finished, _ = concurrent.futures.wait(in_flight, return_when="FIRST_COMPLETED")
        for future in finished:
            index, started = in_flight.pop(future)
            if run.finished(index, future, started):
                continue
            error, delay = run.errors.pop(index), None
            if not run.local and ex.running:  # an item run elsewhere is retried from here
                tries[index] = tries.get(index, 0) + 1
                delay = run.step.policy.delay(tries[index])
            if delay is None:
                run.failure = run.failure or (index, error)
            else:
                ex.wakeup.wait(delay)
                in_flight[run.submit(pool, index, tries[index] + 1)] = (index, started)


def _note(error: BaseException, text: str) -> None:
    """Say which item failed, in the traceback (Python 3.11+) and as ``error.nbflow_map_item``."""
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(text)
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        error.nbflow_map_item = text  # type: ignore[attr-defined]
