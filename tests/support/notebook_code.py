"""Code defined as a notebook defines it, edited between runs as a person edits a cell.

A :class:`CodeCells` is a module without a file (as ``__main__`` is in a kernel); :meth:`run`
executes a cell's source in it, so running a cell again redefines its functions, and steps and
workflows are declared again under the same names.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import types
from typing import Any

__all__ = ["CodeCells", "Tally"]


class Tally:
    """Counts calls by key, thread-safely; by its type only in a fingerprint (not plain data),
    so counting does not change the code that counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[Any, int] = {}

    def __call__(self, key: Any = None) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def __getitem__(self, key: Any) -> int:
        return self.counts.get(key, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def clear(self) -> None:
        with self._lock:
            self.counts.clear()


class CodeCells:
    """A notebook's namespace: a module named ``name`` without a file.

    Args:
        name: The module's name (steps are named ``<name>.<function>``).
        **names: Values put in the namespace first (a :class:`Tally`, …).
    """

    def __init__(self, name: str, **names: Any) -> None:
        self.name = name
        self.module = types.ModuleType(name)
        self.module.__dict__.update(names)
        sys.modules[name] = self.module

    def run(self, source: str) -> types.ModuleType:
        """Run a cell's source in the namespace; the module."""
        code = compile(textwrap.dedent(source), f"<cell {self.name}>", "exec")
        exec(code, self.module.__dict__)
        return self.module

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)

    def close(self) -> None:
        """Forget the module."""
        sys.modules.pop(self.name, None)
