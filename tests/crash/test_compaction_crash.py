"""Compaction survives ``kill -9``: the file is the old one or the new one, whole, never half.

A child (``tests/apps/compactapp.py``) prunes most workflows of a DuckDB file and closes its
runtime, which compacts the file into a copy and replaces the file by it. The test kills the
child with SIGKILL at points spread over that close, then opens the file: every workflow that
was kept is there, whole, and the copy left behind is gone. Another process that opens the file
while the child compacts it gets DuckDB's "in use" error (nbflow's ``DatabaseLockedError``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbflow
from nbflow.store._duckcompact import SUFFIX
from tests.apps import compactapp as app
from tests.support.processes import ROOT, ReadyChild, child_env

pytestmark = pytest.mark.crash

APP = Path(app.__file__).resolve()
KEEP, DROP = 60, 150
KEPT = [f"keep-{i}" for i in range(KEEP)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file of KEEP workflows to keep and DROP old ones to prune (made once)."""
    path = tmp_path_factory.mktemp("compaction") / "template.duckdb"
    subprocess.run(
        [sys.executable, str(APP), "fill", str(path), str(KEEP), str(DROP)],
        check=True,
        env=child_env(),
        cwd=ROOT,
        timeout=300,
    )
    return path


def start(template: Path, folder: Path) -> tuple[ReadyChild, Path]:
    """A child ready to prune a fresh copy of the template."""
    path = folder / "nbflow.duckdb"
    for name in (path, Path(str(path) + SUFFIX)):
        name.unlink(missing_ok=True)
    shutil.copyfile(template, path)
    child = ReadyChild(APP, ["prune", str(path)], ROOT, "compactapp")
    assert child.proc.stdout is not None
    assert child.proc.stdout.readline().strip() == "ready"
    return child, path


def wait_pruned(child: ReadyChild) -> None:
    """Let the child run, until its prune is committed (it closes right after)."""
    child.go()
    assert child.proc.stdout is not None
    line = child.proc.stdout.readline().strip()
    assert line == f"pruned {DROP}", line


def check_whole(path: Path) -> None:
    """The file opens, holds every kept workflow whole and none of the pruned ones."""
    with nbflow.Runtime(path) as rt:
        rows = rt.store.sql("SELECT workflow_id FROM workflows ORDER BY workflow_id").fetchall()  # type: ignore[attr-defined]
        assert sorted(r[0] for r in rows) == sorted(KEPT)
        for workflow_id in KEPT[:: KEEP // 6]:
            i = int(workflow_id.split("-")[1])
            assert rt.get_workflow(workflow_id).result() == i
            assert list(rt.read_stream(workflow_id, "items")) == [[i, j] for j in range(3)]
            assert [s.name for s in rt.list_steps(workflow_id)] == ["compactapp.payload"]
    assert not os.path.exists(str(path) + SUFFIX)  # removed by the open


def test_kill_9_during_compaction_leaves_a_whole_file(template: Path, tmp_path: Path) -> None:
    # How long the close (and its compaction) takes here, from a run left alone.
    child, path = start(template, tmp_path)
    wait_pruned(child)
    began = time.monotonic()
    summary = child.summary()
    took = time.monotonic() - began
    assert summary["after"] < 0.6 * summary["before"]  # it did compact
    check_whole(path)

    mid_copy = 0  # kills that found the copy written beside the file
    for trial in range(12):
        child, path = start(template, tmp_path)
        wait_pruned(child)
        time.sleep(took * trial / 11)
        child.kill()
        mid_copy += os.path.exists(str(path) + SUFFIX)
        check_whole(path)
    assert mid_copy >= 1, "no kill landed while the copy was being written"


def test_another_process_opening_during_compaction_is_told_it_is_in_use(
    template: Path, tmp_path: Path
) -> None:
    refused = 0
    for _ in range(5):  # (a loaded machine may let the child finish before the first try)
        child, path = start(template, tmp_path)
        wait_pruned(child)
        while child.proc.poll() is None:
            try:
                rt = nbflow.Runtime(path)
            except nbflow.DatabaseLockedError:
                refused += 1
                continue
            # Opened: the child let go of it (its copy dropped, or swapped in): a whole file.
            rt.close(compact=False)
            break
        child.summary()
        check_whole(path)
        if refused:
            break
    assert refused >= 1
