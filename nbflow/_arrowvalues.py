"""DataFrames, Arrow tables and numpy arrays stored as Arrow IPC, not pickled.

A *frame* is a value of one of these exact types: ``pandas.DataFrame``, ``pandas.Series``,
``polars.DataFrame``, ``pyarrow.Table``, ``pyarrow.RecordBatch`` and ``numpy.ndarray`` (of a
fixed-size dtype: numbers, bool, datetimes, timedeltas, bytes; an object-dtype array is pickled).
A frame is found by its type's module name, without importing anything, so a value holding none
imports neither pandas, polars, pyarrow nor numpy.

A value that is a frame, or holds frames in ``dict``/``list``/``tuple`` nesting (a step's
``(frame, stats)``, a workflow's arguments ``{"args": [...], "kwargs": {...}}``), is stored as one
*container* blob, kept in the same ``*_pickle`` BLOB columns as pickles::

    MAGIC (8 bytes: b"\\x00nbfval1", never the start of a pickle, which starts with b"\\x80")
    header length (4 bytes, little-endian unsigned)
    header (UTF-8 JSON): {"parts": [{"kind": ..., "size": ...}, ...], "tree": ..., "pickle": ...}
    the parts, one after the other (each ``size`` bytes)

Each frame is one part: an Arrow IPC stream with zstd-compressed buffers (uncompressed past
:data:`UNCOMPRESSED_ABOVE` bytes: compression caps a restore far below memory speed). ``kind`` says how it
comes back (``pandas``, ``pandas.Series``, ``polars``, ``arrow``, ``arrow.RecordBatch``,
``numpy``, ``numpy.raw``; a numpy part also has ``dtype`` and ``shape``). The rest of the value is
either ``tree``, JSON in which ``{"$nbflow": "part", "i": 0}`` stands for part 0,
``{"$nbflow": "tuple", "items": [...]}`` for a tuple and ``{"$nbflow": "dict", "items": {...}}``
for a dict that has a key ``"$nbflow"`` itself; or, when the value holds something JSON cannot
say (a datetime, a dataclass), ``"pickle": i``: part ``i`` (kind ``pickle``) is a pickle whose
persistent ids are the indexes of the frame parts. A tree needs no pickle, so
``allow_pickle=False`` reads and writes it; a pickled skeleton needs ``allow_pickle=True``.
Frames inside other objects (a dataclass holding a frame) are pickled with them, except in
:func:`dumps` (durable cells), which stores every frame it meets as a part.

A pandas frame keeps its dtypes and index through pyarrow's pandas metadata (time zones,
categoricals, nullable ``Int64``/``boolean``/``string``, named and non-range indexes). A pandas
frame pyarrow cannot bring back as it was (column names of mixed types, an object column holding
other than text or bytes, a dtype that would come back another, such as a nullable index level:
checked on the schema's empty table) is pickled instead.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import warnings
from typing import Any

from nbflow._errors import ConfigurationError, SerializationError

__all__ = ["MAGIC", "dumps", "encode", "has_frames", "is_container", "loads"]

MAGIC = b"\x00nbfval1"
_HEAD = struct.Struct("<I")
_TAG = "$nbflow"
#: A frame's type: (top module, class name) -> its part kind.
_KINDS = {
    ("pandas", "DataFrame"): "pandas",
    ("pandas", "Series"): "pandas.Series",
    ("polars", "DataFrame"): "polars",
    ("pyarrow", "Table"): "arrow",
    ("pyarrow", "RecordBatch"): "arrow.RecordBatch",
    ("numpy", "ndarray"): "numpy",
}
_MODULES = ("pandas", "polars", "pyarrow", "numpy")
_SIMPLE = (str, int, float, bool, type(None))
#: Object columns pyarrow brings back as they were (by the pandas metadata's ``pandas_type``).
_OBJECT_OK = frozenset({"unicode", "bytes", "empty"})
#: numpy datetime/timedelta units that Arrow's timestamp and duration types hold.
_UNITS = frozenset({"s", "ms", "us", "ns"})
#: A frame of more Arrow bytes than this is written uncompressed (measured, benchmarks/values.py:
#: on 2 cores zstd restores at 0.2-0.3 GB/s, lz4 0.4, uncompressed 2-4 GB/s). Such a value
#: goes to a file on DuckDB (over 8 MB), read memory-mapped: its restore is a copy.
UNCOMPRESSED_ABOVE = 8 << 20
_OPTIONS: Any = None  # pyarrow.ipc.IpcWriteOptions (zstd), made at the first frame
_PLAIN: Any = None  # (no compression)


def _kind(value: Any) -> str | None:
    """The part kind of a frame, or None (no import: by the type's module and name)."""
    kind = type(value)
    module = kind.__module__
    if not module.startswith(_MODULES):
        return None
    top = module.partition(".")[0]
    found = _KINDS.get((top, kind.__name__))
    # The public class itself (its module is imported: the value exists), not a subclass.
    if found is None or getattr(sys.modules.get(top), kind.__name__, None) is not kind:
        return None
    return found


def has_frames(value: Any) -> bool:
    """Whether ``value`` is a frame or holds one in dict/list/tuple nesting."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SIMPLE:
            continue
        if kind is dict or kind is list or kind is tuple:
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item.values() if kind is dict else item)
        elif _kind(item) is not None:
            return True
    return False


def is_container(blob: Any) -> bool:
    """Whether a stored blob (bytes or any buffer) is a container of this module."""
    return bytes(memoryview(blob)[: len(MAGIC)]) == MAGIC


class _Foreign(Exception):
    """A value the JSON tree cannot hold."""


class _Parts:
    """The parts of a container being written."""

    def __init__(self) -> None:
        self.heads: list[dict[str, Any]] = []
        self.data: list[Any] = []
        self._index: dict[int, int | None] = {}  # id of a frame (alive while written) -> part

    def add(self, value: Any, kind: str) -> int | None:
        """Encode a frame as the next part; its index, or None if it cannot be one. A frame
        met again is the same part (and comes back as one object)."""
        if id(value) in self._index:
            return self._index[id(value)]
        made = _to_arrow(value, kind)
        self._index[id(value)] = None if made is None else len(self.heads)
        if made is None:
            return None
        head, payload = made
        head.setdefault("kind", kind)
        head["size"] = len(payload)
        self.heads.append(head)
        self.data.append(payload)
        return len(self.heads) - 1

    def blob(self, root: dict[str, Any]) -> bytes:
        header = json.dumps({"parts": self.heads, **root}, separators=(",", ":")).encode()
        out = io.BytesIO()
        out.write(MAGIC + _HEAD.pack(len(header)) + header)
        for payload in self.data:
            out.write(payload)
        return out.getvalue()


def encode(value: Any, *, what: str, allow_pickle: bool) -> bytes | None:
    """A container for ``value`` (call it only if :func:`has_frames`); None if none of its
    frames can be one (then it is pickled as a whole).

    Raises:
        SerializationError: Under ``allow_pickle=False``, the value holds what JSON cannot say.
    """
    parts = _Parts()
    try:
        tree = _tree(value, parts)
    except (_Foreign, RecursionError) as exc:
        if not allow_pickle:
            held = str(exc) if isinstance(exc, _Foreign) else "nesting too deep"
            raise SerializationError(
                f"Cannot store {what}: it holds {held}, and this runtime was opened with "
                "allow_pickle=False, which stores DataFrames, arrays and JSON-native values "
                "(dict, list, tuple, str, int, float, bool, None) only. Convert the value. "
                "Nothing was written.",
                what=what,
                type_name=f"{type(value).__module__}.{type(value).__qualname__}",
            ) from None
        return dumps(value)
    if not parts.heads:
        return None
    return parts.blob({"tree": tree})


def _tree(value: Any, parts: _Parts) -> Any:
    """The JSON tree of ``value``, its frames added to ``parts``."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if value - value != 0.0:
            raise _Foreign("a float that is not finite")
        return value
    if kind is list:
        return [_tree(v, parts) for v in value]
    if kind is tuple:
        return {_TAG: "tuple", "items": [_tree(v, parts) for v in value]}
    if kind is dict:
        items = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _Foreign(f"a dict key of type {type(k).__qualname__}")
            items[k] = _tree(v, parts)
        return {_TAG: "dict", "items": items} if _TAG in items else items
    frame = _kind(value)
    index = None if frame is None else parts.add(value, frame)
    if index is None:
        name = f"{kind.__module__}.{kind.__qualname__}"
        if frame is not None:
            name += (
                " that Arrow cannot keep as it is (an object column holding other than text, "
                "column names of mixed types, or a dtype Arrow brings back as another)"
            )
        raise _Foreign(f"a {name}")
    return {_TAG: "part", "i": index}


def dumps(value: Any) -> bytes:
    """Pickle ``value``, every frame it holds (at any depth) stored as an Arrow part: a
    container, or a plain pickle when it holds no frame."""
    parts = _Parts()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> int | None:
            kind = _kind(obj)
            return None if kind is None else parts.add(obj, kind)

    out = io.BytesIO()
    Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    if not parts.heads:
        return out.getvalue()
    index = len(parts.heads)
    parts.heads.append({"kind": "pickle", "size": out.tell()})
    parts.data.append(out.getbuffer())
    return parts.blob({"pickle": index})


def loads(blob: Any, *, allow_pickle: bool = True, what: str = "a value") -> Any:
    """The value of a container or plain pickle (bytes or any buffer, e.g. a memory map).

    Raises:
        SerializationError: A pickle (or pickled skeleton) under ``allow_pickle=False``.
        ConfigurationError: pyarrow (or pandas, polars, numpy) is not installed.
    """
    if not is_container(blob):
        if not allow_pickle:
            raise _refused(what)
        return pickle.loads(blob)
    view = memoryview(blob)
    start = len(MAGIC) + _HEAD.size
    (size,) = _HEAD.unpack(view[len(MAGIC) : start])
    header = json.loads(bytes(view[start : start + size]))
    offsets, at = [], start + size
    for head in header["parts"]:
        offsets.append(at)
        at += head["size"]
    heads = header["parts"]
    decoded: dict[int, Any] = {}

    def part(i: int) -> Any:
        if i not in decoded:
            payload = view[offsets[i] : offsets[i] + heads[i]["size"]]
            decoded[i] = _from_arrow(payload, heads[i], what)
        return decoded[i]

    if "tree" in header:
        return _untree(header["tree"], part)
    if not allow_pickle:
        raise _refused(what)
    i = header["pickle"]

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return part(int(pid))

    return Unpickler(io.BytesIO(view[offsets[i] : offsets[i] + heads[i]["size"]])).load()


def _refused(what: str) -> SerializationError:
    return SerializationError(
        f"The stored value of {what} was pickled, and this runtime was opened with "
        "allow_pickle=False (unpickling runs code from the file). Open the file with "
        "allow_pickle=True if you trust it.",
        what=what,
    )


def _untree(node: Any, part: Any) -> Any:
    kind = type(node)
    if kind is list:
        return [_untree(v, part) for v in node]
    if kind is not dict:
        return node
    tag = node.get(_TAG)
    if tag == "part":
        return part(node["i"])
    if tag == "tuple":
        return tuple(_untree(v, part) for v in node["items"])
    items = node["items"] if tag == "dict" else node
    return {k: _untree(v, part) for k, v in items.items()}


# -- Arrow ---------------------------------------------------------------------------------------


def _to_arrow(value: Any, kind: str) -> tuple[dict[str, Any], Any] | None:
    """``(part header, IPC stream bytes)`` of a frame, or None if Arrow cannot keep it as it is."""
    import pyarrow as pa

    head: dict[str, Any] = {}
    if kind == "pandas" or kind == "pandas.Series":
        if kind == "pandas.Series":
            head["unnamed"] = value.name is None
            value = value.to_frame()
        freq = getattr(value.index, "freqstr", None)  # (Arrow keeps no index frequency)
        if freq is not None:
            head["freq"] = freq
        table = _from_pandas(pa, value)
    elif kind == "polars":
        try:
            table = value.to_arrow()
        except Exception:  # an Object column
            return None
    elif kind == "numpy":
        made = _from_numpy(pa, value, head)
        if made is None:
            return None
        kind, table = made
        head["kind"] = kind
    else:
        table = value
    if table is None:
        return None
    return head, _write(pa, table, kind == "arrow.RecordBatch")


def _from_pandas(pa: Any, frame: Any) -> Any:
    """The Arrow table of a pandas frame, or None if it would not come back as it is."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "... will not roundtrip correctly"
            table = pa.Table.from_pandas(frame, preserve_index=True)
    except Exception:
        return None
    for column in table.schema.pandas_metadata["columns"]:
        if column["numpy_type"] == "object" and column["pandas_type"] not in _OBJECT_OK:
            return None
    # The dtypes pyarrow would bring back (an Int64 index level comes back int64, say).
    back = table.schema.empty_table().to_pandas()
    if _dtypes(back) != _dtypes(frame):
        return None
    return table


def _dtypes(frame: Any) -> list[str]:
    """The names of a pandas frame's column and index dtypes."""
    index = frame.index
    levels = list(index.dtypes) if getattr(index, "nlevels", 1) > 1 else [index.dtype]
    return [str(dtype) for dtype in [*frame.dtypes, *levels]]


def _from_numpy(pa: Any, array: Any, head: dict[str, Any]) -> tuple[str, Any] | None:
    """``(kind, table)`` of an array: a typed column, or its raw bytes (``numpy.raw``)."""
    dtype = array.dtype
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
        return None
    head["dtype"], head["shape"] = dtype.str, list(array.shape)
    flat = array.reshape(-1)  # (a copy only when not contiguous)
    if dtype.isnative and (dtype.kind in "iufb" or (dtype.kind in "mM" and _unit(dtype) in _UNITS)):
        return "numpy", pa.table({"values": pa.array(flat)})
    raw = pa.py_buffer(flat.tobytes() if not flat.flags.c_contiguous else flat.view("u1"))
    return "numpy.raw", pa.table(
        {"bytes": pa.Array.from_buffers(pa.uint8(), raw.size, [None, raw])}
    )


def _unit(dtype: Any) -> str:
    return str(dtype.str).split("[")[-1].rstrip("]")


def _write(pa: Any, table: Any, batch: bool) -> Any:
    """The IPC stream of a table: zstd up to :data:`UNCOMPRESSED_ABOVE` bytes, plain past it."""
    import pyarrow.ipc as ipc

    global _OPTIONS, _PLAIN
    if _OPTIONS is None:
        _OPTIONS = ipc.IpcWriteOptions(compression="zstd")
        _PLAIN = ipc.IpcWriteOptions()
    options = _PLAIN if table.nbytes > UNCOMPRESSED_ABOVE else _OPTIONS
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        if batch:
            writer.write_batch(table)
        else:
            writer.write_table(table)
    return sink.getvalue()


def _need(module: str, extra: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigurationError(
            f"The stored value of {what} is a DataFrame or array kept as Arrow data, and reading "
            f"it needs {module}, which is not installed. Install it: pip install 'nbflow[{extra}]'."
        ) from None


def _from_arrow(payload: Any, head: dict[str, Any], what: str) -> Any:
    """A frame back from its part."""
    kind = head["kind"]
    extra = "polars" if kind == "polars" else "pandas"
    pa = _need("pyarrow", extra, what)
    import pyarrow.ipc as ipc

    reader = ipc.open_stream(pa.py_buffer(payload))
    if kind == "arrow.RecordBatch":
        return reader.read_next_batch()
    table = reader.read_all()
    if kind == "arrow":
        return table
    if kind == "pandas" or kind == "pandas.Series":
        _need("pandas", "pandas", what)
        frame = table.to_pandas()
        if "freq" in head:
            frame.index = type(frame.index)(frame.index, freq=head["freq"])
        if kind == "pandas":
            return frame
        series = frame.iloc[:, 0]
        if head.get("unnamed"):
            series.name = None
        return series
    if kind == "polars":
        return _need("polars", "polars", what).from_arrow(table)
    np = _need("numpy", "pandas", what)
    dtype = np.dtype(head["dtype"])
    column = table.column(0).combine_chunks()
    if kind == "numpy.raw":
        raw = np.frombuffer(column.buffers()[1], dtype=np.uint8, count=len(column))
        flat = raw.view(dtype).copy()  # (writable, as an unpickled array is)
    else:
        flat = column.to_numpy(zero_copy_only=False, writable=True)
        if flat.dtype != dtype:
            flat = flat.astype(dtype)
    return flat.reshape(head["shape"])
