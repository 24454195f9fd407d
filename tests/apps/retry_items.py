"""A step with a retry predicate, importable by other processes (map items on a process pool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbflow


class Fatal(Exception):
    """An error no retry can mend (a 400, a missing file): ``should_retry`` says no."""


class Flaky(Exception):
    """An error a retry may mend (a 429, a timeout)."""


def retryable(error: Exception) -> bool:
    return not isinstance(error, Fatal)


@nbflow.step(name="tests.retry_items.picky", retries=3, interval=0, should_retry=retryable)
def picky(item: dict[str, Any]) -> int:
    """Counts its attempts in a file of ``item["dir"]`` (over every process); raises Fatal when
    ``item["kind"]`` says so, Flaky on its first attempt when ``"flaky"``, else returns ``i``."""
    i = item["i"]
    path = Path(item["dir"]) / f"{i}.log"
    with open(path, "a", encoding="utf-8") as log:
        log.write("attempt\n")
    if item["kind"] == "fatal":
        raise Fatal(f"item {i}: 400, no retry mends it")
    if item["kind"] == "flaky" and len(path.read_text(encoding="utf-8").splitlines()) == 1:
        raise Flaky(f"item {i}: 429, try again")
    return int(i)


def attempts(directory: str | Path, i: int) -> int:
    """How many attempts item ``i`` made."""
    path = Path(directory) / f"{i}.log"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0
