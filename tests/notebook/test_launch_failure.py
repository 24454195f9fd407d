"""A launch after a failure, in real kernels: it goes on from the step that failed, and a
replayed error shows the user's frames.

A step reads a file that is missing at first (a cause outside the code, as a person meets it);
the person creates the file and runs the launch cell again: the run goes on from the failed step
(the steps before it are not run again), a launch of the run that then succeeded only shows it,
and in a new kernel the recorded error of a failed run raises with a traceback that ends in the
step's own code, not in nbflow's.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notebook.test_launch import Kernel, kernel_session, ok, start

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

DEFINE = """\
import os
import nbflow
from nbflow.notebook import launch

SIDE, NEEDED = {side!r}, {needed!r}

@nbflow.step
def load(i):
    with open(SIDE, "a") as f:
        f.write(f"{{i}}\\n")
    if i == 3 and not os.path.exists(NEEDED):
        raise FileNotFoundError(f"no input file {{NEEDED}}")
    return i * i

@nbflow.workflow(name="loader")
def loader(n):
    return sum(load(i) for i in nbflow.track(range(n)))
"""

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Kernel]]:
    yield from kernel_session(tmp_path, monkeypatch, "failure.duckdb", "failure.ipynb")


def runs(side: Path) -> collections.Counter[int]:
    return collections.Counter(int(i) for i in side.read_text().split())


def outcome(kernel: Kernel) -> dict[str, Any]:
    """What ``handle.result()`` gave: ``stdout`` (the result) or ``error`` (its traceback)."""
    return kernel.run("print(handle.previous.state, handle.result(timeout=60))")


def test_a_launch_after_a_fixed_cause_resumes_from_the_failed_step(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    side, needed = tmp_path / "side.txt", tmp_path / "input.csv"
    cell = DEFINE.format(side=str(side), needed=str(needed)) + "\nhandle = launch(loader, 6)"
    kernel = start(kernels, tmp_path)
    ok(kernel.run(cell))
    failed = outcome(kernel)
    assert failed["error"] is not None and "FileNotFoundError" in failed["error"], failed
    assert runs(side) == dict.fromkeys(range(4), 1)

    needed.write_text("x\n")  # the person fixes the cause outside the code
    again = ok(kernel.run(cell))  # and runs the launch cell again
    resumed = ok(outcome(kernel))
    shown = ok(kernel.run(cell))  # the run succeeded: a launch shows it, nothing runs
    same = ok(outcome(kernel))

    line = again["said"].strip()
    assert line.startswith("nbflow: loader@") and " failed at " in line, again
    assert "resuming it from the step that failed" in line, line
    assert "launch(..., rerun=True)" in line, line
    assert resumed["stdout"].split() == ["resumed", str(sum(i * i for i in range(6)))], resumed
    counts = runs(side)
    assert counts == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}, counts  # only the failed step again
    assert "already succeeded at" in shown["said"], shown
    assert same["stdout"].split() == ["finished", "55"], same
    assert runs(side) == counts


def test_replay_shows_the_resume_hint_and_a_recorded_error_the_step_frames(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    side, needed = tmp_path / "side.txt", tmp_path / "input.csv"
    define = DEFINE.format(side=str(side), needed=str(needed))
    first = start(kernels, tmp_path)
    ok(first.run(define))
    ok(first.run("handle = launch(loader, 6)"))
    fresh = outcome(first)["error"]
    first.stop()

    second = start(kernels, tmp_path)  # the same definitions, run again in a new kernel
    ok(second.run(define))
    shown = ok(second.run('handle = launch(loader, 6, on_change="replay")'))
    replayed = outcome(second)["error"]
    second.stop()

    line = shown["said"].strip()
    assert " already failed at " in line, line
    resume = line.index("nbflow.resume(")
    assert resume < line.index("rerun=True"), line  # resume is named first
    assert "re-runs only what failed" in line, line
    assert runs(side) == dict.fromkeys(range(4), 1)  # "replay": nothing ran again

    assert fresh is not None and replayed is not None
    fresh, replayed = ANSI.sub("", fresh), ANSI.sub("", replayed)
    for traceback in (fresh, replayed):
        assert "FileNotFoundError" in traceback, traceback
        assert "in load" in traceback, traceback  # the step's own frame
        assert "_history.py" not in traceback, traceback
    last_frame = replayed.rsplit("Cell In[", 1)[-1]  # the cell of this kernel, with its source
    assert last_frame.startswith("1], line 12, in load"), replayed  # it ends in the step
    assert 'raise FileNotFoundError(f"no input file {NEEDED}")' in last_frame, replayed
    assert "were recorded when it was raised" in replayed, replayed
