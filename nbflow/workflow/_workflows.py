"""Declaring workflows: ``@workflow``, ``set_workflow_id`` and ``workflow_timeout``."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

from nbflow._serialization import check_text
from nbflow.workflow import _context as context
from nbflow.workflow._calls import qualified_name, running_loop

__all__ = [
    "DEFAULT_MAX_RECOVERY_ATTEMPTS",
    "WorkflowFunction",
    "as_workflow",
    "lookup_workflow",
    "registered_names",
    "set_workflow_id",
    "workflow",
    "workflow_timeout",
]

F = TypeVar("F", bound=Callable[..., Any])

#: How many times an interrupted workflow is recovered at most, unless it says (as DBOS: 100).
DEFAULT_MAX_RECOVERY_ATTEMPTS = 100

_registry: dict[str, WorkflowFunction] = {}


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

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@nbflow.workflow decorates a function, not {fn!r}.")
        self.max_recovery_attempts = _check_attempts(max_recovery_attempts)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = check_text(name, "A workflow name") if name is not None else qualified_name(fn)
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
            return child if running_loop() is not None else ctx.runner.run_on_loop(child)
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
def workflow(
    *, name: str | None = None, max_recovery_attempts: int | None = ...
) -> Callable[[F], F]: ...
def workflow(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
) -> Any:
    """Declare a durable workflow: its steps are checkpointed and its stream writes exactly once.

    Use bare (``@nbflow.workflow``) or with options (``@nbflow.workflow(name="etl")``).

    Args:
        name: How an interrupted workflow finds its function again (default: module and
            qualified name): keep it stable across edits.
        max_recovery_attempts: How many times an interrupted run may be recovered (its body
            starts at most this many times plus one). The next recovery marks it
            MAX_RECOVERY_ATTEMPTS_EXCEEDED instead of running it, so an input that kills its
            process stops there; ``nbflow.resume(id)`` runs it again. None: no limit.
    """
    if fn is None:
        return lambda f: WorkflowFunction(f, name, max_recovery_attempts)
    return WorkflowFunction(fn, name, max_recovery_attempts)


def _check_attempts(value: int | None) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError(
        f"max_recovery_attempts must be a whole number >= 0 (or None: no limit), not {value!r}."
    )


def as_workflow(fn: Callable[..., Any]) -> WorkflowFunction:
    """``fn`` if it was declared with :func:`workflow`; raises TypeError otherwise."""
    if isinstance(fn, WorkflowFunction):
        return fn
    raise TypeError(
        f"nbflow.start() needs a function decorated with @nbflow.workflow, not {fn!r}. "
        "Decorate it, e.g. @nbflow.workflow above its def."
    )
