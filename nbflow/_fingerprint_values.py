"""Where code comes from (the user's own, or an installed package) and what values count as.

A part of :mod:`nbflow._fingerprint`:

- :func:`origin` says whether a module is the user's own code (``__main__``, a module with no
  file, or one whose file is outside site-packages, the standard library and the interpreter's
  prefixes, and not shipped by a distribution found beside it) or installed: then its label is
  ``"dist==version"`` (the top-level package's distribution, from
  :func:`importlib.metadata.packages_distributions`, memoized per process), ``"python==3.11"``
  for the standard library and builtins. nbflow's own modules count as the ``nbflow``
  distribution: they are the toolkit, not the user's code, even from a source checkout.
- :func:`value_digest` digests a plain value (None, bool, numbers, str, bytes, range, dates and
  times, Decimal, Fraction, paths, Enum members, compiled regular expressions, and tuples,
  namedtuples, lists, dicts, sets and frozensets of them) by content through
  :func:`nbflow._canonical.canonical`; anything else by its type's qualified name (a subclass of
  dict or list too: a ``Counter`` or ``defaultdict`` is more often state a function keeps than
  data it is given), and a plain value bigger than :data:`BUDGET` (about
  10,000 items, or 640,000 characters) by its type and length, so that a big global does not
  make every fingerprint slow. Functions and classes inside a plain container count by name, and are handed
  back so that their code can count too.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import fractions
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import re
import sys
import sysconfig
import threading
import types
from typing import Any

from nbflow._canonical import canonical

__all__ = [
    "BUDGET",
    "TEXT_UNIT",
    "PYTHON",
    "import_label",
    "name_digest",
    "origin",
    "origin_of",
    "qualified_name",
    "text_digest",
    "value_digest",
]

#: A plain value bigger than this counts by its type and length: units of one item (of a
#: container, or a scalar) or :data:`TEXT_UNIT` characters. Its values are digested on every
#: fingerprint, at about a microsecond an item: so 10 ms at most.
BUDGET = 10_000
TEXT_UNIT = 64
#: The label of the standard library and builtins.
PYTHON = "python=={}.{}".format(*sys.version_info[:2])

_SCALAR_TAGS: dict[type, str] = {
    type(None): "N",
    bool: "B",
    int: "i",
    float: "f",
    complex: "c",
    str: "s",
    bytes: "b",
}
_CONTAINERS = (list, tuple, set, frozenset, dict)
_PLAIN_SCALARS = (
    range,
    dt.date,
    dt.time,
    dt.timedelta,
    decimal.Decimal,
    fractions.Fraction,
    pathlib.PurePath,
)
_CALLABLE_NAMED = (type, types.FunctionType, types.BuiltinFunctionType)

_labels: dict[str, str | None] = {}  # module name -> its origin (None: the user's own)
_versions: dict[str, str] = {}  # top-level import name -> its label
_top_levels: list[dict[str, list[str]]] = []  # packages_distributions(), once
_lock = threading.Lock()


def text_digest(text: str) -> str:
    """16 hex digits of ``text``."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@functools.lru_cache(maxsize=4096)
def name_digest(text: str) -> str:
    """:func:`text_digest` of a name (a module, a package label), memoized."""
    return text_digest(text)


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a function or class, a module's name, else its type's."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None) if isinstance(obj, _CALLABLE_NAMED) else None
    qualname = getattr(obj, "__qualname__", None) if isinstance(obj, _CALLABLE_NAMED) else None
    if not isinstance(qualname, str):
        kind = type(obj)
        module, qualname = kind.__module__, kind.__qualname__
    return f"{module}.{qualname}" if isinstance(module, str) else str(qualname)


def origin_of(obj: Any) -> str | None:
    """:func:`origin` of a function's or class's module (a builtin without one: Python's)."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        return None if isinstance(obj, (type, types.FunctionType)) else PYTHON
    return origin(module)


def origin(module_name: str) -> str | None:
    """None if the module is the user's own code, else the label of what installed it."""
    label = _labels.get(module_name, "")
    if label != "":
        return label
    top = module_name.partition(".")[0]
    if module_name == "__main__":
        return None
    if top == "nbflow":
        found: str | None = _label(top)
    else:
        module = sys.modules.get(module_name) or sys.modules.get(top)
        if module is None:  # not imported (an exec'd namespace): not remembered, it may come
            return PYTHON if top in sys.stdlib_module_names else None
        found = _module_origin(module, top)
    _labels[module_name] = found
    return found


