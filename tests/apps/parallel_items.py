"""Step functions importable by other processes (map items on a process pool)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import nbflow


@nbflow.step(name="tests.parallel.square")
def square(i: int) -> dict[str, int]:
    return {"i": i, "square": i * i, "pid": os.getpid()}


def cube(i: int) -> int:
    return i**3


def writes_a_stream(i: int) -> int:
    nbflow.write_stream("from-elsewhere", i)
    return i


@nbflow.step(name="tests.parallel.flaky", retries=2, interval=0, backoff=1.0)
def flaky(item: dict[str, Any]) -> int:
    """Fails its first ``item["fails"]`` attempts (counted in a file of ``item["dir"]``, so over
    every process); each attempt appends its start time (``time.time()``) to that file."""
    i = item["i"]
    path = Path(item["dir"]) / f"{i}.log"
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with open(path, "a") as log:  # one short append per attempt
        log.write(f"{time.time()}\n")
    if before < item["fails"]:
        raise ValueError(f"item {i}: 429, slow down (attempt {before + 1})")
    return i * i


def attempt_times(directory: str) -> list[float]:
    """The start times of every attempt of :func:`flaky` logged in ``directory``, sorted."""
    stamps = [float(t) for p in Path(directory).glob("*.log") for t in p.read_text().split()]
    return sorted(stamps)


def chatty(i: int) -> int:
    """Prints a line to stdout and one to stderr, then returns ``i`` (or raises for ``i < 0``)."""
    print(f"item {i} says hi")
    print(f"item {i} warns", file=sys.stderr)
    if i < 0:
        raise ValueError(f"item {i} is negative")
    return i
