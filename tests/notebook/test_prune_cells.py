"""``%nbflow prune --cells`` in a real kernel: the older versions of edited durable cells go, and
a "Run All" after a restart still restores every cell; ``%nbflow prune --older-than``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nbflow
from nbflow.notebook._prune import superseded
from tests.support.kernels import RealKernel, venv_kernel

pytestmark = pytest.mark.kernel


class Kernel(RealKernel):
    """A real kernel that runs one cell at a time (see :meth:`RealKernel.run`)."""


def did(out: str) -> str:
    """``ran`` or ``restored``, from a durable cell's note."""
    found = re.search(r"nbflow: step '\w+' (ran|restored) in", out)
    assert found, out
    return found.group(1)


A = ["%%nbflow step a\nx = 1", "%%nbflow step a\nx = 2", "%%nbflow step a\nx = 3"]
B = "%%nbflow step b\ny = x + 1\nprint('y', y)"
C = "%%nbflow step c\nz = 0"
AGE_ALL = (
    "rt = nbflow.runtime()\nrt.flush()\n"
    "rt.store.sql('UPDATE workflows SET created_at = created_at - 8 * 86400')"
)


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    venv_kernel(tmp_path, monkeypatch)
    db = tmp_path / "nb.duckdb"
    monkeypatch.setenv("NBFLOW_DATABASE", str(db))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    (tmp_path / "work").mkdir()
    return db


def record_names(db: Path) -> list[str]:
    """The cell name of each durable-cell record, oldest first."""
    with nbflow.Runtime(db) as rt:
        return [name for _, name, *_ in rt.recorded_steps("notebook:work")]


def test_prune_cells_keeps_what_run_all_restores(kernel_env: Path) -> None:
    db, cwd = kernel_env, kernel_env.parent / "work"
    k = Kernel(cwd)
    try:
        k.ok("%load_ext nbflow")
        for source in A:  # edit cell a twice; b runs again each time (its input changed)
            assert did(k.ok(source)) == "ran"
            assert did(k.ok(B)) == "ran"
        assert did(k.ok(C)) == "ran"
        assert did(k.ok(C.replace("step c", "step c --force"))) == "ran"  # same version again
        assert "would remove 5 durable-cell records" in k.ok("%nbflow prune --cells --dry-run")
        out = k.ok("%nbflow prune --cells")
        assert out.startswith("removed 5 durable-cell records of notebook:work")
        assert "older versions of 'a', 'b', 'c'" in out and "kept 3 " in out
        assert k.ok("%nbflow prune --cells").startswith("removed 0 ")
    finally:
        k.stop()
    assert record_names(db) == ["a", "b", "c"]

    k = Kernel(cwd)  # a restart: run a and b only; c is not run here
    try:
        k.ok("%load_ext nbflow")
        assert did(k.ok(A[2])) == "restored"
        out = k.ok(B)
        assert did(out) == "restored" and "y 4" in out
        out = k.ok("%nbflow prune --cells")
        assert out.startswith("removed 0 ")
        assert "kept every record of 'c': no cell of that name ran in this kernel" in out
        assert did(k.ok(C)) == "restored"  # Run All restores every cell
        assert did(k.ok(A[0])) == "ran"  # the old version's record is gone
    finally:
        k.stop()


def test_prune_older_than_in_the_magic(kernel_env: Path) -> None:
    k = Kernel(kernel_env.parent / "work")
    try:
        k.ok("%load_ext nbflow\nimport nbflow\n@nbflow.workflow\ndef w():\n    return 1")
        k.ok("nbflow.start(w).result()")
        out = k.ok("%nbflow prune --older-than 7d --dry-run")
        assert out.startswith("would remove 0 finished workflows created before ")
        k.ok(AGE_ALL)
        out = k.ok("%nbflow prune --older-than 7d --status success")
        assert out.startswith("removed 1 finished workflow (succeeded) created before ")
        _, error = k.run("%nbflow prune --older-than 7x")
        assert error.startswith("UsageError") and "'7x' is not an age" in error
        _, error = k.run("%nbflow prune")
        assert "give either --cells or --older-than AGE" in error
    finally:
        k.stop()


def test_superseded_rule() -> None:
    rows = [
        (1, "a", {"key": "a1"}),
        (2, "a", {"key": "a2"}),
        (3, "a", {"key": "a1"}),  # a1 run again (--force): the newest a1 is kept
        (4, "b", {"key": "b1"}),
        (5, "old", {"key": "o"}),
        (6, "a", "not a record"),
    ]
    assert superseded(rows, {"a": "a1", "b": "b2"}) == ([1, 2, 4, 6], ["old"])
    assert superseded(rows, {}) == ([], ["a", "b", "old"])
