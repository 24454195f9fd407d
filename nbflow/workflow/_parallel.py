"""Parallel steps: ``nbflow.map``, ``nbflow.map_async`` and ``nbflow.Executor``.

Inside a workflow body, every item of a map and every call submitted to an :class:`Executor` is
a checkpointed step whose position in the workflow is taken at the call, in program order, so a
replay or a resume returns each one's own result however they interleaved (see
:mod:`nbflow.engine._parallel`). Outside a workflow (or inside a step) they are plain parallel calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nbflow.workflow import _context as context
from nbflow.workflow._alarm import Alarm
from nbflow.workflow._calls import NO_RETRY, MapOptions, Step, step_of
from nbflow.workflow._fanout import Fanout
from nbflow.workflow._remote import Output, RemoteOutcome, call_remote, replay_output
from nbflow.workflow._workers import Pacer, Workers, parse_rate

__all__ = ["Executor", "in_process", "map", "map_async"]


def _options(
    concurrency: int,
    rate: str | float | tuple[float, float] | None,
    executor: Any,
    key: Callable[[Any], Any] | None,
) -> MapOptions:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, not {concurrency!r}.")
    if executor is not None and not isinstance(executor, concurrent.futures.Executor):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor (a ThreadPoolExecutor, a "
            f"ProcessPoolExecutor, a Dask client's get_executor()), not {executor!r}."
        )
    if key is not None and not callable(key):
        raise TypeError(f"key must be a function of an item (its label), not {key!r}.")
    return MapOptions(concurrency, parse_rate(rate), executor, key)


def map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    concurrency: int = 8,
    rate: str | float | tuple[float, float] | None = None,
    executor: concurrent.futures.Executor | None = None,
    key: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Call ``fn(item)`` for every item, in parallel; the results in input order.

    Inside a workflow each item is a checkpointed step: a replay or resume returns the finished
    items from their checkpoints and runs only the rest, and progress items go to the stream
    ``progress`` (a live view shows the map). An item that still fails after the step's retries
    stops the map: items in flight finish (and keep their checkpoints), then its error is raised,
    naming the item; a resume runs only what failed or never ran.

    Args:
        fn: A function of one item, usually a ``@nbflow.step`` (its name and retry policy apply).
        items: What to call it on.
        concurrency: At most this many items run at once.
        rate: At most this many starts per time, for rate-limited APIs: ``"20/s"``, ``"600/min"``,
            ``"5/10s"``, ``"1000/h"``, a ``(limit, period_seconds)`` tuple (the same as
            :class:`~nbflow.Queue`'s ``rate``), or a number per second.
        executor: Where items run (default: nbflow's threads). A ``ProcessPoolExecutor`` or a
            Dask client's ``get_executor()`` spreads heavy items over cores and machines; nbflow
            keeps their checkpoints here. An item running in another process cannot write
            streams (that raises :class:`~nbflow.NotInWorkflowError` there): return values.
        key: A function giving an item's label, named in progress messages and errors.

    Example:
        >>> answers = nbflow.map(ask_llm, prompts, concurrency=8, rate="20/s")
    """
    __tracebackhide__ = True
    options = _options(concurrency, rate, executor, key)
    ctx = context.body()
    if ctx is None:
        return _plain_map(fn, list(items), options)
    return ctx.map(fn, list(items), options)


def map_async(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    concurrency: int = 8,
    rate: str | float | tuple[float, float] | None = None,
    executor: concurrent.futures.Executor | None = None,
    key: Callable[[Any], Any] | None = None,
) -> Awaitable[list[Any]]:
    """:func:`map` for ``async def`` code: ``results = await nbflow.map_async(fn, items)``.

    The items run on threads as with :func:`map` (an ``async def`` ``fn`` runs each item on an
    event loop of its thread); the caller's event loop is not blocked. Inside a workflow the
    positions are taken at the call.
    """
    __tracebackhide__ = True
    options = _options(concurrency, rate, executor, key)
    ctx = context.body()
    if ctx is None:
        return asyncio.to_thread(_plain_map, fn, list(items), options)
    return ctx.map_async(fn, list(items), options)


