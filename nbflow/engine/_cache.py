"""The step cache: looking a call up, keeping its result durably, and saying why a call missed.

A cached step's call is keyed by its name, its code's fingerprint and its arguments (each encoded
canonically, as ``launch`` compares them; ``Cache(ignore=...)`` leaves some out, ``key=``
replaces them). A hit returns the kept output; a miss runs the step, and its result is durable in
the ``step_cache`` table before the caller gets it (so a ``kill -9`` right after never pays for the
call twice). Calls with the same key at the same time in one process run once: the others wait
for the first (:class:`Inflight`) and take its result.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from nbflow._canonical import args_digest, short_digest
from nbflow._errors import InvalidValueError
from nbflow._fingerprint import CodeParts, code_parts, describe_changes
from nbflow.engine._engine import Engine
from nbflow.store._ops import CacheRow
from nbflow.text._format import format_time
from nbflow.text._tables import step_label
from nbflow.workflow._cache import Cache
from nbflow.workflow._calls import Step

__all__ = [
    "CacheKey",
    "LastCall",
    "cache_key",
    "fresh",
    "last_call",
    "miss_reason",
    "new_row",
    "parts_of",
    "reason_of",
    "remember",
]


#: Builds a named tuple as tuple builds it (a NamedTuple's own __new__ is a Python call).
_new = tuple.__new__


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


def cache_key(
    step: Step,
    code: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    in_order: str | None = None,
) -> CacheKey:
    """The key of a call of the cached ``step`` whose code's fingerprint is ``code``.

    A function whose parameters are all plain (:func:`_plain_names`) digests its arguments in
    order, as a checkpoint does (``f(1)`` and ``f(x=1)`` alike); any other, each argument by
    name (``ignore`` leaves some out, ``key=`` replaces them). ``in_order``: the checkpoint's
    digest of ``args`` when the caller has it (``args_digest(args, {})``; a hit is a hot path).

    Raises:
        InvalidValueError: ``key=`` raised, or an argument cannot be compared across runs (a
            lock, a client object): the message names it and says to ``ignore`` it.
    """
    cache = step.cache
    assert cache is not None
    fn = step.origin or step.fn
    plain = None if cache.key is not None or cache.ignore else _plain_names(fn)
    if cache.key is not None:
        values = _keyed(step, args, kwargs)
    elif plain is not None and not kwargs and len(args) == len(plain):
        values = dict(zip(plain, args, strict=True))  # the common case, fast
    else:
        values = _bound(fn, args, kwargs, cache)
    if plain is None:
        in_order = None
    elif in_order is None or kwargs:
        in_order = args_digest(tuple(values.values()), {})
    if in_order is not None:
        args_hash = "p" + in_order
    else:  # names and digests are identifiers and hex digits: joined, they cannot collide
        digests = _digests(step_label(step.name), values)
        args_hash = _hash("\0".join(f"{n}={d}" for n, d in sorted(digests.items())))
    return _key_of(step.name, code, args_hash, values)


def plain_arity(step: Step) -> int | None:
    """How many arguments a call of ``step`` passes, in order, on :func:`cache_key`'s common
    path (a step without ``key=`` or ``ignore`` whose parameters are all plain), or None.

    Such a call's ``args_hash`` is ``"p"`` and the checkpoint's digest of its arguments: a hit
    is found by it without the rest of the key (its entry, a digest more)."""
    cache = step.cache
    if cache is None or cache.key is not None or cache.ignore:
        return None
    plain = _plain_names(step.origin or step.fn)
    return None if plain is None else len(plain)


def _key_of(name: str, code: str, args_hash: str, values: dict[str, Any]) -> CacheKey:
    entry = _hash(f"{name}\0{code}\0{args_hash}")
    return _new(CacheKey, (entry, name, code, args_hash, values))


def _keyed(step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``key=`` makes of the call, as its one argument."""
    assert step.cache is not None and step.cache.key is not None
    try:
        return {"key=": step.cache.key(*args, **kwargs)}
    except Exception as exc:
        raise InvalidValueError(
            f"The cache key= of step {step_label(step.name)!r} raised {type(exc).__name__}: "
            f"{exc}. It takes the step's arguments and returns what identifies the call.",
            what="key",
            value=step.cache.key,
        ) from exc


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
_UNSEEN = object()


def _plain_names(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """The parameter names of ``fn`` when each is plain (positional or keyword, no default), so
    a call with as many positional arguments binds them in order; else None."""
    try:
        found = _PLAIN.get(fn, _UNSEEN)
    except TypeError:  # not weakly referable
        return None
    if found is not _UNSEEN:
        return found  # type: ignore[return-value]
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


def fresh(row: CacheRow | None, cache: Cache, now: float | None = None) -> bool:
    """Whether ``row`` exists and has not expired (by ``now``, default: the clock's)."""
    if row is None:
        return False
    if cache.expire is None:
        return True
    seconds = cache.seconds
    return seconds is None or (time.time() if now is None else now) - row.created_at <= seconds


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
    _LAST[name] = _new(LastCall, (hit, row))  # (as tuple builds it: a hit is a hot path)


def last_call(name: str) -> LastCall | None:
    """The last call of the cached step ``name`` in this process, or None."""
    return _LAST.get(name)
