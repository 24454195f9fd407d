"""``%nbflow prune``: remove old workflows, or the durable-cell records no current cell reaches.

Durable cells keep one record per run, as a step of the notebook's record-keeping workflow
(``notebook:<name>``, :func:`~nbflow.notebook._cells.pipeline_id`); a cell is restored from the
newest record whose key (its source and what it reads) is the cell's key now. Editing a cell
leaves the records of its older versions behind. ``%nbflow prune --cells`` removes them:

- for each cell that ran or was restored in this kernel (``%%nbflow step NAME``), the newest
  record with the key it had then is kept: the one a "Run All" after a restart restores. Every
  other record of that name goes: older versions, and older runs of the same version (``--force``);
- the records of a name no cell ran in this kernel are all kept: nbflow cannot tell a cell not
  yet run from one deleted, nor know its key. Run the notebook (Run All) first to prune them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import nbflow
from nbflow.notebook._cells import DurableCells, pipeline_id
from nbflow.text._format import format_time, status_word

__all__ = ["CellsPruned", "prune_cells", "prune_workflows", "superseded"]


@dataclasses.dataclass(frozen=True)
class CellsPruned:
    """What ``%nbflow prune --cells`` removed (or, with ``--dry-run``, would remove).

    Attributes:
        removed: The function ids of the records removed.
        cells: The names of the cells whose records were removed.
        kept: How many records are kept.
        unseen: The names no cell ran in this kernel (their records are kept).
    """

    removed: list[int]
    cells: list[str]
    kept: int
    unseen: list[str]


def superseded(
    records: Iterable[tuple[int, str, Any]], keys: Mapping[str, str]
) -> tuple[list[int], list[str]]:
    """The records no current cell reaches, and the names of cells not run here.

    Args:
        records: ``(function_id, name, record)`` of every durable-cell record.
        keys: Each cell name's current key (its key when it last ran or was restored here).

    Returns:
        The function ids to remove (see the module docstring), and the unseen names, sorted.
    """
    current: dict[str, int] = {}  # name -> the newest record with its current key
    by_name: dict[str, list[int]] = {}
    for function_id, name, record in records:
        by_name.setdefault(name, []).append(function_id)
        key = record.get("key") if isinstance(record, dict) else None
        if name in keys and key == keys[name]:
            current[name] = max(function_id, current.get(name, function_id))
    removed = [
        function_id
        for name, ids in by_name.items()
        if name in keys
        for function_id in ids
        if function_id != current.get(name)
    ]
    return sorted(removed), sorted(set(by_name) - set(keys))


def prune_cells(rt: nbflow.Runtime, cells: DurableCells, *, dry_run: bool = False) -> CellsPruned:
    """Remove the durable-cell records no current cell reaches (see the module docstring)."""
    pipeline = pipeline_id()
    records = [(fid, name, record) for fid, name, record, _, _ in rt.recorded_steps(pipeline)]
    removed, unseen = superseded(records, cells.keys)
    names = {fid: name for fid, name, _ in records}
    if removed and not dry_run:
        rt.delete_recorded(pipeline, removed)
    cells_hit = sorted({names[fid] for fid in removed})
    return CellsPruned(removed, cells_hit, len(records) - len(removed), unseen)


def format_cells_pruned(result: CellsPruned, *, dry_run: bool = False) -> str:
    """What :func:`prune_cells` did, in a few lines."""
    verb = "would remove" if dry_run else "removed"
    n = len(result.removed)
    lines = [f"{verb} {n} durable-cell record{'s' if n != 1 else ''} of {pipeline_id()}"]
    if result.cells:
        lines[0] += f" (older versions of {', '.join(repr(c) for c in result.cells)})"
    lines.append(f"kept {result.kept} (the current version of each cell run in this kernel)")
    if result.unseen:
        names = ", ".join(repr(n) for n in result.unseen)
        lines.append(
            f"kept every record of {names}: no cell of that name ran in this kernel (run the "
            "notebook first, e.g. Run All, to prune them too)"
        )
    return "\n".join(lines)


def prune_workflows(
    rt: nbflow.Runtime, older_than: float, status: list[str] | None, *, dry_run: bool
) -> str:
    """Prune finished workflows (:meth:`nbflow.Runtime.prune`); what was done, in a line."""
    import time

    count = rt.prune(older_than=older_than, status=status, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    which = f" ({', '.join(status_word(s) for s in status)})" if status else ""
    before = format_time(time.time() - older_than)
    plural = "workflow" if count == 1 else "workflows"
    tail = "" if dry_run or not count else "; the file shrinks when the runtime closes"
    return f"{verb} {count} finished {plural}{which} created before {before}{tail}"