def _plain_call(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """What an item of a map outside a workflow calls: the function, or for a cached step its
    cache (its kept result, or the result now, kept)."""
    step = step_of(fn)
    declared = getattr(fn, "step", None)
    if step.cache is None or not isinstance(declared, Step):
        return step.fn
    runner = context.runner()

    def cached(item: Any) -> Any:
        __tracebackhide__ = True
        value = runner.run_cached(declared, (item,), {})
        return asyncio.run(value) if inspect.iscoroutine(value) else value

    return cached


class _PlainMap:
    """The items of a map outside a workflow (the :class:`~nbflow.workflow._fanout.Items` of a
    :class:`~nbflow.workflow._fanout.Fanout`): plain calls, not retried; on an executor of other processes
    what an item prints comes back and is printed here."""

    policy = NO_RETRY
    running = True

    def __init__(self, fn: Callable[[Any], Any], items: list[Any], options: MapOptions) -> None:
        self.fn, self.call, self.items = fn, _plain_call(fn), items
        self.local = in_process(options.executor)
        self.pacer = Pacer(options.per_second)
        self.alarm = Alarm()  # (never rung: a plain map is not cancelled)
        self.results: list[Any] = [None] * len(items)
        self.failure: tuple[int, BaseException] | None = None

    def submit(
        self, pool: concurrent.futures.Executor, index: int, attempt: int
    ) -> concurrent.futures.Future[Any]:
        if self.local:
            return pool.submit(self.run_local, self.items[index])
        name, window = step_of(self.fn).name, self.pacer.window()
        return pool.submit(call_remote, self.fn, self.items[index], name, attempt, window)

    def run_local(self, item: Any) -> Any:
        self.pacer.wait()  # its slot of the rate, where it starts
        return self.call(item)

    def succeeded(self, index: int, value: Any, started: float, attempts: int) -> None:
        if not self.local:
            outcome: RemoteOutcome = value
            replay_output(outcome.output)
            value = outcome.value
        self.results[index] = value

    def printed(self, index: int, attempt: int, output: Output) -> None:
        replay_output(output)


def _plain_map(fn: Callable[[Any], Any], items: list[Any], options: MapOptions) -> list[Any]:
    """The map outside a workflow: plain calls, at most ``concurrency`` at a time."""
    run = _PlainMap(fn, items, options)
    pool = options.executor or Workers(options.concurrency, "map")
    try:
        Fanout(run, pool, options.concurrency).run(iter(range(len(items))))
    finally:
        if options.executor is None:
            pool.shutdown(wait=True, cancel_futures=True)
    if run.failure is not None:
        raise run.failure[1]
    return run.results


class Executor(concurrent.futures.Executor):
    """A thread pool for steps: inside a workflow body, each ``submit`` is a checkpointed step.

    The step's position is taken at the ``submit`` (in program order), so a replay returns each
    call's own result however the threads interleave. Outside a workflow it is a plain pool.
    Threads are daemonic, named ``nbflow-executor-…``; use it as a context manager or call
    :meth:`shutdown`.

    Example:
        >>> with nbflow.Executor(max_workers=8) as pool:
        ...     futures = [pool.submit(fetch, url) for url in urls]
        ...     pages = [f.result() for f in futures]
    """

    def __init__(self, max_workers: int = 8) -> None:
        self._workers = Workers(max_workers, "executor")

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        ctx = context.body()
        if ctx is None:
            return self._workers.submit(fn, *args, **kwargs)
        function_id = ctx.reserve(1)[0]
        return self._workers.submit(ctx.run_step, step_of(fn), args, kwargs, function_id)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._workers.shutdown(wait, cancel_futures=cancel_futures)


def in_process(executor: concurrent.futures.Executor | None) -> bool:
    """Whether map items given to ``executor`` run on threads of this process (nbflow's own
    threads when it is None, an :class:`Executor`, a ``ThreadPoolExecutor``): there, inside a
    workflow, they run as its steps. Items given to any other executor are sent to it as
    :func:`~nbflow.workflow._remote.call_remote` calls."""
    in_threads = (concurrent.futures.ThreadPoolExecutor, Workers, Executor)
    return executor is None or isinstance(executor, in_threads)
