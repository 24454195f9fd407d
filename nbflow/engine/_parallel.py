"""``nbflow.map`` inside a workflow: each item a checkpointed step, run in parallel, in order.

At the call, the map takes every item's label (``key``) and reserves one function id per item and
one per progress item, in program order; so however the items interleave, a replay finds each
item's checkpoint at the same place. Items whose checkpoint exists return it without running; the
others run at most ``concurrency`` at a time, every attempt (a first one and each retry) taking a
slot of ``rate``:

- on nbflow's worker threads, an :class:`nbflow.Executor` or a
  :class:`~concurrent.futures.ThreadPoolExecutor` given as ``executor``: each item runs as a step
  of the workflow (its stream writes are credited to it, its retries follow the step's policy)
  and is recorded there;
- on any other executor (a process pool, a Dask cluster's): the function and the item are sent
  to it (:func:`nbflow.workflow._remote.call_remote`), the result and what the item printed come back; the
  item is retried from here by its step's policy and recorded here with its attempts, and what it
  printed is printed here as its step's output. Such an item has no workflow context where it
  runs: a stream write from it raises :class:`~nbflow.NotInWorkflowError`.

Items are handed to an executor outside the workflow's scope, so an executor that is itself
nbflow-aware takes no position of its own. After each item a progress item
``{"done", "total", "message"}`` goes to the stream ``progress``. An item that still fails after
its retries is not checkpointed: the map stops starting items, waits for those in flight (their
checkpoints are kept), and raises that item's error, so a resume runs only what failed or never
ran.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Callable
from typing import Any

from nbflow._canonical import args_digest
from nbflow._errors import InvalidValueError
from nbflow._serialization import Encoded
from nbflow.engine import _cache as cache
from nbflow.engine import _steps as steps
from nbflow.engine._execution import Execution
from nbflow.engine._tracing import RunTrace
from nbflow.text._calls import short_call
from nbflow.text._tables import step_label
from nbflow.workflow._cache import refreshing
from nbflow.workflow._calls import MapOptions, Step, step_of
from nbflow.workflow._context import Scope, WorkflowContext, current_step, scoped
from nbflow.workflow._fanout import Fanout
from nbflow.workflow._parallel import in_process
from nbflow.workflow._remote import Output, RemoteOutcome, call_remote, replay_output
from nbflow.workflow._workers import Pacer, Workers

__all__ = ["prepare_map", "run_map"]


def _labels(items: list[Any], key: Callable[[Any], Any] | None) -> list[str] | None:
    """Every item's label (``key``), taken before any item runs.

    Raises:
        InvalidValueError: ``key`` raised for an item: it is named, and no item ran.
    """
    if key is None:
        return None
    labels = []
    for index, item in enumerate(items):
        try:
            labels.append(str(key(item)))
        except Exception as exc:
            shown = _shown(item)
            raise InvalidValueError(
                f"nbflow.map: key= raised {type(exc).__name__}: {exc} for item {index + 1} ({shown}); "
                "no item ran. key= labels items in progress messages and errors: fix it so it "
                "takes every item, or leave it out.",
                what="key",
                value=item,
            ) from exc
    return labels


def _shown(item: Any) -> str:
    """``repr(item)``, cut to 80 characters (a repr that fails: the item's type)."""
    try:
        text = repr(item)
    except Exception:
        return f"a {type(item).__qualname__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _submit(
    pool: concurrent.futures.Executor, fn: Callable[..., Any], *args: Any
) -> concurrent.futures.Future[Any]:
    """``pool.submit(fn, *args)`` outside the workflow's scope: an executor whose ``submit``
    calls nbflow (``nbflow.Executor`` records a step per submit in a body) takes no position."""
    with scoped(None):
        return pool.submit(fn, *args)


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
        self.labels = _labels(items, options.label)  # before any position is taken
        self.ex, self.ctx, self.items, self.options = ex, ctx, items, options
        self.fn, self.step = fn, step_of(fn)
        self.code = ex.code.of(self.step)
        self.keeps: dict[int, cache.CacheKey] = {}  # remote items that miss the step's cache
        self.reason = ""  # why they missed (the first one's reason: they share their code)
        self.parts: Any = None  # what the step's code covers (CodeParts), for their cache rows
        self.copies: dict[int, int] = {}  # an item -> the earlier one with its cache key
        self.args_hashes: dict[int, str | None] = {}  # see args_hash()
        self.item_ids = ex.reserve(len(items))
        self.progress_ids = ex.reserve(len(items) + 1)
        self.results: list[Any] = [None] * len(items)
        self.failure: tuple[int, BaseException] | None = None
        self.done = 0
        self.pacer = Pacer(options.per_second)
        self.policy, self.alarm = self.step.policy, ex.alarm
        self.local = in_process(options.executor)
        self.local_step = self._local_step() if self.local else self.step
        self.trace: RunTrace | None = ex.trace

    def _local_step(self) -> Step:
        """The step a local item runs: its error not recorded (the map names the item), and,
        under a rate, each retry waiting in its thread for a slot, as the first attempt did."""
        step = self.step._replace(keep_errors=False, cache_checked=self.step.cache is not None)
        if not self.pacer.active:
            return step
        fn, pace, prior = step.fn, self.pace, self.ex.prior_attempts

        def paced(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            attempt = current_step()
            if attempt is not None and attempt.attempt > prior.get(attempt.function_id, 0) + 1:
                pace()  # a retry
            return fn(*args, **kwargs)

        return step._replace(fn=paced, origin=self.step.origin or self.step.fn)

    def pace(self) -> None:
        """Wait in this thread for the next slot of the rate (a cancel or a close cuts it short
        and raises)."""
        if self.pacer.active:
            self.pacer.wait(self.ex.alarm.event)
            self.ex.check_running()

    def run_local(self, item: Any, function_id: int) -> Any:
        """An item on a thread of this process: its first attempt takes its slot of the rate
        where it starts (after any wait in the executor's queue), then it runs as a step."""
        __tracebackhide__ = True
        self.pace()
        return self.ctx.run_step(self.local_step, (item,), {}, function_id)

    @property
    def running(self) -> bool:
        return self.ex.running

    def todo(self) -> list[int]:
        """The indexes of the items without a checkpoint (those with one are taken from it)."""
        todo = []
        for index, function_id in enumerate(self.item_ids):
            record = self.ex.replayed(function_id, "step", self.step.name)
            if record is None:
                todo.append(index)
            else:
                if record.code is not None:
                    self.ex.code.replayed(self.step, record.code)
                what = f"step {self.step.name!r}"
                if self.trace is not None:
                    self.trace.replayed(self.step.name, function_id, record)
                self.results[index] = steps.replay_outcome(self.ex, function_id, record, what)
                self.done += 1
        if todo:
            self.ex.code.warn_changed(self.ex.workflow_id)  # the replay is over
        if todo and (self.ex.code.reuse is not None or self.step.cache is not None):
            todo = self._taken(todo)
        return todo

    def _taken(self, todo: list[int]) -> list[int]:
        """Take what earlier work holds for the items of ``todo`` (a checkpoint of the run this
        one re-runs, a result the step's cache kept); the items left to run."""
        ex, step, reuse = self.ex, self.step, self.ex.code.reuse
        left, keys = [], {}
        for index in todo:
            args_hash = self.args_hash(index)
            row = None if reuse is None else reuse.take(step.name, self.code, args_hash)
            if row is not None:
                assert reuse is not None
                self._take(index, (row.output_json, row.output_pickle), reuse.source_id)
                continue
            if step.cache is not None:
                item = (self.items[index],)
                keys[index] = cache.cache_key(step, self.code, item, {}, args_hash)
            left.append(index)
        if not keys:
            return left
        refresh = ex.code.refresh or refreshing()
        found = {} if refresh else ex.engine.store.find_cached([k.entry for k in keys.values()])
        now, policy, run = time.time(), step.cache, []
        assert policy is not None
        first: dict[str, int] = {}
        for index in left:
            entry = keys[index].entry if index in keys else None
            kept = None if entry is None else found.get(entry)
            if kept is not None and cache.fresh(kept, policy, now):
                self._take(index, (kept.output_json, kept.output_pickle), kept.workflow_id)
            elif entry is not None and entry in first:  # a copy: it takes the first's result
                self.copies[index] = first[entry]
            else:
                if entry is not None:
                    first[entry] = index
                run.append(index)
        if run and not self.local:
            self.keeps = {index: keys[index] for index in run}
            self.parts = cache.parts_of(step, ex.code.parts)
            self.reason = cache.miss_reason(
                ex.engine, keys[run[0]], self.parts, policy, refresh, ex.code.kept
            )
        return run

    def args_hash(self, index: int) -> str | None:
        """The digest of item ``index`` as a call's arguments (computed once)."""
        if index not in self.args_hashes:
            self.args_hashes[index] = args_digest((self.items[index],), {})
        return self.args_hashes[index]

    def _copy(self, index: int, original: int) -> None:
        """Item ``index`` has the cache key of item ``original``, which ran: it takes its result
        (recorded as its checkpoint, taken from this workflow)."""
        what = f"the output of step {self.step.name!r}"
        encoded = self.ex.engine.encode(self.results[original], what)
        self._take(index, encoded, self.ex.workflow_id)
        self.progress(self.label(index))

    def _take(self, index: int, output: Encoded, source: str | None) -> None:
        """Item ``index`` takes ``output``, computed by ``source``: recorded as its checkpoint."""
        ex, name, now = self.ex, self.step.name, time.time()
        row = steps.step_row(
            ex.workflow_id,
            self.item_ids[index],
            name,
            (now, now),
            output,
            code=self.code,
            args_hash=self.args_hash(index),
            cached_from=source or "(no workflow)",
            args_text=short_call((self.items[index],), {}),
        )
        ex.append(row)
        if self.trace is not None:
            self.trace.mark(name, row.function_id, cached=True, cached_from=row.cached_from)
        self.results[index] = ex.engine.decode(output[0], output[1], f"step {name!r}")
        self.done += 1

    def progress(self, message: str | None = None) -> None:
        total = len(self.items)
        value = {"done": self.done, "total": total, "message": message}
        self.ex.write_stream("progress", value, at=self.progress_ids[self.done])

    def submit(
        self, pool: concurrent.futures.Executor, index: int, attempt: int = 1
    ) -> concurrent.futures.Future[Any]:
        """Start an attempt of item ``index`` (``attempt`` counts this run's attempts)."""
        item, function_id = self.items[index], self.item_ids[index]
        if self.local:
            return _submit(pool, self.run_local, item, function_id)
        window = self.pacer.window()
        future = _submit(pool, call_remote, self.fn, item, self.step.name, attempt, window)
        if self.trace is not None:  # (its span, from here: from its submission to its outcome)
            prior = self.ex.prior_attempts.get(function_id, 0)
            self.trace.remote(future, self.step.name, function_id, prior + attempt)
        return future

    def run(self) -> list[Any]:
        """Run the items without a checkpoint; the results, in input order (traced: in the
        map's span, its items' parent)."""
        __tracebackhide__ = True
        if self.trace is None:
            return self._run()
        with self.trace.map(self.step.name, self.item_ids):
            return self._run()

    def _run(self) -> list[Any]:
        __tracebackhide__ = True
        ex = self.ex
        todo = self.todo()
        self.progress()
        if todo and ex.row_seq:  # (as a step does: nothing runs before the workflow is durable)
            ex.wait_row_durable()
        given = self.options.executor
        pool = Workers(self.options.concurrency, "map") if given is None else given
        try:
            Fanout(self, pool, self.options.concurrency).run(iter(todo))
        finally:
            if given is None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self.failure is None:
            for index, original in self.copies.items():
                self._copy(index, original)
        if self.step.cache is not None:  # the results its items kept, before they are used
            ex.engine.log.wait_durable()
        ex.check_running()
        if self.failure is not None:
            index, error = self.failure
            where = f"{self.label(index)} of {len(self.items)}"
            _note(error, f"nbflow.map: {where} failed in step {step_label(self.step.name)!r}")
            raise error
        return self.results

    def label(self, index: int) -> str:
        """``item 3`` (counted from 1, as progress counts ``3/40``), with its ``key=`` label."""
        labels = self.labels
        return f"item {index + 1}" + ("" if labels is None else f" ({labels[index]})")

    def printed(self, index: int, attempt: int, output: Output) -> None:
        """Print what attempt ``attempt`` of a remote item printed, as its step's output."""
        if not output:
            return
        function_id = self.item_ids[index]
        prior = self.ex.prior_attempts.get(function_id, 0)
        with scoped(Scope(self.ctx, function_id, prior + attempt)):
            replay_output(output)

    def succeeded(self, index: int, value: Any, started: float, attempts: int) -> None:
        """Take an item's result (recording it here when it ran elsewhere)."""
        if not self.local:  # the checkpoint of an item that ran elsewhere is written here
            outcome: RemoteOutcome = value
            self.printed(index, attempts, outcome.output)
            value = outcome.value
            ex, name = self.ex, self.step.name
            encoded = ex.engine.encode(value, f"the output of step {name!r}")
            span = (started, time.time())
            args_hash = self.args_hash(index)
            row = steps.step_row(
                ex.workflow_id,
                self.item_ids[index],
                name,
                span,
                encoded,
                attempts,
                code=self.code,
                args_hash=args_hash,
                args_text=short_call((self.items[index],), {}),
            )
            key = self.keeps.get(index)
            if key is None:
                ex.append(row)
            else:  # kept with its checkpoint; durable before the map returns
                kept = cache.new_row(key, encoded, ex.workflow_id, self.parts, self.reason)
                ex.append(row, kept)
        self.results[index] = value
        self.done += 1
        self.progress(self.label(index))


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
    """Take the labels and reserve the map's function ids now (in program order); return what
    runs it, from any thread (``map_async`` runs it in a thread of its own)."""
    run = _Map(ex, ctx, fn, items, options)
    return run.run


def _note(error: BaseException, text: str) -> None:
    """Say which item failed, in the traceback (Python 3.11+) and as ``error.nbflow_map_item``."""
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(text)
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        error.nbflow_map_item = text  # type: ignore[attr-defined]