def _module_origin(module: types.ModuleType, top: str) -> str | None:
    where = getattr(module, "__file__", None)
    if not isinstance(where, str):
        entries = list(getattr(module, "__path__", None) or [])  # a namespace package
        where = entries[0] if entries and isinstance(entries[0], str) else None
    if where is None:
        builtin = top in sys.stdlib_module_names or top in sys.builtin_module_names
        return PYTHON if builtin else None
    path = os.path.realpath(where)
    if {"site-packages", "dist-packages"} & set(pathlib.PurePath(path).parts):
        return _label(top)
    paths = sysconfig.get_paths()
    if any(_under(path, paths[key]) for key in ("stdlib", "platstdlib") if key in paths):
        return PYTHON
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    if any(_under(path, prefix) for prefix in prefixes):
        return PYTHON if top in sys.stdlib_module_names else _label(top)
    return _shipped(top, path)


def _under(path: str, directory: str) -> bool:
    return path.startswith(os.path.join(os.path.realpath(directory), ""))


def _shipped(top: str, path: str) -> str | None:
    """The label of a distribution whose files sit where ``path`` is (a package put on sys.path
    with its ``.dist-info``), else None: the user's own code (an editable install included)."""
    for name in sorted(_distributions().get(top, [])):
        try:
            base = str(importlib.metadata.distribution(name).locate_file(""))
        except Exception:
            continue
        if _under(path, base):
            return _label(top)
    return None


def _distributions() -> dict[str, list[str]]:
    with _lock:
        if not _top_levels:
            try:
                _top_levels.append(dict(importlib.metadata.packages_distributions()))
            except Exception:  # a broken metadata directory: names without versions
                _top_levels.append({})
        return _top_levels[0]


def _label(top: str) -> str:
    """``dist==version`` of the distribution of a top-level import name (memoized)."""
    label = _versions.get(top)
    if label is None:
        names = sorted(_distributions().get(top, []))
        label = top
        if names:
            try:
                label = f"{names[0]}=={importlib.metadata.version(names[0])}"
            except Exception:
                label = names[0]
        _versions[top] = label
    return label


def import_label(module_name: str) -> str | None:
    """The label of a module a function imports in its body, without importing it: installed
    or standard library; None for the user's own (or unknown) modules."""
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names:
        return PYTHON
    if top == "nbflow" or top in _distributions():
        return _label(top)
    return None


class _NotPlain(Exception):
    """A value that counts by its type only."""


class _TooBig(Exception):
    """A plain value over the budget: it counts by its type and length."""


class _Plain:
    """The :data:`~nbflow._canonical.Hook` that admits plain values only, within the budget."""

    def __init__(self, found: list[Any]) -> None:
        self.budget = BUDGET
        self.found = found

    def spend(self, amount: int) -> None:
        self.budget -= amount
        if self.budget < 0:
            raise _TooBig

    def __call__(self, value: Any) -> bytes | None:
        kind = type(value)
        if kind in _SCALAR_TAGS:
            self.spend(1 + (len(value) // TEXT_UNIT if kind is str or kind is bytes else 0))
            return None  # canonical's own, exact (1, 1.0 and True differ)
        self.spend(1)
        if kind in _CONTAINERS or isinstance(value, enum.Enum):
            self.spend(len(value) if kind in _CONTAINERS else 0)
            return None
        if isinstance(value, tuple) and hasattr(kind, "_fields"):  # a namedtuple
            return None
        if isinstance(value, _PLAIN_SCALARS):
            text = repr(value)
            self.spend(len(text) // TEXT_UNIT)
            return f"{qualified_name(value)}:{text}".encode("utf-8", "surrogatepass")
        if isinstance(value, re.Pattern):
            return b"re:" + canonical((value.pattern, value.flags))
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            self.found.append(value)  # its code counts through the caller
            return b"ref:" + qualified_name(value).encode("utf-8", "surrogatepass")
        raise _NotPlain


def value_digest(value: Any, found: list[Any]) -> str:
    """16 hex digits of a value: its content if plain, else its type (and length, if too big).

    Args:
        value: A global's, a closure cell's or a default's value.
        found: Receives the functions and classes met inside a plain container (in no set
            order: a set iterates in the order of the hash seed), none if it is not plain.
    """
    tag = _SCALAR_TAGS.get(type(value))
    if tag is not None and not (tag in "sb" and len(value) > BUDGET * TEXT_UNIT):
        return text_digest(f"{tag}{value!r}")  # the common case, fast
    start = len(found)
    try:
        data = canonical(value, hook=_Plain(found))
        return hashlib.blake2b(data, digest_size=8).hexdigest()
    except _TooBig:
        del found[start:]
        try:
            size = len(value)
        except Exception:
            size = -1
        return text_digest(f"big:{qualified_name(value)}:{size}")
    except Exception:  # _NotPlain, a cycle through a subclass, a repr that fails: type only
        del found[start:]
        return text_digest(f"type:{qualified_name(value)}")
