"""A call's arguments in a few characters, as the steps table shows them (``'https://…/page/3'``,
``42``, ``DataFrame(100x3)``).

Checkpoints record it once per step call, so the common cases (one number, one short string)
take a short path. Values are never spelled out in full: a string is cut to
:data:`STRING_CHARS` characters, a container is named by its type and size, any other object by
its type (and shape, for frames and arrays), and a keyword argument whose name says it holds a
secret (``api_key``, ``token``, ``password``, …) is shown as ``***``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CALL_CHARS", "STRING_CHARS", "short_call", "short_value"]

#: The most characters of a string argument shown (with the quotes and the ellipsis).
STRING_CHARS = 26
#: The most characters of a call's arguments shown.
CALL_CHARS = 40
#: Parts of a keyword's name that say its value is a secret.
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "auth")


def _short_str(value: str) -> str:
    """A string's repr, its middle cut out when long: the ends of a URL or a path say most."""
    text = repr(value)
    if len(text) <= STRING_CHARS:
        return text
    head = (STRING_CHARS - 1) // 2
    return text[:head] + "…" + text[head + 1 - STRING_CHARS :]


def _short_sized(value: Any) -> str:
    return f"{type(value).__name__}({len(value):,})"


def _short_float(value: float) -> str:
    return f"{value:.6g}"


_SHORT: dict[type, Callable[[Any], str]] = {
    int: str,
    bool: str,
    float: _short_float,
    str: _short_str,
    type(None): str,
    bytes: lambda v: f"bytes({len(v):,})",
    list: _short_sized,
    tuple: _short_sized,
    dict: _short_sized,
    set: _short_sized,
    frozenset: _short_sized,
}


def short_value(value: Any) -> str:
    """One argument in a few characters: a number as written, a string cut short, a container
    as its type and size, an object with a ``shape`` (a frame, an array) as its type and shape,
    anything else as ``<its type>``."""
    short = _SHORT.get(type(value))
    if short is not None:
        return short(value)
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(type(n) is int for n in shape):
        return f"{type(value).__name__}({'x'.join(f'{n:,}' for n in shape)})"
    return f"<{type(value).__name__}>"


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def short_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A call's arguments as the steps table shows them: ``42``, ``'a.csv', limit=10``; at most
    :data:`CALL_CHARS` characters (cut with ``…``); empty for a call without arguments.

    Args:
        args: The positional arguments.
        kwargs: The keyword arguments; one whose name says it is a secret shows as ``***``.
    """
    if not kwargs and len(args) == 1:
        short = _SHORT.get(type(args[0]))
        if short is not None:
            return short(args[0])
    parts = [short_value(a) for a in args[:4]] + (["…"] if len(args) > 4 else [])
    parts += [f"{k}={'***' if _secret(k) else short_value(v)}" for k, v in list(kwargs.items())[:4]]
    text = ", ".join(parts + (["…"] if len(kwargs) > 4 else []))
    return text if len(text) <= CALL_CHARS else text[: CALL_CHARS - 1] + "…"
