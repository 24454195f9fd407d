"""How values are stored: JSON when they are JSON-native, Arrow for frames, pickle otherwise.

A value is JSON-native when it round-trips through JSON unchanged: ``dict`` with ``str`` keys,
``list``, ``str``, ``int``, finite ``float``, ``bool`` and ``None``, nested. Those are stored as JSON
text, so SQL can query them. A DataFrame, Arrow table or numpy array, alone or nested in dicts,
lists and tuples, is stored as Arrow IPC in a container blob (:mod:`nbflow._arrowvalues`), which
``allow_pickle=False`` reads and writes. Anything else (tuples, sets, dataclasses…) is pickled.
A container starts with bytes no pickle starts with, so both share the ``*_pickle`` columns.

JSON is written and read with orjson (several times faster than ``json``: measured in
``benchmarks/floors.py``'s terms, a small dict encodes in 0.2 µs against 2 µs), and with ``json``
where orjson would refuse or change a value: an int beyond 64 bits (orjson refuses to write it,
and reads it as a float: a text with a run of 19 digits is read by ``json``), a lone surrogate,
nesting past orjson's limit, a cycle. Both write the same JSON (floats may be spelled
differently, ``1e-7`` for ``1e-07``: the same number), which DuckDB's and PostgreSQL's JSON
functions read.
"""

from __future__ import annotations

import json
import math
import pickle
import threading
from typing import Any

import orjson

from nbflow import _arrowvalues
from nbflow._errors import (
    ConfigurationError,
    InvalidValueError,
    RecordedError,
    SerializationError,
)
from nbflow._tracebacks import keeping_frames, restore_frames

__all__ = [
    "MAX_NAME_BYTES",
    "Encoded",
    "check_text",
    "decode",
    "decode_error",
    "decode_array",
    "decode_many",
    "decode_texts",
    "encode",
    "encode_error",
    "is_json_native",
    "plain_json",
    "storable_text",
]

