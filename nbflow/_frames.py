"""History records as DataFrames: pyarrow Tables, pandas and polars DataFrames.

Imported by :class:`~nbflow._records.Records` only when a conversion is asked for; each library is
imported here, in the function that needs it, and a missing one raises
:class:`~nbflow.ConfigurationError` naming the extra to install. The columns are typed from the
record's fields, so an empty list still has them: times are timezone-aware UTC timestamps,
statuses strings, durations float seconds. Private fields (``_output``) are left out.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

from nbflow._errors import ConfigurationError

__all__ = ["require", "stream_frame", "to_arrow", "to_pandas", "to_polars"]

#: The extra that installs each library.
_EXTRAS = {"pandas": "pandas", "polars": "polars", "pyarrow": "pandas"}


def require(module: str) -> Any:
    """Import ``module``, or raise ConfigurationError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module, module)
        also = " (or nbflow[polars])" if module == "pyarrow" else ""
        raise ConfigurationError(
            f"This needs {module}, which is not installed ({exc}). Install it with: "
            f"pip install 'nbflow[{extra}]'{also}."
        ) from None


def _arrow_type(annotation: Any, pa: Any) -> Any:
    """The Arrow type of a field from its annotation (a string: ``from __future__``)."""
    text = str(annotation).replace(" | None", "")
    if text.endswith("datetime"):
        return pa.timestamp("us", tz="UTC")
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
    }.get(text, pa.string())


def _columns(kind: type | None, records: Sequence[Any]) -> list[dataclasses.Field[Any]]:
    if kind is None and records:
        kind = type(records[0])
    if kind is None:
        return []
    return [f for f in dataclasses.fields(kind) if not f.name.startswith("_")]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def to_arrow(records: Sequence[Any], kind: type | None = None) -> Any:
    """``records`` (of the dataclass ``kind``) as a pyarrow Table, a typed column per field."""
    pa = require("pyarrow")
    columns = _columns(kind, records)
    schema = pa.schema([(f.name, _arrow_type(f.type, pa)) for f in columns])
    data = {f.name: [_plain(getattr(r, f.name)) for r in records] for f in columns}
    return pa.Table.from_pydict(data, schema=schema)


def to_pandas(records: Sequence[Any], kind: type | None = None) -> Any:
    """``records`` as a pandas DataFrame (through Arrow: the same column types)."""
    require("pandas")
    return to_arrow(records, kind).to_pandas()


def to_polars(records: Sequence[Any], kind: type | None = None) -> Any:
    """``records`` as a polars DataFrame (through Arrow: the same column types)."""
    pl = require("polars")
    return pl.from_arrow(to_arrow(records, kind))


def stream_frame(items: Sequence[tuple[int, Any]]) -> Any:
    """A stream's items ``(offset, value)`` as a pandas DataFrame indexed by ``offset``: when
    every item is a dict, a column per key; otherwise one column, ``value``."""
    pd = require("pandas")
    offsets = pd.Index([offset for offset, _ in items], name="offset", dtype="int64")
    values = [value for _, value in items]
    if values and all(isinstance(v, dict) for v in values):
        return pd.DataFrame.from_records(values, index=offsets)
    return pd.DataFrame(
        {"value": pd.Series(values, index=offsets, dtype=None if values else object)}
    )
