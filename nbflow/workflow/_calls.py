"""What calls of steps, maps and workflows carry: typed records shared by declarations and the
engine (a leaf: it imports nothing else of nbflow)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from nbflow._errors import InvalidValueError
from nbflow.workflow._cache import Cache

#: A call's positional and keyword arguments.
Args = tuple[Any, ...]
Kwargs = dict[str, Any]


__all__ = [
    "NO_RETRY",
    "Args",
    "DeclaredQueue",
    "DeclaredWorkflow",
    "Kwargs",
    "MapOptions",
    "RetryPolicy",
    "Step",
    "StepAttempt",
    "WorkflowCall",
    "add_note",
    "check_flag",
    "check_predicate",
    "check_seconds",
    "qualified_name",
    "running_loop",
    "step_of",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is run again when it raises.

    Attributes:
        retries: How many times to run it again (0: never).
        backoff: The factor by which the wait grows after each failed attempt.
        interval: Seconds to wait before the first retry.
        should_retry: Called with each error of an attempt that may be retried: False ends the
            step at once with that error (None: every error is retried). One that raises counts
            as False (see :meth:`after`).
    """

    retries: int = 0
    backoff: float = 2.0
    interval: float = 1.0
    should_retry: Callable[[Exception], bool] | None = None

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 1 or self.interval < 0:
            raise ValueError(
                f"@nbflow.step needs retries >= 0, backoff >= 1 and interval >= 0 (got "
                f"retries={self.retries}, backoff={self.backoff}, interval={self.interval})."
            )
        check_predicate(self.should_retry)

    def delay(self, failures: int) -> float | None:
        """Seconds to wait after the ``failures``-th failed attempt, or None: give up."""
        if failures > self.retries:
            return None
        return self.interval * self.backoff ** (failures - 1)

    def after(self, failures: int, error: Exception) -> float | None:
        """:meth:`delay`, asking :attr:`should_retry` about ``error`` first (when a retry is
        left): None when it says no. A ``should_retry`` that raises says no: ``error`` ends the
        step, with a note naming what the predicate raised."""
        delay = self.delay(failures)
        if delay is None or self.should_retry is None:
            return delay
        try:
            verdict = self.should_retry(error)
        except Exception as exc:
            add_note(error, f"not retried: should_retry raised {type(exc).__qualname__}: {exc}")
            return None
        if inspect.isawaitable(verdict):
            if inspect.iscoroutine(verdict):
                verdict.close()  # never awaited: say so, not "coroutine was never awaited"
            add_note(error, "not retried: should_retry returned an awaitable, not a bool")
            return None
        return delay if verdict else None


def check_predicate(fn: object) -> None:
    """Raise TypeError unless ``fn`` is None or a plain callable (``should_retry``)."""
    if fn is None:
        return
    if not callable(fn):
        raise TypeError(
            f"should_retry must be a function taking the exception and returning a bool, not "
            f"{fn!r}."
        )
    if inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"should_retry must return a bool directly; {qualified_name(fn)} is async def. "
            "Decide from the exception alone (its type, its message), in a plain function."
        )


def add_note(error: BaseException, text: str) -> None:
    """Add ``text`` to ``error``'s notes (shown under its traceback; kept in its record)."""
    notes = getattr(error, "__notes__", None)
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        error.__notes__ = [*(notes or ()), text]  # type: ignore[attr-defined]


NO_RETRY = RetryPolicy()


class StepAttempt(NamedTuple):
    """A step attempt in progress: the step's function id and the attempt number (1, 2, …)."""

    function_id: int
    attempt: int


class Step(NamedTuple):
    """What runs as a step: its name in the history, the function, and its retry policy."""

    name: str
    fn: Callable[..., Any]
    policy: RetryPolicy = NO_RETRY
    #: Whether its last error is recorded (a map item's is not: a resume runs it again).
    keep_errors: bool = True
    #: How its results are cached across runs (None: not cached).
    cache: Cache | None = None
    #: The function whose code identifies it, when ``fn`` wraps it (None: ``fn``).
    origin: Callable[..., Any] | None = None
    #: Whether its caller looked in its cache just before (a map's items): not again.
    cache_checked: bool = False


def qualified_name(fn: Callable[..., Any]) -> str:
    """A stable name for a callable: module and qualified name, never an address."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if not hasattr(fn, "__qualname__"):  # a callable object: name its class
        fn = type(fn)
    return f"{getattr(fn, '__module__', None) or '__main__'}.{fn.__qualname__}"


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def step_of(fn: Callable[..., Any]) -> Step:
    """The :class:`Step` that runs ``fn``: a ``@step``'s own, else one named after ``fn``. An
    ``async def`` function runs on an event loop of the thread that runs the step."""
    step = getattr(fn, "step", None)
    if not isinstance(step, Step):
        step = Step(qualified_name(fn), fn)
    if inspect.iscoroutinefunction(step.fn):
        step = step._replace(fn=functools.partial(_run_coroutine, step.fn), origin=step.fn)
    return step


def _run_coroutine(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return asyncio.run(fn(*args, **kwargs))


class DeclaredWorkflow(Protocol):
    """A workflow function (``@nbflow.workflow``), as the engine and the seam see it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    #: How many times an interrupted run may be recovered (None: no limit).
    max_recovery_attempts: int | None

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class DeclaredQueue(Protocol):
    """A queue (:class:`~nbflow.Queue`), as the engine and the seam see it."""

    name: str
    concurrency: int | None
    worker_concurrency: int | None
    partition_concurrency: int | None

    @property
    def rate(self) -> tuple[float, float] | None:
        """``(limit, period_seconds)``: at most ``limit`` starts in any ``period``."""

    @property
    def partition_rate(self) -> tuple[float, float] | None:
        """The same per partition key."""


class MapOptions(NamedTuple):
    """How :func:`nbflow.map` runs: see its arguments."""

    concurrency: int = 8
    per_second: float | None = None
    executor: concurrent.futures.Executor | None = None
    label: Callable[[Any], str] | None = None


class WorkflowCall(NamedTuple):
    """A call of a workflow function, with the ids given to it (None: not given)."""

    wf: DeclaredWorkflow
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    workflow_id: str | None = None
    parent_id: str | None = None


def check_seconds(value: float | None, what: str) -> None:
    """Raise ValueError unless ``value`` is None or a number of seconds >= 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, not {value!r}.")
    if value < 0:
        raise ValueError(f"{what} must be >= 0 seconds, not {value!r}.")


def check_flag(value: object, what: str) -> None:
    """Raise InvalidValueError unless ``value`` (the argument ``what``) is True or False."""
    if not isinstance(value, bool):
        raise InvalidValueError(
            f"{what} must be True or False, not {value!r}.", what=what, value=value
        )
