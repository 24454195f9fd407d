"""A disk that fills up under a running workflow (issue 14, item 3, with a real full disk).

The DuckDB file lives on a tmpfs of 8 MB mounted for the test. A workflow writes 10 KB items until
the disk is full: the commit fails, and every waiter must get the error promptly (a reader with no
timeout, a ``result()`` with no timeout), none hangs. Then the tmpfs grows (``mount -o remount``)
and a new runtime recovers the workflow: it finishes with each item once, in order.

Mounting needs root (CI runs as root); elsewhere the test is skipped, saying so.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow import DatabaseError
from tests.support.helpers import wait_until

pytestmark = pytest.mark.slow

ITEMS = 2000  # 20 MB of items: more than the 8 MB disk, less than the 64 MB it grows to
PAYLOAD = "x" * 10_000


@nbflow.workflow(name="tests.disk_full.writer")
def writer(n: int) -> int:
    for i in range(n):
        nbflow.write_stream("items", f"{i}:{PAYLOAD}")
    return n


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 8 MB, unmounted at the end."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)])
    if done.returncode != 0:
        pytest.skip("this machine cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_fails_every_waiter_and_recovers_exactly(small_disk: Path) -> None:
    path = str(small_disk / "full.duckdb")
    outcomes: dict[str, Any] = {}

    def wait(name: str, call: Any) -> threading.Thread:
        def run() -> None:
            try:
                outcomes[name] = call()
            except Exception as exc:
                outcomes[name] = exc

        thread = threading.Thread(target=run, name=f"nbflow-test-{name}", daemon=True)
        thread.start()
        return thread

    rt = nbflow.Runtime(path)
    try:
        with nbflow.set_workflow_id("filling"):
            handle = rt.start(writer, ITEMS)
        waiters = [
            wait("reader", lambda: len(list(rt.read_stream("filling", "items", timeout=None)))),
            wait("result", lambda: handle.result(timeout=None)),
        ]
        wait_until(lambda: not any(t.is_alive() for t in waiters), timeout=60)
    finally:
        rt.close(timeout=5)
    assert isinstance(outcomes["reader"], DatabaseError), outcomes
    assert isinstance(outcomes["result"], DatabaseError), outcomes
    assert (
        "No space left on device" in str(outcomes["result"])
        or "disk" in str(outcomes["result"]).lower()
    ), outcomes["result"]

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    with nbflow.Runtime(path) as again:
        [resumed] = again.recover()
        assert resumed.result(timeout=120) == ITEMS
        items = list(again.read_stream("filling", "items", timeout=10))
    assert [item.split(":", 1)[0] for item in items] == [str(i) for i in range(ITEMS)]
