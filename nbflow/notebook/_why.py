"""Why a durable cell ran: the parts of its key in its records, and ``%nbflow why NAME``.

A cell's record keeps, beside its key, what the key hashes (:func:`to_record`): a digest of the
cell's normalized source, each input as ``[name, kind, digest, step]``
(:class:`~nbflow.notebook._analysis.KeyInput`), and whether ``--force`` made it run. When a cell
runs, :func:`reasons` compares those parts with the newest recorded run of its name, and the
cells object keeps the answer (:class:`Ran`), or that the cell was restored (:class:`Restored`).
:func:`explain` answers ``%nbflow why NAME``: from what this kernel saw, else from the records
(the newest run of the name against the one before it), else it asks ``nbflow.why`` about a
cached step. Records written before the parts were kept say only that the key changed.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

import nbflow
from nbflow.notebook._analysis import KeyInput, KeyParts
from nbflow.text._format import format_time

__all__ = ["Ran", "Recorded", "Restored", "explain", "from_record", "reasons", "to_record"]

_OLDER = "the cell's key changed (recorded by an older nbflow: no details)"
_NOT_RESTORED = (
    "its key matched the run recorded before it, which could not be restored "
    "(or its records could not be read)"
)


@dataclasses.dataclass(frozen=True)
class Ran:
    """A durable cell ran in this kernel.

    Attributes:
        reasons: Why, each a phrase (``"the source changed"``).
        at: When it started (seconds since the epoch).
    """

    reasons: tuple[str, ...]
    at: float


@dataclasses.dataclass(frozen=True)
class Restored:
    """A durable cell was restored in this kernel.

    Attributes:
        recorded: When the run it was restored from ended (seconds since the epoch).
    """

    recorded: float


class Recorded(NamedTuple):
    """The parts of a recorded run's key, and whether ``--force`` made it run."""

    parts: KeyParts
    forced: bool


def to_record(parts: KeyParts, forced: bool) -> dict[str, Any]:
    """The JSON a cell's record keeps under ``"parts"`` (see :func:`from_record`)."""
    inputs = [list(i) for i in parts.inputs]
    return {"source": parts.source_digest, "inputs": inputs, "forced": forced}


def from_record(record: Mapping[str, Any]) -> Recorded | None:
    """The parts a cell's record keeps; None for a record written by an older nbflow."""
    kept = record.get("parts")
    if not isinstance(kept, Mapping):
        return None
    try:
        inputs = tuple(KeyInput(*i) for i in kept["inputs"])
        parts = KeyParts(str(record["key"]), str(kept["source"]), inputs)
    except (KeyError, TypeError):
        return None
    return Recorded(parts, bool(kept.get("forced")))


def reasons(
    parts: KeyParts,
    forced: bool,
    previous: Mapping[str, Any] | None,
    *,
    pipeline: str,
    restored: Collection[str] = (),
) -> tuple[str, ...]:
    """Why a cell with these parts ran, against the recorded run before it.

    Args:
        parts: The parts of the key it ran with.
        forced: Whether ``--force`` made it run.
        previous: The record of the newest run of its name before it (None: there was none).
        pipeline: The notebook's record-keeping workflow (for the words).
        restored: The cells whose last run in this kernel was a restore.

    Returns:
        Each reason, a phrase.
    """
    found = ["it was forced (`--force`)"] if forced else []
    if previous is None:
        return (*found, f"it had never run before (no earlier run of it is recorded in {pipeline})")
    before = from_record(previous)
    if before is None:
        changed = [_OLDER] if previous.get("key") != parts.key else []
    elif before.parts.key == parts.key:
        changed = []
    else:
        changed = (
            ["the source changed"] if before.parts.source_digest != parts.source_digest else []
        )
        changed += _input_changes(before.parts.inputs, parts.inputs, restored)
        if not changed:
            changed = [
                "the cell's key changed, though its source and inputs did not "
                "(this nbflow computes keys differently from the one that recorded it)"
            ]
    return tuple(found + changed) or (_NOT_RESTORED,)


