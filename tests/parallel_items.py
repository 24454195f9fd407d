"""Step functions importable by other processes (map items on a process pool)."""

from __future__ import annotations

import os

import nbflow


@nbflow.step(name="tests.parallel.square")
def square(i: int) -> dict[str, int]:
    return {"i": i, "square": i * i, "pid": os.getpid()}


def cube(i: int) -> int:
    return i**3


def writes_a_stream(i: int) -> int:
    nbflow.write_stream("from-elsewhere", i)
    return i
