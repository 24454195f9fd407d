"""Cached steps that worker processes import by name (tests/workflow/test_step_cache.py)."""

from __future__ import annotations

import nbflow


@nbflow.step(cache=True)
def cube(x: int) -> int:
    """The cube of ``x``."""
    return x * x * x
