"""Two real kernels on one DuckDB file: the second is told which notebook and kernel hold it.

Each kernel is started as jupyter-server starts a notebook's kernel: ``JPY_SESSION_NAME`` names
its notebook, its connection file (``-f …/kernel-<id>.json``) its id. The first runs a workflow
and keeps the file; in the second, ``%nbflow list`` and ``nbflow.list_workflows()`` fail with an
error naming the first notebook, its kernel and its process, and what to do. Once the first
kernel is shut down, the second lists the first one's workflow.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.kernels import KERNEL, RealKernel, venv_kernel

pytestmark = pytest.mark.kernel

FIRST = "/home/ana/projects/first.ipynb"
SECOND = "/home/ana/projects/second.ipynb"


class Kernel(RealKernel):
    """A real kernel that runs one cell at a time, its connection file named as jupyter-server
    names it (``kernel-<id>.json``; a bare KernelManager's is a temporary name)."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.kernel_id = str(uuid.uuid4())
        connection = cwd / "runtime" / f"kernel-{self.kernel_id}.json"
        connection.parent.mkdir(exist_ok=True)
        self.km = KernelManager(kernel_name=KERNEL, connection_file=str(connection))
        self.km.start_kernel(cwd=str(cwd))
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, *, results: bool = True) -> tuple[str, str]:
        """:meth:`RealKernel.run`, with the cell's results."""
        return super().run(code, results=results)

    def ok(self, code: str, *, results: bool = True) -> str:
        return super().ok(code, results=results)


WORKFLOW = """\
import os, nbflow
from nbflow.notebook import launch

@nbflow.workflow(name="second_kernel.double")
def double(x):
    return 2 * x

launch(double, 21).result(timeout=60)
print("pid", os.getpid())
"""


def test_the_second_kernel_is_told_the_first_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_kernel(tmp_path, monkeypatch)
    db = tmp_path / "shared.duckdb"
    monkeypatch.setenv("NBFLOW_DATABASE", str(db))
    monkeypatch.setenv("JPY_SESSION_NAME", FIRST)
    first = Kernel(tmp_path)
    try:
        pid = first.ok(WORKFLOW).split()[-1]
        monkeypatch.setenv("JPY_SESSION_NAME", SECOND)
        second = Kernel(tmp_path)
        try:
            second.ok("%load_ext nbflow")
            _, error = second.run("%nbflow list")
            assert error.startswith("UsageError: %nbflow list: "), error
            for words in (f"in use by the notebook {FIRST!r}", f"kernel {first.kernel_id}"):
                assert words in error, error
            assert f"process {pid}" in error and "Use that notebook" in error
            assert "shut down its kernel" in error and "postgresql://" in error
            _, error = second.run("import nbflow\nnbflow.list_workflows()")
            assert error.startswith("DatabaseLockedError: "), error
            assert f"in use by the notebook {FIRST!r}" in error and first.kernel_id in error
            first.stop()  # the first notebook's kernel shut down: the file is free
            out = second.ok("%nbflow list")
            assert "second_kernel.double" in out, out
        finally:
            second.stop()
    finally:
        first.stop()