#: A stored value: JSON text, or pickle (or Arrow container) bytes; exactly one is not None.
Encoded = tuple["str | None", "bytes | None"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_dumps_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_fast_dumps = orjson.dumps
_fast_loads = orjson.loads
_FAST_REFUSED = orjson.JSONDecodeError
#: Each digit's byte as ``0``, any other byte as NUL: a number orjson would not read exactly
#: (an int past 64 bits becomes a float) is a run of 19 ``0`` after it. ``json`` reads a text
#: that holds one (in a string too: it only costs speed). (A regular expression scanning for
#: ``\d{19}`` took 15 ms over a page of 10,000 items; this takes 1.4 ms.)
_DIGITS_ONLY = bytes(48) + b"0" * 10 + bytes(198)
_LONG_RUN = b"0" * 19


def _loads(text: str) -> Any:
    """``json.loads(text)``, by orjson where it reads the value exactly."""
    if _LONG_RUN not in text.encode("utf-8", "surrogatepass").translate(_DIGITS_ONLY):
        try:
            return _fast_loads(text)
        except _FAST_REFUSED:  # (too deep for orjson, a lone surrogate, 1e400: json decides)
            pass
    return json.loads(text)


#: The longest name nbflow stores, in UTF-8 bytes. PostgreSQL's NOTIFY payload, which carries a
#: workflow id or queue name after a one-letter prefix, must stay under 8,000 bytes: 1,000 is
#: well under it, and under any index's limit, the same on both stores.
MAX_NAME_BYTES = 1000


def check_text(value: Any, what: str) -> str:
    """Return ``value`` if nbflow can store it as a name; raise InvalidValueError otherwise.

    A name (workflow id, stream key, event key, topic, queue or workflow name) is a non-empty
    ``str`` of valid Unicode (no lone surrogates), without NUL, of at most :data:`MAX_NAME_BYTES`
    UTF-8 bytes: the same rules on DuckDB and PostgreSQL (whose text cannot hold NUL).

    Args:
        value: The name.
        what: Its role, starting a sentence, e.g. ``"A stream key"``.
    """
    if type(value) is str and value and len(value) <= MAX_NAME_BYTES // 4 and "\x00" not in value:
        # Common case: short enough that even 4 bytes a character fit; only a surrogate can fail.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return value
    problem = _name_problem(value, what)
    if not problem:  # a long name that fits
        text: str = value
        return text
    raise InvalidValueError(problem, what=what, value=value)


def _name_problem(value: Any, what: str) -> str:
    """The message for a name that breaks a rule (an empty message if it breaks none)."""
    shown = _shorten(value)
    if not isinstance(value, str):
        return (
            f"{what} must be a str, not {type(value).__qualname__} ({shown}). Use a non-empty "
            f"str, e.g. str(value)."
        )
    if not value:
        return f"{what} must not be empty (got ''). Use a non-empty str."
    if "\x00" in value:
        return (
            f"{what} must not contain a NUL character ('\\x00'): {shown}. PostgreSQL cannot "
            "store NUL in text, so nbflow refuses it on every store. Use a name without it, e.g. "
            "name.replace('\\x00', '')."
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return (
            f"{what} must be valid Unicode text, but it holds a lone surrogate "
            f"({value[exc.start]!r} at index {exc.start}): {shown}. Use text that encodes to "
            "UTF-8, e.g. name.encode('utf-8', 'replace').decode()."
        )
    if size > MAX_NAME_BYTES:
        return (
            f"{what} must be at most {MAX_NAME_BYTES:,} UTF-8 bytes, not {size:,} bytes: {shown}. "
            "Use a shorter name, e.g. a hash of it (hashlib.sha256(name.encode()).hexdigest())."
        )
    return ""


def _shorten(value: Any, limit: int = 80) -> str:
    """``repr(value)``, its middle cut out past ``limit`` characters (with the length said)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__} object>"
    if len(text) <= limit:
        return text
    size = f", {len(value):,} characters" if isinstance(value, str) else ""
    return f"{text[: limit - 20]}…{text[-12:]} (shortened{size})"


def is_json_native(value: Any) -> bool:
    """Tell whether ``value`` round-trips through JSON unchanged: it is made of JSON types only
    (see the module docstring), without a cycle. (One nested deeper than the recursion limit lets
    ``json`` go is JSON-native too, but :func:`encode` pickles it, or refuses it.)"""
    native = _json_types(value)
    if native is _SHARED:  # a container held twice, or a cycle: json's own check tells them apart
        try:
            _dumps(value)
        except (ValueError, RecursionError):  # "Circular reference detected", or too deep to tell
            return False
    return native is not False


_SHARED = object()  # _json_types: JSON types only, but some container was met more than once


def _json_types(value: Any) -> bool | object:
    """True if ``value`` is made of JSON types only and no container is met twice, False if
    something is not JSON-native, :data:`_SHARED` if all is but a container is met twice.

    Walks the value with an explicit stack (no recursion: any depth), each container once.
    """
    kind = type(value)
    if kind is dict:
        # The common case, a flat dict of scalars, is decided in this one loop.
        nested: list[Any] | None = None
        for k, v in value.items():
            if type(k) is not str:
                return False
            t = type(v)
            if t is str or t is int or t is bool or v is None:
                continue
            if t is float:
                if v - v != 0.0:  # inf or nan (faster than math.isfinite here)
                    return False
            elif t is dict or t is list:
                if nested is None:
                    nested = [v]
                else:
                    nested.append(v)
            else:
                return False
        if nested is None:
            return True
        return _walk(nested, {id(value)})
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return _walk([value], set())
    return False


def _walk(stack: list[Any], seen: set[int]) -> bool | object:
    """:func:`_json_types` for the containers on ``stack`` and all they hold; ``seen``: the ids
    of the containers walked already."""
    shared = False
    push = stack.append
    while stack:
        container = stack.pop()
        key = id(container)
        if key in seen:
            shared = True
            continue
        seen.add(key)
        if type(container) is dict:
            for k in container:
                if type(k) is not str:
                    return False
            items = container.values()
        else:
            items = container
        for v in items:
            t = type(v)
            if t is str or t is int or t is bool or v is None:
                continue
            if t is float:
                if v - v != 0.0:
                    return False
            elif t is dict or t is list:
                push(v)
            else:
                return False
    return _SHARED if shared else True


def plain_json(value: Any) -> str | None:
    """The JSON text :func:`encode` gives a value made of JSON types only, met once each (the
    common case, for the hot path: no ``what`` built); None for any other value, which
    :func:`encode` then decides."""
    if _json_types(value) is True:
        try:
            return _fast_dumps(value).decode()  # type: ignore[no-any-return]
        except TypeError:  # an int past 64 bits, a lone surrogate, too deep: encode() decides
            return None
    return None


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
    if _json_types(value) is not False:
        try:  # (a TypeError: an int past 64 bits, a lone surrogate, a cycle, too deep)
            return _fast_dumps(value).decode(), None
        except TypeError:
            pass
        try:
            text = _dumps(value)
        except (ValueError, RecursionError):  # a cycle, or deeper than json can go: pickle it
            pass
        else:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: escape it, still valid JSON
                text = _dumps_ascii(value)
            # A NUL in a str is escaped by json (\u0000, as every control character), so the
            # text holds none: PostgreSQL's text type, which cannot hold NUL, stores it.
            return text, None
    if _arrowvalues.has_frames(value):
        blob = _arrowvalues.encode(value, what=what, allow_pickle=allow_pickle)
        if blob is not None:
            return None, blob
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


def _load(text: str) -> Any:
    """``json.loads(text)``; a value nested so deep that this thread's stack is too deep to load
    it (it was stored from a shallower one) is loaded in a new thread, whose stack is empty."""
    try:
        return _loads(text)
    except RecursionError:
        pass
    outcome: list[tuple[bool, Any]] = []

    def load() -> None:
        try:
            outcome.append((True, _loads(text)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=load, name="nbflow-json-load", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def decode(text: str | None, blob: Any, *, what: str, allow_pickle: bool = True) -> Any:
    """Decode a stored value (the inverse of :func:`encode`); ``blob`` is bytes or any buffer.

    Raises:
        SerializationError: The value was pickled and pickle is not allowed, or it cannot be
            unpickled here (e.g. its class is not importable in this process).
        ConfigurationError: It holds Arrow data and pyarrow (or pandas, polars) is missing.
    """
    if text is not None:
        return _load(text)
    if blob is None:
        return None
    if _arrowvalues.is_container(blob):
        try:
            return _arrowvalues.loads(blob, allow_pickle=allow_pickle, what=what)
        except (SerializationError, ConfigurationError):
            raise
        except Exception as exc:
            raise SerializationError(
                f"Cannot load the stored value of {what}: its Arrow data could not be read "
                f"({type(exc).__name__}: {exc}). Import or define its classes in this process "
                "first; if the file was damaged, the value is lost.",
                what=what,
            ) from exc
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
    texts = [text for text, _ in stored]
    if None not in texts:
        return decode_texts(texts)  # type: ignore[arg-type]
    return [decode(text, blob, what=what, allow_pickle=allow_pickle) for text, blob in stored]


def decode_texts(texts: list[str]) -> list[Any]:
    """Decode stored JSON texts at once, in a single parse of one array."""
    values = decode_array("[" + ",".join(texts) + "]")
    return [_load(text) for text in texts] if values is None else values


def decode_array(text: str) -> list[Any] | None:
    """The values of a JSON array of stored JSON values, read exactly as :func:`decode` reads
    each; None when one is nested too deep to read it inside an array here (read each alone)."""
    try:
        values: list[Any] = _loads(text)
    except RecursionError:
        return None
    return values


def storable_text(text: str) -> str:
    """``text`` as both stores can keep it: NUL written as Python would (``\\x00``: PostgreSQL
    text cannot hold it), and a lone surrogate as ``\\ud800`` (UTF-8 cannot)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def encode_error(exc: BaseException) -> tuple[str, bytes | None]:
    """``("Type: message", pickle)`` for an exception; the pickle is None if it cannot round-trip.
    The pickle keeps the frames of the code the exception came through
    (:mod:`nbflow._tracebacks`)."""
    text = storable_text(f"{type(exc).__qualname__}: {exc}")
    try:
        with keeping_frames(exc):
            blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = None
    return text, blob


def decode_error(text: str | None, blob: bytes | None, allow_pickle: bool) -> BaseException:
    """Rebuild a recorded exception (or a :class:`RecordedError` standing in for it), with a
    traceback of the frames it was recorded with."""
    if blob is not None and allow_pickle:
        try:
            exc = pickle.loads(blob)
            if isinstance(exc, BaseException):
                return restore_frames(exc)
        except Exception:
            pass
    type_name, _, message = (text or "Error: ").partition(": ")
    return RecordedError(type_name, message)
