"""How values are stored: JSON when they are JSON-native, pickle otherwise.

A value is JSON-native when it round-trips through JSON unchanged: ``dict`` with ``str`` keys,
``list``, ``str``, ``int``, finite ``float``, ``bool`` and ``None``, nested. Those are stored as JSON
text, so SQL can query them; anything else (tuples, sets, dataclasses, DataFrames…) is pickled.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

from nbflow._errors import RecordedError, SerializationError

__all__ = [
    "Encoded",
    "check_text",
    "decode",
    "decode_error",
    "decode_many",
    "encode",
    "encode_error",
    "is_json_native",
]

#: A stored value: JSON text, or pickle bytes; exactly one is not None.
Encoded = tuple["str | None", "bytes | None"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_dumps_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_loads = json.loads


def check_text(value: Any, what: str) -> str:
    """Return ``value`` if it is a non-empty str that can be stored; raise TypeError otherwise."""
    if type(value) is not str or not value:
        raise TypeError(f"{what} must be a non-empty str, not {value!r}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError(f"{what} must be valid Unicode text, not {value!r}.") from None
    return value


def is_json_native(value: Any) -> bool:
    """Tell whether ``value`` round-trips through JSON unchanged (a cyclic one does not)."""
    try:
        return _is_json_native(value)
    except RecursionError:
        return False


def _is_json_native(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(k) is str and _is_json_native(v) for k, v in value.items())
    if kind is list:
        return all(_is_json_native(v) for v in value)
    return False


def encode(value: Any, *, what: str, allow_pickle: bool = True) -> Encoded:
    """Encode ``value`` for storage.

    Args:
        value: Any value.
        what: What the value is for, named in errors (e.g. ``"stream 'rows'"``).
        allow_pickle: Whether values that are not JSON-native may be pickled.

    Returns:
        ``(json_text, None)`` or ``(None, pickle_bytes)``.

    Raises:
        SerializationError: The value cannot be stored; nothing was written.
    """
    if is_json_native(value):
        text = _dumps(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape it, still valid JSON
            text = _dumps_ascii(value)
        return text, None
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    if not allow_pickle:
        raise SerializationError(
            f"Cannot store a {type_name} for {what}: this runtime was opened with "
            "allow_pickle=False, which stores JSON-native values only (dict, list, str, int, "
            "float, bool, None). Convert the value, e.g. to a dict or list. Nothing was written.",
            what=what,
            type_name=type_name,
        )
    try:
        return None, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SerializationError(
            f"Cannot store a {type_name} for {what}: it is not JSON-native and pickle refused "
            f"it ({type(exc).__name__}: {exc}). Store something picklable instead, e.g. its "
            "data as a dict. Nothing was written.",
            what=what,
            type_name=type_name,
        ) from exc


def decode(text: str | None, blob: bytes | None, *, what: str, allow_pickle: bool = True) -> Any:
    """Decode a stored value (the inverse of :func:`encode`).

    Raises:
        SerializationError: The value was pickled and pickle is not allowed, or it cannot be
            unpickled here (e.g. its class is not importable in this process).
    """
    if text is not None:
        return _loads(text)
    if blob is None:
        return None
    if not allow_pickle:
        raise SerializationError(
            f"The stored value of {what} was pickled, and this runtime was opened with "
            "allow_pickle=False (unpickling runs code from the file). Open the file with "
            "allow_pickle=True if you trust it.",
            what=what,
        )
    try:
        return pickle.loads(blob)
    except Exception as exc:
        raise SerializationError(
            f"Cannot load the stored value of {what}: unpickling failed ({type(exc).__name__}: "
            f"{exc}). Import or define its class in this process first.",
            what=what,
        ) from exc


def decode_many(
    stored: list[tuple[str | None, bytes | None]], *, what: str, allow_pickle: bool = True
) -> list[Any]:
    """Decode many stored values at once: JSON ones in a single parse of one array."""
    texts = [text for text, _ in stored if text is not None]
    if len(texts) == len(stored):
        values: list[Any] = _loads("[" + ",".join(texts) + "]")
        return values
    return [decode(text, blob, what=what, allow_pickle=allow_pickle) for text, blob in stored]


def encode_error(exc: BaseException) -> tuple[str, bytes | None]:
    """``("Type: message", pickle)`` for an exception; the pickle is None if it cannot round-trip."""
    text = f"{type(exc).__qualname__}: {exc}"
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = None
    return text, blob


def decode_error(text: str | None, blob: bytes | None, allow_pickle: bool) -> BaseException:
    """Rebuild a recorded exception (or a :class:`RecordedError` standing in for it)."""
    if blob is not None and allow_pickle:
        try:
            exc = pickle.loads(blob)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    type_name, _, message = (text or "Error: ").partition(": ")
    return RecordedError(type_name, message)
