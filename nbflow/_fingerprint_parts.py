"""The parts a code fingerprint covers, and sentences saying which of them changed.

A part of :mod:`nbflow._fingerprint` (which re-exports these names). A fingerprint is a hash over
its parts, so two fingerprints are equal exactly when their parts are; the parts, stored as JSON
beside a fingerprint, say *why* a later one differs (:func:`describe_changes`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from nbflow._errors import InvalidValueError

__all__ = ["CodeParts", "Part", "describe_changes", "digest_of"]

#: Hashed with the parts: a change to what parts mean changes every fingerprint.
_FORMAT = 1
_LEVELS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_HEADS = ("code", "class")
_SLOTS = ("global", "closure", "default")


class Part(NamedTuple):
    """One thing a fingerprint covers."""

    path: tuple[str, ...]
    """Qualified names from the function fingerprinted down to the function holding this part:
    ``("__main__.parse",)`` for parse's own code, ``("__main__.parse", "__main__.clean",
    "__main__.strip_tags")`` for a helper two levels down."""
    kind: str
    """``"code"``, ``"global"``, ``"closure"``, ``"default"``, ``"package"`` or ``"class"``."""
    name: str
    """The function's (class's) qualified name for code (class); the variable or argument name
    for global, closure, default; ``"pkg==1.2"`` for package."""
    digest: str
    """Short hex digest of what it holds."""


class CodeParts(NamedTuple):
    """A fingerprint and the parts it is the hash of."""

    digest: str
    """Equal to :func:`nbflow._fingerprint.fingerprint` of the same function."""
    parts: tuple[Part, ...]
    """Sorted, deterministic."""

    def to_json(self) -> list[list[Any]]:
        """The parts as JSON-ready lists (``[path, kind, name, digest]``), to store."""
        return [[list(p.path), p.kind, p.name, p.digest] for p in self.parts]

    @classmethod
    def from_json(cls, data: Any) -> CodeParts:
        """The :class:`CodeParts` of what :meth:`to_json` returned (its digest recomputed).

        Raises:
            InvalidValueError: ``data`` is not a list of ``[path, kind, name, digest]``.
        """
        try:
            parts = []
            for path, kind, name, digest in data:
                fields = [kind, name, digest, *path]
                if not all(isinstance(f, str) for f in fields) or isinstance(path, str):
                    raise TypeError
                parts.append(Part(tuple(path), kind, name, digest))
        except (TypeError, ValueError):
            raise InvalidValueError(
                f"CodeParts.from_json() takes what CodeParts.to_json() returned (a list of "
                f"[path, kind, name, digest]), not {data!r:.200}.",
                what="The parts of a fingerprint",
                value=data,
            ) from None
        ordered = tuple(sorted(set(parts)))
        return cls(digest_of(ordered), ordered)


def digest_of(parts: Iterable[Part]) -> str:
    """32 hex digits: the hash of sorted parts (what a fingerprint is)."""
    flat: list[Any] = [_FORMAT]  # each part: its path's length, its path, kind, name, digest
    for path, kind, name, digest in parts:
        flat.append(len(path))
        flat += path
        flat += (kind, name, digest)
    text = json.dumps(flat, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def describe_changes(old: CodeParts, new: CodeParts, *, limit: int = 3) -> list[str]:
    """Short sentences saying what changed from ``old`` to ``new``, shallowest first.

    Args:
        old: The parts of the earlier fingerprint.
        new: The parts of the later one.
        limit: At most this many sentences; ``"and N more changes"`` follows when some were
            left out.

    Returns:
        ``[]`` when the digests are equal; e.g. ``"the code of `parse` changed"``, ``"the global
        `THRESHOLD` used by `parse` changed"``, ``"`parse` now calls `normalize`"``.
    """
    if old.digest == new.digest:
        return []
    names = _short_names([*old.parts, *new.parts])
    heads = {p.path[-1] for p in old.parts if p.kind in _HEADS}
    heads &= {p.path[-1] for p in new.parts if p.kind in _HEADS}
    found = [
        *_head_changes(old.parts, new.parts, names),
        *_edge_changes(old.parts, new.parts, names, heads),
        *_slot_changes(old.parts, new.parts, names, heads),
        *_package_changes(old.parts, new.parts, names, heads),
    ]
    roots = [p.parts[0].path[0] if p.parts else "" for p in (old, new)]
    if roots[0] != roots[1]:  # (the same code run as a script, then imported: another name)
        found.append((0, 0, f"it is now `{roots[1]}` (it was `{roots[0]}`)"))
    sentences = list(dict.fromkeys(s for *_, s in sorted(found)))
    if not sentences:
        return ["something the code depends on changed"]
    if len(sentences) > limit:
        more = len(sentences) - limit
        return [*sentences[:limit], f"and {more} more change{'s' if more > 1 else ''}"]
    return sentences


def _short_names(parts: list[Part]) -> dict[str, str]:
    """Full path element -> the name to print: its qualified name when no other has it."""
    short = {p.path[-1]: p.name for p in parts if p.kind in _HEADS}
    for p in parts:
        for full in p.path:
            short.setdefault(full, full)
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {full: name if counts[name] == 1 else full for full, name in short.items()}


def _via(path: tuple[str, ...], names: dict[str, str], verb: str = "called") -> str:
    """`` (called by `parse` through `clean`, two levels down)`` for a part at ``path``."""
    if len(path) < 2:
        return ""
    by = f" ({verb} by `{names[path[0]]}`"
    if len(path) == 2:
        return by + ")"
    through = ", ".join(f"`{names[p]}`" for p in path[1:-1])
    levels = len(path) - 1
    return f"{by} through {through}, {_LEVELS[levels] if levels < 10 else levels} levels down)"


def _index(parts: Iterable[Part], key: Any) -> dict[Any, tuple[set[str], tuple[str, ...]]]:
    """key(part) -> (the digests under it, the shallowest path it is at)."""
    found: dict[Any, tuple[set[str], tuple[str, ...]]] = {}
    for p in parts:
        k = key(p)
        if k is None:
            continue
        digests, path = found.setdefault(k, (set(), p.path))
        digests.add(p.digest)
        if (len(p.path), p.path) < (len(path), path):
            found[k] = (digests, p.path)
    return found


def _head_changes(
    old: Iterable[Part], new: Iterable[Part], names: dict[str, str]
) -> list[tuple[int, int, str]]:
    def key(p: Part) -> Any:
        return (p.path[-1], p.kind) if p.kind in _HEADS else None

    before, after = _index(old, key), _index(new, key)
    found = []
    for (full, kind), (digests, path) in after.items():
        if (full, kind) in before and before[full, kind][0] != digests:
            if kind == "code":
                text = f"the code of `{names[full]}` changed{_via(path, names)}"
            else:
                text = f"the class `{names[full]}` changed (its bases or members)"
                text += _via(path, names, "used")
            found.append((len(path), 0, text))
    return found


def _edge_changes(
    old: Iterable[Part], new: Iterable[Part], names: dict[str, str], heads: set[str]
) -> list[tuple[int, int, str]]:
    def key(p: Part) -> Any:
        ok = p.kind in _HEADS and len(p.path) > 1 and p.path[-2] in heads
        return (p.path[-2], p.path[-1], p.kind) if ok else None

    before, after = _index(old, key), _index(new, key)
    found = []
    for (parent, child, kind), (_, path) in after.items():
        if (parent, child, kind) not in before:
            found.append((len(path) - 1, 1, _edge(parent, child, kind, names, "now")))
    for (parent, child, kind), (_, path) in before.items():
        if (parent, child, kind) not in after:
            found.append((len(path) - 1, 2, _edge(parent, child, kind, names, "no longer")))
    return found


def _edge(parent: str, child: str, kind: str, names: dict[str, str], when: str) -> str:
    verb = "uses" if kind == "class" else "calls"
    return f"`{names[parent]}` {when} {verb} `{names[child]}`"


def _slot_changes(
    old: Iterable[Part], new: Iterable[Part], names: dict[str, str], heads: set[str]
) -> list[tuple[int, int, str]]:
    def key(p: Part) -> Any:
        return (p.path[-1], p.kind, p.name) if p.kind in _SLOTS else None

    before, after = _index(old, key), _index(new, key)
    classes = {p.path[-1] for p in [*old, *new] if p.kind == "class"}
    found = []
    for k, (digests, path) in after.items():
        if k in before and before[k][0] != digests:
            holder, kind, name = k
            text = _slot_sentence(holder, kind, name, names, path, classes)
            found.append((len(path), 3, text))
    for k in sorted(after.keys() ^ before.keys()):
        holder, kind, name = k
        if holder in heads:
            when = "now" if k in after else "no longer"
            path = (after if k in after else before)[k][1]
            what = {"global": "uses the global", "closure": "closes over", "default": ""}[kind]
            if kind == "default":
                text = f"argument `{name}` of `{names[holder]}` {when} has a default"
            else:
                text = f"`{names[holder]}` {when} {what} `{name}`"
            found.append((len(path), 4, text))
    return found


def _slot_sentence(
    holder: str,
    kind: str,
    name: str,
    names: dict[str, str],
    path: tuple[str, ...],
    classes: set[str],
) -> str:
    short = names[holder]
    if kind == "global" and holder in classes:
        text = f"the attribute `{name}` of class `{short}` changed"
    elif kind == "global":
        text = f"the global `{name}` used by `{short}` changed"
    elif kind == "closure":
        text = f"the value `{name}` closed over by `{short}` changed"
    else:
        text = f"the default of argument `{name}` of `{short}` changed"
    return text + _via(path, names, "used" if holder in classes else "called")


def _package_changes(
    old: Iterable[Part], new: Iterable[Part], names: dict[str, str], heads: set[str]
) -> list[tuple[int, int, str]]:
    def dist(p: Part) -> Any:
        return p.name.rpartition("==")[0] or p.name if p.kind == "package" else None

    def versions(parts: Iterable[Part]) -> dict[str, tuple[set[str], int]]:
        found: dict[str, tuple[set[str], int]] = {}
        for p in parts:
            name = dist(p)
            if name is not None:
                seen, depth = found.setdefault(name, (set(), len(p.path)))
                seen.add(p.name.rpartition("==")[2] if "==" in p.name else "?")
                found[name] = (seen, min(depth, len(p.path)))
        return found

    before, after = versions(old), versions(new)
    found = []
    for name, (seen, depth) in after.items():
        if name in before and before[name][0] != seen:
            was, now = (", ".join(sorted(v)) for v in (before[name][0], seen))
            found.append((depth, 5, f"package `{name}` changed version ({was} → {now})"))
    users = {(p.path[-1], dist(p)): p for p in [*old, *new] if p.kind == "package"}
    olds = {(p.path[-1], dist(p)) for p in old if p.kind == "package"}
    news = {(p.path[-1], dist(p)) for p in new if p.kind == "package"}
    for holder, name in sorted(olds ^ news):
        if holder in heads:
            when = "now" if (holder, name) in news else "no longer"
            depth = len(users[holder, name].path)
            found.append((depth, 6, f"`{names[holder]}` {when} uses package `{name}`"))
    return found
