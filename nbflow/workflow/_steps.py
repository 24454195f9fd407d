"""Declaring steps: ``@step`` and ``run_step``.

A step called in a workflow body is checkpointed by the engine (:mod:`nbflow.engine._steps`): a
replay returns its record instead of running it. Outside a workflow, or inside another step, a
step is a plain call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from nbflow._serialization import check_text
from nbflow.workflow import _context as context
from nbflow.workflow._cache import Cache, cache_policy
from nbflow.workflow._calls import RetryPolicy, Step, qualified_name, running_loop

__all__ = ["StepFunction", "lookup_step", "run_step", "step"]

F = TypeVar("F", bound=Callable[..., Any])

#: Declared steps by name, the newest declaration of each (``nbflow.why``, changed-code notes).
_STEPS: dict[str, StepFunction] = {}


def lookup_step(name: str) -> StepFunction | None:
    """The newest step declared with this name in this process, or None."""
    return _STEPS.get(name)


class StepFunction:
    """A function declared with :func:`step`: checkpointed when called inside a workflow."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        policy: RetryPolicy,
        cache: Cache | bool | None = None,
    ) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = check_text(name, "A step name") if name is not None else qualified_name(fn)
        self.policy = policy
        self.cache = cache_policy(cache, fn, self.name)
        self.step = Step(self.name, fn, policy, cache=self.cache)
        self.retries = policy.retries
        self.backoff = policy.backoff
        self.interval = policy.interval
        self.should_retry = policy.should_retry
        functools.update_wrapper(self, fn)
        _STEPS[self.name] = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        ctx = context.body()
        if ctx is None:  # outside a workflow, or nested in a step: a plain call
            if self.cache is not None and not context.in_remote_item():
                # (its cache holds everywhere; a map's item in another process was looked up
                # by the map)
                return context.runner().run_cached(self.step, args, kwargs)
            if context.current() is None:
                context.unrecorded(self.name)
            return self.fn(*args, **kwargs)
        if not self.is_async:
            return ctx.run_step(self.step, args, kwargs)
        if running_loop() is None:  # an async step in a sync workflow: run on nbflow's loop
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
    cache: Cache | bool | None = None,
    should_retry: Callable[[Exception], bool] | None = None,
) -> Callable[[F], F]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 2.0,
    interval: float = 1.0,
    cache: Cache | bool | None = None,
    should_retry: Callable[[Exception], bool] | None = None,
) -> Any:
    """Declare a step: inside a workflow its outcome is recorded, and a replay returns the record.

    Args:
        name: The step's name in the history (default: module and qualified name).
        retries: How many times to run it again when it raises (0: never).
        backoff: The factor by which the wait grows after each failed attempt.
        interval: Seconds to wait before the first retry.
        cache: True (or an :class:`nbflow.Cache`) keeps its results across runs: a call whose
            name, code (:func:`nbflow.fingerprint`) and arguments match a kept result returns it
            without running, in any workflow or outside one, in any process on the database.
        should_retry: Called with the exception of a failed attempt when a retry is left;
            False ends the step at once with that exception (recorded as its error, as when
            its retries run out). A ``should_retry`` that raises counts as False: the step's
            own exception ends it, with a note naming what the predicate raised. It must be a
            plain function (not ``async def``).

    Outside a workflow, or inside another step, a step is a plain call (a cached one still
    looks in its cache).
    """
    policy = RetryPolicy(retries, backoff, interval, should_retry)
    if fn is None:
        return lambda f: StepFunction(f, name=name, policy=policy, cache=cache)
    return StepFunction(fn, name=name, policy=policy, cache=cache)


def run_step(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run any callable as a one-off step of the current workflow (a plain call outside one).

    A declared step runs as when called (its retries and cache hold). An ``async def`` function
    runs as an ``async def`` step does: in a sync body on nbflow's loop (its result returned), in
    an async body as a coroutine to await.
    """
    __tracebackhide__ = True
    if isinstance(fn, StepFunction):
        return fn(*args, **kwargs)
    ctx = context.body()
    name = getattr(fn, "name", None) or qualified_name(fn)
    if ctx is None:
        if context.current() is None:
            context.unrecorded(name)
        return fn(*args, **kwargs)
    step = Step(name, getattr(fn, "fn", fn))
    if not inspect.iscoroutinefunction(step.fn):
        return ctx.run_step(step, args, kwargs)
    if running_loop() is None:
        return ctx.run_coroutine(step, args, kwargs)
    return ctx.run_step_async(step, args, kwargs, ctx.reserve(1)[0])


def _import_step(module: str, qualname: str) -> Any:
    """The object ``module.qualname`` (how a pickled step is found again)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
