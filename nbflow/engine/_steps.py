"""Running steps: the checkpoint idiom with one retry policy, for sync and async steps alike.

A step takes the next function id. If the workflow recorded an outcome there, the step returns it
(or raises it) without running. Otherwise each attempt runs with the step marked as this thread's
(or task's) current operation, so that stream writes from inside it are credited to it; a failed
attempt is retried per the step's :class:`~nbflow.workflow._calls.RetryPolicy` while the workflow runs,
and the last outcome is recorded.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from nbflow._canonical import args_digest
from nbflow._serialization import Encoded, encode_error, plain_json
from nbflow.engine import _cache as cache
from nbflow.engine._execution import Execution, State
from nbflow.engine._inflight import inflight
from nbflow.store import ReplayRecord
from nbflow.store._ops import CacheRow, StepRow
from nbflow.text._calls import short_call
from nbflow.text._tables import step_label
from nbflow.workflow._alarm import Wake
from nbflow.workflow._cache import refreshing as cache_refreshing
from nbflow.workflow._calls import Step
from nbflow.workflow._context import SCOPE, Scope, WorkflowContext

__all__ = [
    "StepRun",
    "note_step",
    "run_cached",
    "run_cached_async",
    "record_outcome",
    "replay_outcome",
    "step_row",
]


_NOTHING: Encoded = (None, None)
_NO_KWARGS: dict[str, Any] = {}
_UNREAD: Any = object()
#: Up to this many cache rows of a step (with its code) a run reads at once, at its first call.
_READ_AT_ONCE = 50_000
_new_scope = _new_row = tuple.__new__
_RUNNING = State.RUNNING


def step_row(
    workflow_id: str,
    function_id: int,
    name: str,
    span: tuple[float, float],
    output: Encoded = _NOTHING,
    attempts: int = 1,
    *,
    error: Encoded = _NOTHING,
    code: str | None = None,
    args_hash: str | None = None,
    cached_from: str | None = None,
    args_text: str | None = None,
) -> StepRow:
    """The checkpoint of a finished operation: ``span`` is when it started and ended; ``output``
    and ``error`` are ``(json, pickle)`` and ``(text, pickle)``; ``code`` the fingerprint of the
    step's function, ``args_hash`` the digest of its arguments, ``cached_from`` the workflow
    whose result it took, ``args_text`` its arguments in a few characters."""
    # Built positionally (keywords cost a step ~1 µs; StepRun.outcome does the same on the hot
    # path), in table order. fmt: skip keeps them in three rows rather than thirteen.
    return StepRow(
        workflow_id, function_id, name, output[0], output[1], error[0], error[1], span[0], span[1],
        attempts, code, args_hash, cached_from, args_text,
    )  # fmt: skip


def note_step(error: BaseException, step: Step, attempt: int) -> None:
    """Say in ``error`` which step raised it: a note ``raised in step 'parse' (attempt 3 of 3)``
    in its traceback, and ``error.nbflow_step``, the step's name (once: the innermost step).

    Args:
        error: The exception the step raised; its type and message stay as they are.
        step: The step.
        attempt: Which attempt raised it (1, 2, …).
    """
    if getattr(error, "nbflow_step", None) is not None:
        return
    retries = step.policy.retries
    of = f" (attempt {attempt} of {retries + 1})" if retries else ""
    text = f"raised in step {step_label(step.name)!r}{of}"
    if sys.version_info >= (3, 11):
        error.add_note(text)
    else:  # where tracebacks show no notes, the workflow's record still names the step
        with contextlib.suppress(AttributeError):
            error.__notes__ = [*getattr(error, "__notes__", ()), text]  # type: ignore[attr-defined]
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        error.nbflow_step = step.name  # type: ignore[attr-defined]


def replay_outcome(ex: Execution, function_id: int, record: ReplayRecord, what: str) -> Any:
    """The recorded outcome of an operation: its output, or its error raised."""
    __tracebackhide__ = True
    if record.error is not None:
        error = ex.engine.decode_error(record.error, record.error_pickle)
        raise ex.step_failed(function_id, error)
    return ex.engine.decode(record.output_json, record.output_pickle, what)


def record_outcome(
    ex: Execution,
    function_id: int,
    name: str,
    *,
    started: float,
    attempts: int,
    output: Any = None,
    error: BaseException | None = None,
    what: str,
    args_text: str | None = None,
) -> None:
    """Record an operation's outcome (its output, or ``error``) as a step of ``ex``
    (``args_text``: its arguments in a few characters, for the steps table)."""
    encoded = failure = _NOTHING
    if error is not None:
        failure = encode_error(error)
    else:
        encoded = ex.engine.encode(output, what)
    span = (started, time.time())
    row = step_row(
        ex.workflow_id,
        function_id,
        name,
        span,
        output=encoded,
        error=failure,
        attempts=attempts,
        args_text=args_text,
    )
    ex.append(row)
    if error is not None:
        ex.step_failed(function_id, error)


class StepRun:
    """One step of a workflow being run; as a context manager, one attempt of it.

    The loop that runs a step (sync or async, in :class:`~nbflow.engine._workflows.WorkflowRun`)::

        run = StepRun(ex, ctx, step)
        while run.pending:             # False at once when the workflow recorded the step
            with run:                  # one attempt, marked as this thread's (or task's) step
                run.output = step.fn(*args, **kwargs)
            if run.pending:            # a retry follows: wait, unless a cancel comes first
                run.backoff()
        return run.outcome()           # the record, or the last attempt's output or error

    An exception the block raises is kept, not raised: the step's retry policy decides whether
    another attempt follows.
    """

    # fmt: skip below: the names read better as rows than as a column of seventeen
    __slots__ = (
        "args_hash", "args_text", "attempt", "code", "ctx", "delay", "error", "ex", "function_id", "keep",
        "output", "pending", "record", "started", "step", "token", "tries",
    )  # fmt: skip

    def __init__(
        self,
        ex: Execution,
        ctx: WorkflowContext,
        step: Step,
        function_id: int | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.ex, self.ctx, self.step = ex, ctx, step
        if function_id is None:
            ex.function_id = function_id = ex.function_id + 1  # (ex.next_function_id())
        self.function_id = function_id
        # (the hot path: a step that was not recorded pays one dict lookup here)
        record = ex.recorded.get(function_id) and ex.replayed(function_id, "step", step.name)
        self.record = record
        self.pending = record is None  # True until it is replayed or over
        if record is not None:
            if record.code is not None:
                ex.code.replayed(step, record.code)
            return
        if ex.state is not _RUNNING:
            ex.check_running()
        run_code = ex.code
        if run_code.changed:
            run_code.warn_changed(ex.workflow_id)  # the replay is over
        self.code = code = run_code.of(step)
        kwargs = kwargs or _NO_KWARGS
        self.args_hash = args_hash = args_digest(args, kwargs)
        self.args_text = short_call(args, kwargs)
        self.keep: CacheRow | None = None  # the cache row to write with the checkpoint
        if run_code.reuse is not None:
            row = run_code.reuse.take(step.name, code, args_hash)
            if row is not None:
                self.take((row.output_json, row.output_pickle), run_code.reuse.source_id)
                return
        if ex.row_seq:
            ex.wait_row_durable()
        self.attempt = ex.prior_attempts.get(function_id, 0) if ex.prior_attempts else 0
        self.tries = 0
        self.output: Any = None
        self.error: Exception | None = None
        self.delay: float | None = None
        self.started = time.time()

    def take(self, output: Encoded, source: str | None) -> None:
        """Take an output computed elsewhere (an earlier run's checkpoint, a cache entry made by
        ``source``): it is recorded as this step's, and :meth:`outcome` returns it."""
        ex, now, name = self.ex, time.time(), self.step.name
        # Built positionally, as tuple builds them (a cache hit is a hot path too).
        row = _new_row(
            StepRow,
            (
                ex.workflow_id,
                self.function_id,
                name,
                output[0],
                output[1],
                None,
                None,
                now,
                now,
                1,
                self.code,
                self.args_hash,
                source or "(no workflow)",
                self.args_text,
            ),
        )
        text, blob = output
        ex.append_sized(row, len(blob) if blob is not None else len(text or ""))
        self.record = _new_row(
            ReplayRecord, (self.function_id, "step", name, output[0], output[1], None, None, None)
        )
        self.pending = False

    def replay(self) -> Any:
        """The recorded outcome (when :attr:`record` is not None)."""
        __tracebackhide__ = True
        assert self.record is not None
        return replay_outcome(self.ex, self.function_id, self.record, f"step {self.step.name!r}")

    def __enter__(self) -> StepRun:
        self.tries += 1
        self.attempt += 1
        self.delay = None
        # Built as tuple builds it: a NamedTuple's own __new__ is a Python call, paid on every
        # attempt of every step (the hot path).
        where = _new_scope(Scope, (self.ctx, self.function_id, self.attempt, 0))
        self.token = SCOPE.set(where)  # (no thread:
        # only a body's scope is tied to the thread that entered it)
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        SCOPE.reset(self.token)
        if exc is None or not isinstance(exc, Exception):  # KeyboardInterrupt & co. go on up
            self.pending = False
            return False
        self.delay = self.step.policy.after(self.tries, exc) if self.ex.running else None
        if self.delay is None:
            self.pending, self.error = False, exc
        return True

    def backoff(self) -> None:
        """Before a retry: wait its delay (a cancel or a closing runtime cuts it short)."""
        if self.delay is not None:
            self.ex.alarm.pause(self.delay)
            self.ex.check_running()

    async def backoff_async(self) -> None:
        """:meth:`backoff` for an ``async def`` step (the same alarm cuts it short)."""
        if self.delay is not None:
            await self.ex.alarm.pause_async(self.delay)
            self.ex.check_running()

    def outcome(self) -> Any:
        """The step's outcome once it is not :attr:`pending`: its record replayed, or the last
        attempt's output (recorded now) or error (recorded, then raised)."""
        __tracebackhide__ = True
        if self.record is not None:
            return self.replay()
        ex, name = self.ex, self.step.name
        if self.error is not None:
            if self.step.keep_errors:  # (a map item's error: nbflow.map names the item)
                note_step(self.error, self.step, self.tries)
                record_outcome(
                    ex,
                    self.function_id,
                    name,
                    started=self.started,
                    attempts=self.tries,
                    error=self.error,
                    what=name,
                    args_text=self.args_text,
                )
            raise self.error
        output = self.output
        text, blob = plain_json(output), None
        if text is None:
            text, blob = ex.engine.encode(output, f"the output of step {name!r}")
        # Built as tuple builds it (a NamedTuple's own __new__ is a Python call), in table order.
        fields = (ex.workflow_id, self.function_id, name, text, blob, None, None, self.started)
        more = (time.time(), self.tries, self.code, self.args_hash, None, self.args_text)
        row = _new_row(StepRow, fields + more)
        size = len(blob) if blob is not None else len(text or "")  # (what the write log counts)
        if self.keep is None:
            ex.append_sized(row, size)
            return output
        self.keep = kept = self.keep._replace(
            output_json=text, output_pickle=blob, created_at=time.time()
        )
        seq = ex.append(row, kept)
        rows = ex.code.cached.get((kept.name, kept.code))
        if rows is not None:
            rows[kept.args_hash] = kept
        if not self.step.cache_checked:  # (a map's items: durable before the map returns)
            ex.engine.log.wait_durable(seq)  # durable before it is used
        return self.output


