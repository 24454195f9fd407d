"""The step cache: looking a call up, keeping its result durably, and saying why a call missed.

A cached step's call is keyed by its name, its code's fingerprint and its arguments (each encoded
canonically, as ``launch`` compares them; ``Cache(ignore=...)`` leaves some out, ``key=``
replaces them). A hit returns the kept output; a miss runs the step, and its result is durable in
the ``step_cache`` table before the caller gets it (so a ``kill -9`` right after never pays for the
call twice). Calls with the same key at the same time in one process run once: the others wait
for the first (:class:`Inflight`) and take its result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import inspect
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from nbflow._canonical import args_digest, short_digest
from nbflow._errors import InvalidValueError
from nbflow._fingerprint import CodeParts, code_parts, describe_changes, fingerprint
from nbflow.engine._engine import Engine
from nbflow.store._ops import CacheRow
from nbflow.text._format import format_time
from nbflow.text._tables import step_label
from nbflow.workflow._cache import Cache, refreshing
from nbflow.workflow._calls import Step, qualified_name
from nbflow.workflow._steps import lookup_step

__all__ = [
    "CacheKey",
    "call_cached",
    "cutoff",
    "explain",
    "explain_last",
    "cached_step",
    "resolved_name",
    "step_name",
    "takes_no_arguments",
    "Claim",
    "Inflight",
    "LastCall",
    "cache_key",
    "fresh",
    "inflight",
    "last_call",
    "miss_reason",
    "new_row",
    "parts_of",
    "reason_of",
    "remember",
]


class CacheKey(NamedTuple):
    """What a cached call is kept under.

    Attributes:
        entry: The digest of ``name``, ``code`` and ``args_hash`` (the table's key).
        name: The step's name.
        code: The fingerprint of its code.
        args_hash: The digest of its arguments (after ``ignore`` and ``key``).
        values: The arguments by name (``"key="`` when ``key`` replaced them); :func:`arguments`
            digests each (what a miss keeps, to say later which one changed).
    """

    entry: str
    name: str
    code: str
    args_hash: str
    values: dict[str, Any]


def cache_key(step: Step, code: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CacheKey:
    """The key of a call of the cached ``step`` whose code's fingerprint is ``code``.

    Raises:
        InvalidValueError: ``key=`` raised, or an argument cannot be compared across runs (a
            lock, a client object): the message names it and says to ``ignore`` it.
    """
    cache = step.cache
    assert cache is not None
    label = step_label(step.name)
    if cache.key is not None:
        try:
            values: dict[str, Any] = {"key=": cache.key(*args, **kwargs)}
        except Exception as exc:
            raise InvalidValueError(
                f"The cache key= of step {label!r} raised {type(exc).__name__}: {exc}. It takes "
                "the step's arguments and returns what identifies the call.",
                what="key",
                value=cache.key,
            ) from exc
    else:
        fn = step.origin or step.fn
        plain = None if cache.ignore else _plain_names(fn)
        if plain is not None and not kwargs and len(args) == len(plain):
            in_order = args_digest(args, kwargs)  # the common case, fast: as a checkpoint's
            if in_order is not None:
                args_hash = "p" + in_order
                entry = _hash(f"{step.name}\0{code}\0{args_hash}")
                return CacheKey(
                    entry, step.name, code, args_hash, dict(zip(plain, args, strict=True))
                )
        values = _bound(fn, args, kwargs, cache)
    plain = None if cache.key is not None or cache.ignore else _plain_names(step.origin or step.fn)
    if plain is not None:  # the common case, fast: the arguments in order, as a checkpoint's
        in_order = args_digest(tuple(values.values()), {})
        if in_order is not None:
            args_hash = "p" + in_order
            return CacheKey(
                _hash(f"{step.name}\0{code}\0{args_hash}"), step.name, code, args_hash, values
            )
    digests = _digests(label, values)
    # names and digests are fixed-width hex or identifiers: joined, they cannot collide
    args_hash = _hash("\0".join(f"{n}={d}" for n, d in sorted(digests.items())))
    entry = _hash(f"{step.name}\0{code}\0{args_hash}")
    return CacheKey(entry, step.name, code, args_hash, values)


def arguments(key: CacheKey) -> dict[str, str]:
    """Each argument's digest, by name (see :class:`CacheKey`)."""
    return _digests(step_label(key.name), key.values)


def _digests(label: str, values: dict[str, Any]) -> dict[str, str]:
    digests = {}
    for name, value in values.items():
        try:
            digests[name] = short_digest(value)
        except InvalidValueError as exc:
            raise InvalidValueError(
                f"Step {label!r} is cached, but its argument {name!r} (a {type(value).__name__}) "
                "cannot be compared across runs. Leave it out of the key with "
                f"nbflow.Cache(ignore=({name!r},)), or give nbflow.Cache(key=...).",
                what=name,
                value=value,
            ) from exc
    return digests


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _bound(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cache: Cache
) -> dict[str, Any]:
    """The call's arguments by name, defaults applied (``f(1)`` and ``f(x=1)`` are one call),
    without those ``cache`` ignores."""
    plain = _plain_names(fn)
    if plain is not None and not kwargs and len(args) == len(plain):
        values: dict[str, Any] = dict(zip(plain, args, strict=True))  # the common case, fast
    else:
        try:
            bound = _signature(fn).bind(*args, **kwargs)
        except (TypeError, ValueError):  # no signature, or a call that will raise when it runs
            values = {f"#{i}": a for i, a in enumerate(args)}
            values.update(kwargs)
        else:
            bound.apply_defaults()
            values = dict(bound.arguments)
    for name in cache.ignore:
        values.pop(name, None)
    return values


_SIGNATURES: weakref.WeakKeyDictionary[Any, inspect.Signature] = weakref.WeakKeyDictionary()
_PLAIN: weakref.WeakKeyDictionary[Any, tuple[str, ...] | None] = weakref.WeakKeyDictionary()


def _plain_names(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """The parameter names of ``fn`` when each is plain (positional or keyword, no default), so
    a call with as many positional arguments binds them in order; else None."""
    try:
        if fn in _PLAIN:
            return _PLAIN[fn]
    except TypeError:  # not weakly referable
        return None
    try:
        parameters = _signature(fn).parameters.values()
    except (TypeError, ValueError):
        names = None
    else:
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in parameters)
        names = tuple(p.name for p in parameters) if plain else None
    _PLAIN[fn] = names
    return names


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature(fn)``, kept per function (it costs a call ~10 µs)."""
    try:
        found = _SIGNATURES.get(fn)
    except TypeError:  # not weakly referable
        return inspect.signature(fn)
    if found is None:
        found = _SIGNATURES[fn] = inspect.signature(fn)
    return found


def fresh(row: CacheRow | None, cache: Cache, now: float) -> bool:
    """Whether ``row`` exists and has not expired."""
    if row is None:
        return False
    if cache.expire is None:
        return True
    seconds = cache.seconds
    return seconds is None or now - row.created_at <= seconds


def miss_reason(
    engine: Engine,
    key: CacheKey,
    parts: CodeParts,
    cache: Cache,
    refresh: bool,
    kept: dict[str, Any] | None = None,
    exists: bool | None = None,
) -> str:
    """Why a call with ``key`` (whose code is ``parts``) finds nothing to take, in words.

    ``kept``: a run's memo of each step's newest cache row (looked up once per run and step);
    ``exists``: False when the caller knows no row has this key (None: look).
    """
    label = step_label(key.name)
    if refresh:
        return "refreshed: it ran inside nbflow.refresh_cache()"
    store = engine.store
    same = None if exists is False else store.find_cached([key.entry]).get(key.entry)
    if same is not None:
        when = format_time(same.created_at)
        return f"expired: its result was kept at {when}, longer ago than expire={cache.expire!r}"
    if kept is None:  # the kept call with these arguments (another code), else the newest
        last = store.last_cached(key.name, key.args_hash)
    elif key.name in kept:  # (a run's many calls: compared with the newest, read once)
        last = kept[key.name]
    else:
        last = kept[key.name] = store.last_cached(key.name)
    if last is None:
        return f"never run: nothing is kept for step {label!r}"
    before = _detail(last)
    reasons = []
    if last.code != key.code:
        old = before.get("code")
        if old is None:
            reasons.append(f"the code of {label!r} changed")
        else:
            reasons += describe_changes(CodeParts.from_json(old), parts)
    if last.args_hash != key.args_hash:
        reasons += _argument_changes(before.get("arguments", {}), arguments(key))
    if not reasons:
        return "not kept: no result of this call was kept (or it expired)"
    return "; ".join(reasons)


def _argument_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Which arguments differ from the last call kept."""
    if "key=" in new or "key=" in old:
        return ["the value of key= changed"]
    changed = [f"argument {n!r} changed" for n in new if n in old and old[n] != new[n]]
    changed += [f"argument {n!r} is new" for n in new if n not in old]
    changed += [f"argument {n!r} is gone" for n in old if n not in new]
    return changed or ["the arguments changed"]


def _detail(row: CacheRow) -> dict[str, Any]:
    try:
        found = json.loads(row.detail or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def reason_of(row: CacheRow) -> str | None:
    """The miss reason kept with ``row`` (why the call that made it ran)."""
    reason = _detail(row).get("reason")
    return reason if isinstance(reason, str) else None


def new_row(
    key: CacheKey,
    encoded: tuple[str | None, bytes | None],
    workflow_id: str | None,
    parts: CodeParts,
    reason: str,
) -> CacheRow:
    """The row that keeps a result (``encoded``: its JSON or pickle)."""
    detail = json.dumps({"code": parts.to_json(), "arguments": arguments(key), "reason": reason})
    return CacheRow(
        key.entry,
        key.name,
        key.code,
        key.args_hash,
        encoded[0],
        encoded[1],
        workflow_id,
        time.time(),
        detail,
    )


def parts_of(step: Step, memo: dict[Any, Any] | None = None) -> CodeParts:
    """What the fingerprint of ``step``'s code covers (for the reasons a call missed); ``memo``:
    a run's, by function."""
    fn = step.origin or step.fn
    if memo is None:
        return code_parts(fn)
    found = memo.get(fn)
    if found is None:
        found = memo[fn] = code_parts(fn)
    return found  # type: ignore[no-any-return]


class LastCall(NamedTuple):
    """The last call of a cached step in this process: whether it hit, and the row it took or
    made (whose detail says why it missed)."""

    hit: bool
    row: CacheRow


_LAST: dict[str, LastCall] = {}


def remember(name: str, row: CacheRow, *, hit: bool) -> None:
    """Note the last call of the cached step ``name`` (for ``nbflow.why``)."""
    _LAST[name] = LastCall(hit, row)


def last_call(name: str) -> LastCall | None:
    """The last call of the cached step ``name`` in this process, or None."""
    return _LAST.get(name)


class Claim:
    """What :meth:`Inflight.first` gives a call: whether it runs the call (``mine``), else the
    row the call that ran it kept (``row``; None: it raised, or kept nothing)."""

    __slots__ = ("mine", "row")

    def __init__(self, mine: bool, row: CacheRow | None = None) -> None:
        self.mine = mine
        self.row = row


class _Running:
    __slots__ = ("done", "row")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.row: CacheRow | None = None


class Inflight:
    """The cached calls running in this process, by entry: a second call with the same key
    waits for the first, then takes the row it kept (it may not be durable yet: the first call
    waits for that before it returns, and so does the second, by the same write log)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}

    @contextlib.contextmanager
    def first(self, entry: str, check: Callable[[], None]) -> Iterator[Claim]:
        """A :class:`Claim`: this call runs it (the others wait until the block ends; set
        ``claim.row`` to what it kept), or another call ran it meanwhile (``check`` is called
        while waiting: it raises to stop)."""
        with self._lock:
            running = self._running.get(entry)
            mine = running is None
            if running is None:
                running = self._running[entry] = _Running()
        if not mine:
            while not running.done.wait(0.2):
                check()
            yield Claim(False, running.row)
            return
        claim = Claim(True)
        try:
            yield claim
        finally:
            with self._lock:
                del self._running[entry]
            running.row = claim.row
            running.done.set()


_INFLIGHT: weakref.WeakKeyDictionary[Engine, Inflight] = weakref.WeakKeyDictionary()
_INFLIGHT_LOCK = threading.Lock()


def inflight(engine: Engine) -> Inflight:
    """The :class:`Inflight` of ``engine``'s process."""
    with _INFLIGHT_LOCK:
        found = _INFLIGHT.get(engine)
        if found is None:
            found = _INFLIGHT[engine] = Inflight()
        return found


def call_cached(engine: Engine, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A cached step's call outside a workflow body: its kept result, or its result now, kept
    (durably, before it is returned). An ``async def`` step: a coroutine that does the same."""
    __tracebackhide__ = True
    fn = step.origin or step.fn
    key = cache_key(step, fingerprint(fn), args, kwargs)
    if inspect.iscoroutinefunction(fn):
        return _call_cached_async(engine, step, key, args, kwargs)
    with inflight(engine).first(key.entry, engine.check_open) as claim:
        found = claim.row or _kept(engine, step, key, refresh=refreshing() and claim.mine)
        if found is not None:
            return engine.decode(found.output_json, found.output_pickle, _what(step))
        row = _missed(engine, step, key)
        output = step.fn(*args, **kwargs)
        claim.row = _keep(engine, step, row, output)
        return output


async def _call_cached_async(
    engine: Engine, step: Step, key: CacheKey, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    __tracebackhide__ = True
    found = _kept(engine, step, key, refresh=refreshing())
    if found is not None:
        return engine.decode(found.output_json, found.output_pickle, _what(step))
    row = _missed(engine, step, key)
    output = await step.fn(*args, **kwargs)
    _keep(engine, step, row, output)
    return output


def _what(step: Step) -> str:
    return f"the output of step {step.name!r}"


def _kept(engine: Engine, step: Step, key: CacheKey, *, refresh: bool) -> CacheRow | None:
    """The row kept for ``key`` that has not expired (None: none, or refreshing)."""
    assert step.cache is not None
    if refresh:
        return None
    found = engine.store.find_cached([key.entry]).get(key.entry)
    if found is None or not fresh(found, step.cache, time.time()):
        return None
    remember(key.name, found, hit=True)
    return found


def _missed(engine: Engine, step: Step, key: CacheKey) -> CacheRow:
    """The row that will keep the result of a call that missed (its output not yet in it)."""
    assert step.cache is not None
    parts = parts_of(step)
    reason = miss_reason(engine, key, parts, step.cache, refreshing())
    row = new_row(key, (None, None), None, parts, reason)
    remember(key.name, row, hit=False)
    return row


def _keep(engine: Engine, step: Step, row: CacheRow, output: Any) -> CacheRow:
    """Keep ``output`` in ``row``, durably; the row kept."""
    encoded = engine.encode(output, _what(step))
    kept = row._replace(output_json=encoded[0], output_pickle=encoded[1], created_at=time.time())
    engine.log.wait_durable(engine.log.append(kept))
    return kept


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
