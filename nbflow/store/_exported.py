"""The portable form of an exported workflow: a dict ``json.dumps`` takes, with a format version.

One workflow is::

    {"format": "nbflow.workflow", "version": 1,
     "workflow": {"workflow_id": …, "status": …, …},   # every column of the workflows table
     "steps": [{…}, …],                                # its steps (events are steps)
     "streams": [{…}, …],                              # its stream items and end markers
     "messages": [{…}, …]}                             # the messages waiting for it

Each row is a dict of its table's columns (:data:`~nbflow.store._schema.TABLES`), values as
stored: JSON text stays text, numbers are numbers, and bytes (the ``*_pickle`` columns: pickles
and Arrow containers) are base64 text. A later nbflow reads this version; a row of a version it
does not know, or with a column it does not know, is refused with a message saying so.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from nbflow._errors import InvalidValueError
from nbflow.store._ops import MessageRow, StepRow, StreamRow, WorkflowRow
from nbflow.store._schema import BLOB, TABLES
from nbflow.store._transfer import TransferRows

__all__ = ["FORMAT", "VERSION", "from_exported", "to_exported"]

FORMAT = "nbflow.workflow"
#: The version this nbflow writes, and the newest it reads.
VERSION = 1

R = TypeVar("R")
#: The lists of rows of a workflow: (key, table, row record, the column naming the workflow).
_PARTS: tuple[tuple[str, str, type[Any], str], ...] = (
    ("steps", "steps", StepRow, "workflow_id"),
    ("streams", "streams", StreamRow, "workflow_id"),
    ("messages", "messages", MessageRow, "destination_id"),
)


def _dump(table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (name, kind), value in zip(TABLES[table], row, strict=True):
        if kind == BLOB and value is not None:
            value = base64.b64encode(bytes(value)).decode("ascii")
        out[name] = value
    return out


def to_exported(rows: TransferRows) -> dict[str, Any]:
    """The portable form of one workflow's rows (its values' files already resolved)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "workflow": _dump("workflows", rows.workflow),
        **{key: [_dump(table, r) for r in getattr(rows, key)] for key, table, _, _ in _PARTS},
    }


def _bad(message: str, value: object = None) -> InvalidValueError:
    return InvalidValueError(
        f"{message} Pass import_workflow() what export_workflow() returned (a list of dicts, "
        "or that list after json.dumps and json.loads).",
        what="exported",
        value=value,
    )


def _load(table: str, record: Callable[..., R], data: object, where: str) -> R:
    if not isinstance(data, Mapping):
        raise _bad(f"{where} is not a dict of columns but {type(data).__name__}.")
    names = [name for name, _ in TABLES[table]]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise _bad(
            f"{where} has columns this nbflow does not know: {', '.join(map(repr, unknown))} "
            "(exported by a newer nbflow? Upgrade nbflow here)."
        )
    values = []
    for name, kind in TABLES[table]:
        value = data.get(name)
        if kind == BLOB and isinstance(value, str):
            try:
                value = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _bad(f"{where}: {name} is not base64 text.") from None
        values.append(value)
    return record(*values)


def from_exported(exported: object) -> TransferRows:
    """One workflow's rows from its portable form.

    Raises:
        InvalidValueError: Not the export of a workflow, or of a newer format version.
    """
    if not isinstance(exported, Mapping) or exported.get("format") != FORMAT:
        raise _bad(f"This is not an exported nbflow workflow (no 'format': {FORMAT!r}).")
    version = exported.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad(f"The export's format version is {version!r}, not a number from 1.")
    if version > VERSION:
        raise _bad(
            f"The export is of format version {version}, and this nbflow reads up to version "
            f"{VERSION}: upgrade nbflow here to import it."
        )
    workflow = _load("workflows", WorkflowRow, exported.get("workflow"), "The workflow")
    if not isinstance(workflow.workflow_id, str) or not workflow.workflow_id:
        raise _bad("The workflow has no workflow_id.")
    parts: list[list[Any]] = []
    for key, table, record, owner in _PARTS:
        items = exported.get(key, [])
        if not isinstance(items, list):
            raise _bad(f"The workflow's {key} are not a list.")
        where = f"A row of {key} of {workflow.workflow_id!r}"
        loaded = [_load(table, record, item, where) for item in items]
        if any(getattr(row, owner) != workflow.workflow_id for row in loaded):
            raise _bad(f"{where} names another workflow in its {owner}.")
        parts.append(loaded)
    steps, streams, messages = parts
    return TransferRows(workflow, steps, streams, messages)