def run_cached(run: StepRun, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a cached step's call (``run``, not replayed): take its kept result, or run it and
    keep the result (durably, before it is returned). Calls with the same key at once in this
    process run once: the others wait for the first and take its result."""
    __tracebackhide__ = True
    ex, step = run.ex, run.step
    refresh = ex.code.refresh or cache_refreshing()
    if not refresh and not step.cache_checked and _take_read(run, args, kwargs):
        return run.outcome()  # (the common hit: in the rows the run read, no key, no waiting)
    key = cache.cache_key(step, run.code, args, kwargs, run.args_hash)
    if not refresh and not step.cache_checked and _take_kept(run, key, only_read=True):
        return run.outcome()
    with inflight(ex.engine).first(key.entry, Wake(ex.check_running, ex.alarm)) as claim:
        if claim.row is not None:  # another call kept it just now: take it
            cache.remember(key.name, claim.row, hit=True)
            run.take((claim.row.output_json, claim.row.output_pickle), claim.row.workflow_id)
            if not step.cache_checked:
                ex.engine.log.wait_durable()  # (the row it took: durable before it is used)
            return run.outcome()
        look = not claim.mine or not (refresh or step.cache_checked)
        if look and _take_kept(run, key, again=not claim.mine):
            return run.outcome()
        _will_keep(run, key, refresh)
        while run.pending:
            with run:
                run.output = step.fn(*args, **kwargs)
            if run.pending:
                run.backoff()
        output = run.outcome()
        claim.row = run.keep
        return output


async def run_cached_async(run: StepRun, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`run_cached` for an ``async def`` step (concurrent calls with one key both run)."""
    __tracebackhide__ = True
    ex, step = run.ex, run.step
    key = cache.cache_key(step, run.code, args, kwargs, run.args_hash)
    refresh = ex.code.refresh or cache_refreshing()
    if not refresh and _take_kept(run, key):
        return run.outcome()
    _will_keep(run, key, refresh)
    while run.pending:
        with run:
            run.output = await step.fn(*args, **kwargs)
        if run.pending:
            await run.backoff_async()
    return run.outcome()


def _take_read(run: StepRun, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Take the result kept for this call from the rows the run read, when the call's
    ``args_hash`` is its checkpoint's digest (see :func:`~nbflow.engine._cache.plain_arity`)."""
    step, run_code = run.step, run.ex.code
    rows = run_code.cached.get((step.name, run.code))
    if not rows or kwargs or run.args_hash is None:
        return False
    arity = run_code.arity.get(step.name, _UNREAD)
    if arity is _UNREAD:
        arity = run_code.arity[step.name] = cache.plain_arity(step)
    return arity == len(args) and _take(run, rows.get("p" + run.args_hash))


def _take_kept(
    run: StepRun, key: cache.CacheKey, *, again: bool = False, only_read: bool = False
) -> bool:
    """Take the result kept for ``key``, if there is one that has not expired. The step's rows
    are read once per run; ``again``: look in the database too (another call kept it just now);
    ``only_read``: look only in the rows read."""
    rows = run.ex.code.cached.get((key.name, key.code), _UNREAD)
    if rows is _UNREAD:
        found_rows = run.ex.engine.store.cached_rows(key.name, key.code, _READ_AT_ONCE)
        rows = None if found_rows is None else {row.args_hash: row for row in found_rows}
        run.ex.code.cached[(key.name, key.code)] = rows
    found = None if rows is None else rows.get(key.args_hash)
    if found is None and (rows is None or again) and not only_read:
        found = run.ex.engine.store.find_cached([key.entry]).get(key.entry)
    return _take(run, found)


def _take(run: StepRun, found: CacheRow | None) -> bool:
    """Take ``found``, a kept result of the call, unless it is None or expired."""
    policy = run.step.cache
    assert policy is not None
    if not cache.fresh(found, policy):
        return False
    assert found is not None
    cache.remember(run.step.name, found, hit=True)
    run.take((found.output_json, found.output_pickle), found.workflow_id)
    return True


def _will_keep(run: StepRun, key: cache.CacheKey, refresh: bool) -> None:
    """The call missed: say why, and keep its result with its checkpoint."""
    policy = run.step.cache
    assert policy is not None
    run_code = run.ex.code
    parts = cache.parts_of(run.step, run_code.parts)
    rows = run_code.cached.get((key.name, key.code))
    # (a map's items were looked up by the map; the rows a run read say whether one exists)
    exists = False if run.step.cache_checked else None if rows is None else key.args_hash in rows
    reason = cache.miss_reason(run.ex.engine, key, parts, policy, refresh, run_code.kept, exists)
    row = cache.new_row(key, _NOTHING, run.ex.workflow_id, parts, reason)
    cache.remember(key.name, row, hit=False)
    run.keep = row