def _input_changes(
    before: tuple[KeyInput, ...], now: tuple[KeyInput, ...], restored: Collection[str]
) -> list[str]:
    """A phrase for each input that is new, gone or different."""
    old, new = {i.name: i for i in before}, {i.name: i for i in now}
    changes = []
    for var in sorted(old.keys() | new.keys()):
        was, is_ = old.get(var), new.get(var)
        if was is None:
            changes.append(f"input `{var}` is a new input")
        elif is_ is None:
            changes.append(f"`{var}` is no longer an input")
        elif (was.kind, was.digest) != (is_.kind, is_.digest):
            changes.append(_changed(var, was, is_, restored))
    return changes


def _changed(var: str, was: KeyInput, is_: KeyInput, restored: Collection[str]) -> str:
    """How an input changed (``"input `df` changed: it now comes from step `load` which re-ran"``)."""
    if is_.kind == "cell":
        if was.kind != "cell":
            return f"input `{var}` changed: it now comes from step `{is_.step}`, not a plain cell"
        if was.step != is_.step:
            return f"input `{var}` changed: it now comes from step `{is_.step}`, not `{was.step}`"
        did = "was restored from another of its runs" if is_.step in restored else "re-ran"
        return f"input `{var}` changed: it now comes from step `{is_.step}` which {did}"
    if was.kind == "cell":
        return f"input `{var}` changed: it now comes from a plain cell, not step `{was.step}`"
    if was.kind == is_.kind == "type":  # (a value counted by its type only)
        return f"input `{var}` changed type: it is now a `{is_.digest}`, not a `{was.digest}`"
    return f"input `{var}` changed value"


def explain(name: str, last: Mapping[str, Ran | Restored], pipeline: str) -> str:
    """What ``%nbflow why NAME`` says.

    Args:
        name: A durable cell's name, or a cached step's.
        last: What each durable cell did last in this kernel.
        pipeline: The notebook's record-keeping workflow.

    Raises:
        NbflowError: The database could not be opened (asked only when this kernel has neither
            run nor restored the cell).
    """
    event = last.get(name)
    if isinstance(event, Ran):
        head = f"step `{name}` ran in this kernel at {format_time(event.at)}"
        return _sentence(head, event.reasons)
    if isinstance(event, Restored):
        matched = f"its key matched the run recorded at {format_time(event.recorded)}"
        return f"step `{name}` was restored in this kernel ({matched}): nothing changed."
    rt = nbflow.runtime()
    found = rt.recorded_steps(pipeline, name, newest_first=True)
    runs = list(itertools.islice(((out, end) for _, _, out, _, end in found), 2))
    if not runs:
        return _not_a_cell(name, rt, last, pipeline)
    return _from_records(name, runs, pipeline)


def _from_records(name: str, runs: list[tuple[Any, float]], pipeline: str) -> str:
    """Why the newest recorded run of a cell ran (``runs``: it and the one before, if any)."""
    (record, ended), previous = runs[0], (runs[1][0] if len(runs) > 1 else None)
    head = f"step `{name}` has not run in this kernel; its last run, recorded at "
    head += f"{format_time(ended)},"
    recorded = from_record(record) if isinstance(record, Mapping) else None
    if recorded is None:
        return f"{head} was recorded by an older nbflow: no details of why it ran."
    previous = previous if isinstance(previous, Mapping) else None
    why = reasons(recorded.parts, recorded.forced, previous, pipeline=pipeline)
    return _sentence(f"{head} ran", why)


def _sentence(head: str, why: tuple[str, ...]) -> str:
    """``head because <reason>.``, or the reasons as a list when there are several."""
    if len(why) == 1:
        return f"{head} because {why[0]}."
    return "\n".join([f"{head} because:", *(f"  - {reason}" for reason in why)])


def _not_a_cell(
    name: str, rt: nbflow.Runtime, last: Mapping[str, Ran | Restored], pipeline: str
) -> str:
    """What ``nbflow.why(name)`` says of a cached step; else that ``name`` is neither."""
    why = getattr(nbflow, "why", None)
    if why is not None:
        try:
            return str(why(name))
        except nbflow.NbflowError:
            pass
    try:
        recorded = {step.name for step in rt.list_steps(pipeline)}
    except nbflow.NbflowError:  # no durable cell is recorded yet
        recorded = set()
    known = ", ".join(f"`{cell}`" for cell in sorted(recorded | last.keys())) or "none yet"
    return (
        f"`{name}` is neither a durable cell of this notebook nor a cached step "
        f"(the durable cells of {pipeline}: {known})."
    )
