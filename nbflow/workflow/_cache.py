"""Declaring a step's cache: ``@step(cache=True)``, :class:`Cache`, :func:`refresh_cache`.

A cached step's result is kept under its name, its code's fingerprint
(:func:`nbflow.fingerprint`) and its arguments (compared as ``launch`` compares them); a later call
with the same three returns it without running, in any workflow or outside one, in any process on
the same database. The engine (:mod:`nbflow.engine._cache`) looks it up and keeps it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from nbflow._errors import InvalidValueError

__all__ = ["Cache", "cache_policy", "refresh_cache", "refreshing"]

_REFRESH: contextvars.ContextVar[bool] = contextvars.ContextVar("nbflow_refresh", default=False)


@dataclasses.dataclass(frozen=True)
class Cache:
    """How a step's results are cached across runs (``@nbflow.step(cache=Cache(...))``).

    Attributes:
        expire: Seconds (or a ``timedelta``) a result stays valid; None: until cleared.
        ignore: Names of arguments left out of the key (a client object, a progress callback).
        key: A function of the step's arguments whose value replaces them in the key (e.g.
            ``key=lambda prompt, model, client: (prompt, model)``).
    """

    expire: float | dt.timedelta | None = None
    ignore: tuple[str, ...] = ()
    key: Callable[..., Any] | None = None

    @property
    def seconds(self) -> float | None:
        """:attr:`expire` in seconds (None: never)."""
        if isinstance(self.expire, dt.timedelta):
            return self.expire.total_seconds()
        return None if self.expire is None else float(self.expire)


def cache_policy(cache: Any, fn: Callable[..., Any], name: str) -> Cache | None:
    """The :class:`Cache` that ``@step(cache=...)`` asks for (None: not cached), checked against
    the step's function.

    Raises:
        InvalidValueError: ``cache`` is not a bool or a :class:`Cache`, ``expire`` is negative or
            not a number, or ``ignore`` names an argument ``fn`` does not take.
    """
    if cache is None or cache is False:
        return None
    if cache is True:
        return Cache()
    if not isinstance(cache, Cache):
        raise InvalidValueError(
            f"@nbflow.step(cache=...) of {name!r} takes True or nbflow.Cache(expire=, ignore=, "
            f"key=), not a {type(cache).__name__}.",
            what="cache",
            value=cache,
        )
    expire = cache.expire
    if not isinstance(expire, (dt.timedelta, type(None))) and (
        isinstance(expire, bool) or not isinstance(expire, (int, float)) or expire < 0
    ):
        raise InvalidValueError(
            f"nbflow.Cache(expire=...) of step {name!r} takes seconds (a number >= 0) or a "
            f"timedelta, not {expire!r}.",
            what="expire",
            value=expire,
        )
    if isinstance(cache.ignore, str):
        cache = dataclasses.replace(cache, ignore=(cache.ignore,))
    _check_ignored(cache, fn, name)
    if cache.key is not None and not callable(cache.key):
        raise InvalidValueError(
            f"nbflow.Cache(key=...) of step {name!r} takes a function of the step's arguments, "
            f"not a {type(cache.key).__name__}.",
            what="key",
            value=cache.key,
        )
    return cache


def _check_ignored(cache: Cache, fn: Callable[..., Any], name: str) -> None:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for ignored in cache.ignore:
        if ignored not in parameters and not takes_any:
            raise InvalidValueError(
                f"nbflow.Cache(ignore=...) of step {name!r} names {ignored!r}, which is not one "
                f"of its arguments ({', '.join(parameters) or 'none'}).",
                what="ignore",
                value=ignored,
            )


@contextlib.contextmanager
def refresh_cache() -> Iterator[None]:
    """Inside this block, cached steps run again and replace what their cache held.

    Example:
        >>> with nbflow.refresh_cache():
        ...     summary = summarize(doc)  # runs, and the new result is kept
    """
    token = _REFRESH.set(True)
    try:
        yield
    finally:
        _REFRESH.reset(token)


def refreshing() -> bool:
    """Whether this code runs inside :func:`refresh_cache`."""
    return _REFRESH.get()
