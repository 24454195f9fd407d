"""Why a cached step's call ran, and how a user names cached steps and ages.

``nbflow.why(step, *args)`` (:func:`explain`) says whether that call would run and why;
``nbflow.why(step)`` (:func:`explain_last`) why its last call did, from what this process saw or
the reason kept with the newest row. A step is given as its function or its name (``parse`` is the
notebook's ``__main__.parse``).
"""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Callable
from typing import Any

from nbflow._errors import InvalidValueError
from nbflow._fingerprint import fingerprint
from nbflow.engine._cache import cache_key, fresh, last_call, miss_reason, parts_of, reason_of
from nbflow.engine._engine import Engine
from nbflow.text._format import format_time
from nbflow.text._tables import step_label
from nbflow.workflow._cache import refreshing
from nbflow.workflow._calls import Step, qualified_name
from nbflow.workflow._steps import lookup_step

__all__ = [
    "cached_step",
    "cutoff",
    "explain",
    "explain_last",
    "resolved_name",
    "step_name",
    "takes_no_arguments",
]


def explain(engine: Engine, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Why a call of the cached ``step`` with these arguments would miss (or that it would hit)."""
    assert step.cache is not None
    label = step_label(step.name)
    fn = step.origin or step.fn
    key = cache_key(step, fingerprint(fn), args, kwargs)
    found = engine.store.find_cached([key.entry]).get(key.entry)
    if found is not None and fresh(found, step.cache, time.time()):
        by = "outside a workflow" if found.workflow_id is None else f"by {found.workflow_id!r}"
        return (
            f"step {label!r} would not run: this call's result was kept at "
            f"{format_time(found.created_at)} ({by}), and its code and arguments are the same"
        )
    reason = miss_reason(engine, key, parts_of(step), step.cache, refreshing())
    return f"step {label!r} would run: {reason}"


def explain_last(engine: Engine, name: str) -> str:
    """Why the last call of the cached step ``name`` ran (or that it took a kept result)."""
    label = step_label(name)
    last = last_call(name)
    if last is not None and last.hit:
        when = format_time(last.row.created_at)
        return f"the last call of step {label!r} did not run: it took the result kept at {when}"
    row = last.row if last is not None else engine.store.last_cached(name)
    if row is None:
        return f"step {label!r} has never run with its cache: nothing is kept for it"
    reason = reason_of(row) or "no reason was recorded"
    return f"the last call of step {label!r} ran: {reason}"


def cutoff(older_than: float | dt.timedelta | dt.datetime | None) -> float | None:
    """``older_than`` (seconds, a timedelta or a datetime) as epoch seconds, or None."""
    if older_than is None:
        return None
    if isinstance(older_than, dt.datetime):
        return older_than.timestamp()
    seconds = older_than.total_seconds() if isinstance(older_than, dt.timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise InvalidValueError(
            "nbflow.clear_cache(older_than=...) takes seconds (a number >= 0), a timedelta or a "
            f"datetime, not {older_than!r}.",
            what="older_than",
            value=older_than,
        )
    return time.time() - seconds


def step_name(step: Callable[..., Any]) -> str:
    """The name of a step given as a function (a ``@step``, or any callable)."""
    found = getattr(step, "step", None)
    if isinstance(found, Step):
        return found.name
    return str(getattr(step, "name", None) or qualified_name(step))


def resolved_name(name: str) -> str:
    """A step's name as given, or as a notebook's step is called (``parse`` is
    ``__main__.parse``, as :func:`~nbflow.text._tables.step_label` shows it)."""
    if lookup_step(name) is None and lookup_step(f"__main__.{name}") is not None:
        return f"__main__.{name}"
    return name


def cached_step(step: Callable[..., Any] | str) -> Step:
    """The cached :class:`Step` ``step`` names (a ``@step(cache=...)`` or its name).

    Raises:
        InvalidValueError: It is not a cached step declared in this process.
    """
    found: Any = lookup_step(resolved_name(step)) if isinstance(step, str) else step
    declared = getattr(found, "step", None)
    if not isinstance(declared, Step):
        raise InvalidValueError(
            f"{step!r} is not a step declared in this process: pass a function decorated with "
            "@nbflow.step(cache=True), or its name.",
            what="step",
            value=step,
        )
    if declared.cache is None:
        raise InvalidValueError(
            f"Step {step_label(declared.name)!r} is not cached, so every call runs: declare it "
            "with @nbflow.step(cache=True) to keep its results across runs.",
            what="step",
            value=step,
        )
    return declared


def takes_no_arguments(step: Step) -> bool:
    """Whether ``step``'s function is called with no arguments."""
    try:
        parameters = inspect.signature(step.origin or step.fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )
