"""Declaring workflows and steps: ``@workflow``, ``@step``, ``run_step`` and ``set_workflow_id``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

from nbflow import _context as context
from nbflow._calls import RetryPolicy, Step
from nbflow._serialization import check_text

__all__ = [
    "StepFunction",
    "WorkflowFunction",
    "as_workflow",
    "lookup_workflow",
    "registered_names",
    "run_step",
    "set_workflow_id",
    "step",
    "workflow",
    "workflow_timeout",
]

F = TypeVar("F", bound=Callable[..., Any])

_registry: dict[str, WorkflowFunction] = {}


def _qualified_name(fn: Callable[..., Any]) -> str:
    """A stable name for a callable: module and qualified name, never an address."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if not hasattr(fn, "__qualname__"):  # a callable object: name its class
        fn = type(fn)
    return f"{getattr(fn, '__module__', None) or '__main__'}.{fn.__qualname__}"


def registered_names() -> list[str]:
    """The names of every workflow declared in this process."""
    return list(_registry)


def lookup_workflow(name: str) -> WorkflowFunction | None:
    """The workflow function registered under ``name`` in this process, or None."""
    return _registry.get(name)


@contextlib.contextmanager
def set_workflow_id(workflow_id: str) -> Iterator[None]:
    """Give the next workflow started or called inside the block this id.

    An id that already exists returns that workflow: a finished one is never run again, and an
    interrupted one is resumed.

    Example:
        >>> with nbflow.set_workflow_id("daily-2026-11-25"):
        ...     handle = nbflow.start(pipeline, urls)
    """
    check_text(workflow_id, "A workflow id")
    token = context.assign_id(workflow_id)
    try:
        yield
    finally:
        context.unassign_id(token)


@contextlib.contextmanager
def workflow_timeout(seconds: float) -> Iterator[None]:
    """Give every workflow started or called inside the block a timeout.

    When ``seconds`` have passed since it started, the workflow is cancelled (status CANCELLED;
    ``result()`` raises :class:`WorkflowCancelledError`), also in the middle of a step it waits in.
    The deadline is recorded with the workflow: a recovered workflow keeps it, and its child
    workflows share it. ``resume()`` lifts it.

    Example:
        >>> with nbflow.workflow_timeout(600):
        ...     handle = nbflow.start(pipeline, urls)
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"workflow_timeout() needs a number of seconds > 0, not {seconds!r}.")
    token = context.set_timeout(float(seconds))
    try:
        yield
    finally:
        context.unset_timeout(token)


class WorkflowFunction:
    """A function declared with :func:`workflow`. Calling it runs it durably in this thread."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"@nbflow.workflow decorates a function, not {fn!r}.")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = check_text(name, "A workflow name") if name is not None else _qualified_name(fn)
        functools.update_wrapper(self, fn)
        _registry[self.name] = self  # a re-run notebook cell replaces its earlier definition

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if self.is_async:
            ctx = context.body()
            if ctx is None:
                return self._call_async(args, kwargs)
            # a child, its position taken now (in program order); a sync body waits for it
            child = ctx.call_child_async(self, args, kwargs, ctx.reserve(1)[0])
            return child if _running_loop() is not None else ctx.runner.run_on_loop(child)
        return context.runner().call(self, args, kwargs)

    async def _call_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``await workflow(…)``: run it on nbflow's loop, durably, and wait for its result."""
        __tracebackhide__ = True
        return await context.runner().start(self, *args, **kwargs).result_async()

    def __repr__(self) -> str:
        return f"<nbflow workflow {self.name!r}>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        return (_lookup_or_fail, (self.name,))


def _lookup_or_fail(name: str) -> WorkflowFunction:
    found = lookup_workflow(name)
    if found is None:
        raise LookupError(f"No nbflow workflow named {name!r} is declared in this process.")
    return found


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(*, name: str | None = None) -> Callable[[F], F]: ...
def workflow(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Declare a durable workflow: its steps are checkpointed and its stream writes exactly once.

    Use bare (``@nbflow.workflow``) or with a name (``@nbflow.workflow(name="etl")``). The name
    (default: module and qualified name) is how an interrupted workflow finds its function again,
    so keep it stable across edits.
    """
    if fn is None:
        return lambda f: WorkflowFunction(f, name)
    return WorkflowFunction(fn, name)


class StepFunction:
    """A function declared with :func:`step`: checkpointed when called inside a workflow."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None, policy: RetryPolicy) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = check_text(name, "A step name") if name is not None else _qualified_name(fn)
        self.policy = policy
        self.step = Step(self.name, fn, policy)
        self.retries = policy.retries
        self.backoff = policy.backoff
        self.interval = policy.interval
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        ctx = context.body()
        if ctx is None:  # outside a workflow, or nested in a step: a plain call
            if context.current() is None:
                context.unrecorded(self.name)
            return self.fn(*args, **kwargs)
        if not self.is_async:
            return ctx.run_step(self.step, args, kwargs)
        if _running_loop() is None:  # an async step in a sync workflow: run on nbflow's loop
            return ctx.run_coroutine(self.step, args, kwargs)
        # Its position is taken now, at the call: asyncio.gather() replays in the same order.
        return ctx.run_step_async(self.step, args, kwargs, ctx.reserve(1)[0])

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name (a process pool or Dask worker imports it again)."""
        return (_import_step, (self.fn.__module__, self.fn.__qualname__))

    def __repr__(self) -> str:
        return f"<nbflow step {self.name!r}>"


@overload
def step(fn: F, /) -> F: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 2.0,
    interval: float = 1.0,
) -> Callable[[F], F]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 2.0,
    interval: float = 1.0,
) -> Any:
    """Declare a step: inside a workflow its outcome is recorded, and a replay returns the record.

    Args:
        name: The step's name in the history (default: module and qualified name).
        retries: How many times to run it again when it raises (0: never).
        backoff: The factor by which the wait grows after each failed attempt.
        interval: Seconds to wait before the first retry.

    Outside a workflow, or inside another step, a step is a plain call.
    """
    policy = RetryPolicy(retries=retries, backoff=backoff, interval=interval)
    if fn is None:
        return lambda f: StepFunction(f, name=name, policy=policy)
    return StepFunction(fn, name=name, policy=policy)


def run_step(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run any callable as a one-off step of the current workflow (a plain call outside one)."""
    __tracebackhide__ = True
    ctx = context.body()
    name = getattr(fn, "name", None) or _qualified_name(fn)
    if ctx is None:
        if context.current() is None:
            context.unrecorded(name)
        return fn(*args, **kwargs)
    return ctx.run_step(Step(name, getattr(fn, "fn", fn)), args, kwargs)


def as_workflow(fn: Callable[..., Any]) -> WorkflowFunction:
    """``fn`` if it was declared with :func:`workflow`; raises TypeError otherwise."""
    if isinstance(fn, WorkflowFunction):
        return fn
    raise TypeError(
        f"nbflow.start() needs a function decorated with @nbflow.workflow, not {fn!r}. "
        "Decorate it, e.g. @nbflow.workflow above its def."
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _import_step(module: str, qualname: str) -> Any:
    """The object ``module.qualname`` (how a pickled step is found again)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
