"""Canonical bytes of a Python value: equal values give equal bytes, in any process.

Used wherever nbflow compares or hashes a user's values across kernels (a launch's arguments, a
durable cell's inputs), where ``json.dumps`` (int keys become strings, tuples lists), ``pickle``
and ``repr`` (a set's order follows the hash seed, ``PYTHONHASHSEED``) do not do.

The encoding is type-tagged and prefix-free: every value is a one-letter tag followed by either
its payload's length and the payload, or its number of parts and the parts, each encoded the same
way. So ``1``, ``1.0`` and ``True``, ``"1"`` and ``b"1"``, ``(1, 2)`` and ``[1, 2]``, ``{1: x}``
and ``{"1": x}`` differ, and no concatenation of encodings equals another's. What is equal
whatever the process:

- sets and frozensets: their elements sorted by their encodings; dicts: their items sorted by
  their keys' encodings (``{a: 1, b: 2}`` equals ``{b: 2, a: 1}``, as ``==`` says; an
  ``OrderedDict`` keeps its order, as its ``==`` does);
- floats: their IEEE bits, every NaN as one (``0.0`` and ``-0.0`` differ: they print and divide
  differently);
- functions and classes: their module and qualified name (a lambda or a function defined inside
  another has no name to find it by: refused); Enum members: their class and name; namedtuples
  and dataclasses: their class and their fields (a dataclass's ``compare`` fields, as ``==``);
- anything else: ``__reduce_ex__(4)``, the way pickle takes it apart, each part encoded in turn
  (so an object whose state holds a set is stable too; datetimes, Decimals, UUIDs, paths, numpy
  arrays and pandas frames go this way);
- a value met again inside itself: a back-reference to its depth on the path (cycles end).

A value that cannot be taken apart raises :class:`~nbflow._errors.InvalidValueError`.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import hashlib
import math
import struct
import types
from collections.abc import Callable
from typing import Any

from nbflow._errors import InvalidValueError

__all__ = ["Hook", "args_digest", "canonical", "digest", "short_digest"]

#: Encodes a value its own way (bytes), or leaves it to the rules (None); may raise to refuse it.
Hook = Callable[[Any], "bytes | None"]

_NAN = struct.pack(">d", math.nan)
_PAIR = b"t" + (2).to_bytes(8, "big") + b"t"
_NO_KWARGS = b"d" + (0).to_bytes(8, "big")
_blake2b = hashlib.blake2b
_NAMED = (type, types.FunctionType, types.BuiltinFunctionType)


def canonical(value: Any, *, hook: Hook | None = None) -> bytes:
    """The canonical bytes of ``value`` (see the module's documentation).

    Args:
        value: Any value that pickle could take apart.
        hook: Called first for every value met, nested ones included: the bytes it returns stand
            for that value (tagged, so they never equal another rule's); None leaves the value to
            the rules. An exception it raises propagates.

    Returns:
        Bytes equal for equal values in any process, different for different values.

    Raises:
        InvalidValueError: The value (or a part of it) cannot be encoded; the message names its
            type and what to do.
    """
    try:
        return _Encoder(hook).encode(value)
    except RecursionError:
        raise InvalidValueError(
            f"Cannot encode a {_type_name(value)} to compare it: it is nested too deeply. "
            "Pass a flatter value.",
            what="A value",
            value=value,
        ) from None


def digest(value: Any, *, hook: Hook | None = None) -> str:
    """The sha256 hex digest of :func:`canonical` ``(value)``."""
    return hashlib.sha256(canonical(value, hook=hook)).hexdigest()


def args_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """A short text that stands for a call's arguments, equal for calls :func:`digest` finds
    equal and different for others; None when they cannot be encoded (the call is then never
    taken for another).

    Checkpoints record one per step call (the hot path): one int is spelled out (``#i42``: the
    ``#`` keeps it apart from the 32 hex digits of a digest; a string never is, it may be a
    secret), and a few numbers and strings take a shorter path to the bytes :func:`canonical`
    gives.
    """
    if not kwargs:
        if len(args) == 1 and type(args[0]) is int:
            return f"#i{args[0]}"
        simple = _SIMPLE
        try:
            parts = [simple[type(a)](a) for a in args]
        except KeyError:
            pass
        else:
            # canonical((args, {})): a pair of the tuple of args and an empty dict
            encoded = b"".join((_PAIR, len(parts).to_bytes(8, "big"), *parts, _NO_KWARGS))
            return _blake2b(encoded, digest_size=16).hexdigest()
    try:
        encoded = canonical((args, kwargs))
    except InvalidValueError:
        return None
    return _blake2b(encoded, digest_size=16).hexdigest()


def short_digest(value: Any) -> str:
    """A short digest (32 hex digits, blake2b) of :func:`canonical` ``(value)``; a number, a
    string or bytes take a shorter path to the same bytes.

    Raises:
        InvalidValueError: As :func:`canonical`.
    """
    simple = _SIMPLE.get(type(value))
    encoded = simple(value) if simple is not None else canonical(value)
    return _blake2b(encoded, digest_size=16).hexdigest()


def _atom(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(8, "big") + payload


def _parts(tag: bytes, parts: list[bytes]) -> bytes:
    return tag + len(parts).to_bytes(8, "big") + b"".join(parts)


def _text(text: str) -> bytes:
    return _atom(b"s", text.encode("utf-8", "surrogatepass"))


def _int(value: int) -> bytes:
    return _atom(b"i", value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))


def _float_bits(value: float) -> bytes:
    return _NAN if math.isnan(value) else struct.pack(">d", value)


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


_SIMPLE: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda v: b"N",
    bool: lambda v: b"T" if v else b"F",
    int: _int,
    float: lambda v: _atom(b"f", _float_bits(v)),
    complex: lambda v: _atom(b"c", _float_bits(v.real) + _float_bits(v.imag)),
    str: _text,
    bytes: lambda v: _atom(b"b", v),
    bytearray: lambda v: _atom(b"a", bytes(v)),
}


class _Encoder:
    """One encoding: the hook, and the values on the path from the top (for back-references)."""

    def __init__(self, hook: Hook | None) -> None:
        self.hook = hook
        self.path: dict[int, int] = {}  # id() of a value on the path -> its depth
        self.held: list[Any] = []  # the values on the path, kept alive so their ids stay theirs

    def encode(self, value: Any) -> bytes:
        if self.hook is not None:
            mine = self.hook(value)
            if mine is not None:
                return _atom(b"h", mine)
        simple = _SIMPLE.get(type(value))
        if simple is not None:
            return simple(value)
        depth = self.path.get(id(value))
        if depth is not None:
            return _atom(b"R", depth.to_bytes(8, "big"))
        self.path[id(value)] = len(self.held)
        self.held.append(value)
        try:
            return self._compound(value)
        finally:
            self.held.pop()
            del self.path[id(value)]

    def _sorted(self, tag: bytes, pairs: Any) -> bytes:
        return _parts(tag, sorted(self.encode(k) + self.encode(v) for k, v in pairs))

    def _compound(self, value: Any) -> bytes:
        kind = type(value)
        if kind is tuple or kind is list:
            return _parts(b"t" if kind is tuple else b"l", [self.encode(v) for v in value])
        if kind is set or kind is frozenset:
            return _parts(b"S" if kind is set else b"Z", sorted(self.encode(v) for v in value))
        if kind is dict:
            return self._sorted(b"d", value.items())
        if isinstance(value, enum.Enum):
            name = value.name  # None for some Flag combinations: their value then
            return _parts(b"E", [_named(kind), self.encode(value.value if name is None else name)])
        if isinstance(value, tuple) and hasattr(kind, "_fields"):  # a namedtuple
            fields = [_text(f) + self.encode(v) for f, v in zip(kind._fields, value, strict=False)]
            return _parts(b"n", [_named(kind), *fields])
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            compared = [f.name for f in dataclasses.fields(value) if f.compare]
            fields = [_text(name) + self.encode(getattr(value, name)) for name in compared]
            return _parts(b"D", [_named(kind), *fields])
        if isinstance(value, types.ModuleType):
            return _atom(b"m", value.__name__.encode("utf-8", "surrogatepass"))
        if isinstance(value, _NAMED) and _unbound(value):
            return _named(value)
        return self._reduced(value)

    def _reduced(self, value: Any) -> bytes:
        """``value`` as pickle takes it apart: callable, arguments, state, items."""
        try:
            reduced = value.__reduce_ex__(4)
        except Exception as exc:
            raise _refused(value, f"{type(exc).__name__}: {exc}") from None
        if isinstance(reduced, str):  # a named singleton, such as Ellipsis
            return _parts(b"G", [_text(_type_name(value)), _text(reduced)])
        if not isinstance(reduced, tuple) or not 2 <= len(reduced) <= 6:
            raise _refused(value, f"its __reduce_ex__ returned {type(reduced).__name__}")
        func, args, state, items, pairs = (*reduced, None, None, None)[:5]
        parts = [self.encode(func), self.encode(args), self.encode(state)]
        parts.append(b"N" if items is None else self.encode(list(items)))
        if pairs is None:
            parts.append(b"N")
        elif isinstance(value, collections.OrderedDict):  # its order is part of its value
            parts.append(_parts(b"o", [self.encode(k) + self.encode(v) for k, v in pairs]))
        else:
            parts.append(self._sorted(b"d", pairs))
        return _parts(b"r", parts)


def _unbound(value: Any) -> bool:
    """Whether a function is not bound to an object (a builtin is bound to its module)."""
    return isinstance(getattr(value, "__self__", None), (type(None), types.ModuleType))


def _named(value: Any) -> bytes:
    """A function or class by its module and qualified name."""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise _refused(value, f"{qualname or value!r} cannot be found by its name")
    return _atom(b"g", f"{module}:{qualname}".encode("utf-8", "surrogatepass"))


def _refused(value: Any, why: str) -> InvalidValueError:
    return InvalidValueError(
        f"Cannot encode a {_type_name(value)} to compare it ({why}). Pass plain values "
        "(numbers, strings, containers, dataclasses), module-level functions and classes, or "
        "objects that pickle can take apart.",
        what="A value",
        value=value,
    )
