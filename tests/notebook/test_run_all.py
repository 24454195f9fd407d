""" "Run All" with nbflow loaded: every cell is queued at once and every reply is ok, in order.

nbflow never patches the kernel's event loop (no nest_asyncio): applied in an ipykernel 7 kernel,
nest_asyncio 1.6 leaves queued cells unrun. This test sends all of a notebook's cells to a real
kernel without waiting between them, as JupyterLab's "Run All" does, twice in fresh kernels on one
database: the second time the durable cell is restored instead of run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.kernels import KERNEL, venv_kernel

pytestmark = pytest.mark.kernel

KernelManager = pytest.importorskip(
    "jupyter_client.manager", reason="Jupyter is not installed (pip install -e '.[dev]')"
).KernelManager

CELLS = [
    "%load_ext nbflow",
    "import asyncio, sys\nimport nbflow\n\n"
    "@nbflow.workflow\n"
    "def double(n):\n"
    "    for i in range(n):\n"
    "        nbflow.progress(i + 1, n)\n"
    "    return 2 * n",
    "%%nbflow step numbers\nnumbers = list(range(10))\nprint('numbers', len(numbers))",
    "%nbflow start double(3) --id run-all",
    "total = sum(numbers)",
    "%%nbflow background bg\nprint('from the background')",
    "%nbflow list --limit 3",
    "print('result', nbflow.get_workflow('run-all').result(timeout=30), total)\n"
    "print('asyncio.run from', asyncio.run.__module__)",
]


def run_all(
    cells: list[str], cwd: Path
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, str]]]:
    """Start a kernel, send every cell at once, and collect the replies and each cell's text.

    Returns:
        The ids of the requests, the ``execute_reply`` messages in the order they came, and
        the stream text of each cell by stream name (``stdout``, ``stderr``: those it wrote).
    """
    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(cwd=str(cwd))
    client = km.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        ids = [client.execute(code) for code in cells]  # no waiting in between: "Run All"
        replies: list[dict[str, Any]] = []
        while len(replies) < len(ids):
            msg = client.get_shell_msg(timeout=60)
            if msg["msg_type"] == "execute_reply":
                replies.append(msg)
        texts: dict[str, dict[str, str]] = {msg_id: {} for msg_id in ids}
        idle = False
        while not idle:  # the last cell's output has come once it went idle
            msg = client.get_iopub_msg(timeout=60)
            parent = msg["parent_header"].get("msg_id")
            if msg["msg_type"] == "stream" and parent in texts:
                name, text = msg["content"]["name"], msg["content"]["text"]
                texts[parent][name] = texts[parent].get(name, "") + text
            idle = parent == ids[-1] and msg["msg_type"] == "status"
            idle = idle and msg["content"]["execution_state"] == "idle"
        return ids, replies, list(texts.values())
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=False)  # waits for the kernel to exit: the database is free


def test_run_all_with_nbflow_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NBFLOW_DATABASE", str(tmp_path / "run-all.duckdb"))
    for attempt in ("first", "after a restart"):
        ids, replies, texts = run_all(CELLS, tmp_path)
        assert [r["parent_header"]["msg_id"] for r in replies] == ids, attempt
        errors = [
            (CELLS[ids.index(r["parent_header"]["msg_id"])], r["content"])
            for r in replies
            if r["content"]["status"] != "ok"
        ]
        assert not errors, (attempt, errors)
        numbers = texts[2]
        assert "stderr" not in numbers, numbers  # a durable cell that worked is not pink
        assert numbers["stdout"].startswith("numbers 10\nnbflow: step 'numbers' ")
        restored = re.search(r"restored in \d+\.\d\d s from ", numbers["stdout"]) is not None
        assert restored == (attempt == "after a restart"), numbers
        last = "".join(texts[-1].values())
        assert "result 6 45\n" in last and "asyncio.run from asyncio.runners\n" in last
