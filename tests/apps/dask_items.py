"""Step functions that Dask workers import by name (map items of tests/test_dask.py).

A ``@nbflow.step`` pickles by module and qualified name, so what runs on a worker process must
live in an importable module like this one, not in the test module or a notebook cell.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbflow
from tests.support.helpers import wait_until


@nbflow.step(name="tests.dask.crunch")
def crunch(item: dict[str, Any]) -> dict[str, int]:
    """A CPU-ish item: a sum of squares. Appends ``"<i> <pid>"`` to ``item["log"]`` when it
    starts (the side effect a test counts); the item ``item["hold"]`` waits for the file
    ``item["gate"]`` first."""
    i = item["i"]
    with open(item["log"], "a") as log:  # one short append: whole lines, whatever the workers
        log.write(f"{i} {os.getpid()}\n")
    if i == item.get("hold"):
        wait_until(Path(item["gate"]).exists, timeout=60, interval=0.01)
    value = sum(k * k for k in range(20_000 + i))
    return {"i": i, "value": value, "pid": os.getpid()}


def expected(i: int) -> int:
    """What :func:`crunch` computes for item ``i``."""
    return sum(k * k for k in range(20_000 + i))


@nbflow.step(name="tests.dask.writes_a_stream")
def writes_a_stream(i: int) -> int:
    """An item that tries to write a stream from a worker process (an error there)."""
    nbflow.write_stream("from-a-dask-worker", i)
    return i


@nbflow.step(name="tests.dask.flaky", retries=2, interval=0.05)
def flaky(item: dict[str, Any]) -> int:
    """Fails its first attempt: appends a line to ``<item["marker"]>.<i>`` per attempt."""
    i, path = item["i"], Path(f"{item['marker']}.{item['i']}")
    with open(path, "a") as attempts:
        attempts.write(f"{os.getpid()}\n")
    if len(path.read_text().splitlines()) == 1:
        raise ValueError(f"the first attempt of item {i} fails")
    return i
