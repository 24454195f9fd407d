"""Idempotent launches in real kernels: "Run All" after a restart continues the run it started.

Each test drives real ipykernel kernels through jupyter_client on one DuckDB file. A kernel is
killed mid-run (SIGKILL, as a crash or a restart does), then a new kernel runs the same cells: the
launch cell must find the interrupted run and resume it, not start the pipeline again. Every
step appends ``<pid> <i>`` to a side-effect file, so the test counts how often each step ran.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.support.helpers import wait_until
from tests.support.kernels import RealKernel, venv_kernel

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

WIDGET = "application/vnd.jupyter.widget-view+json"

DEFINE = """\
import os, time
import nbflow
from nbflow.notebook import launch

SIDE = {side!r}

@nbflow.step
def work(i):
    with open(SIDE, "a") as f:
        f.write(f"{{os.getpid()}} {{i}}\\n")
    time.sleep({pause})
    return i * i

@nbflow.workflow(name="pipeline")
def pipeline(n):
    total = 0
    for i in nbflow.track(range(n)):
        total += work(i)
    return total
"""


#: How the HTML of a line nbflow says begins (``nbflow.notebook._say``).
SAID = '<div class="nbflow-said"'


class Kernel(RealKernel):
    """A real kernel, and the outputs of each cell it ran."""

    def run(self, code: str, timeout: float = 90) -> dict[str, Any]:
        """Run one cell; its stdout, stderr, error, the lines nbflow said (``said``: what a
        launch found, shown as HTML), the mimetypes it displayed, and the ``text/plain`` of every
        other display it showed or updated (``texts``: a view's static rendering among them)."""
        msg_id = self.client.execute(code)
        out: dict[str, Any] = {"stdout": "", "stderr": "", "error": None, "said": ""}
        out["displayed"], out["texts"] = [], []
        while True:
            msg = self.client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif str(content.get("data", {}).get("text/html", "")).startswith(SAID):
                out["said"] += content["data"]["text/plain"] + "\n"
            elif kind in ("display_data", "update_display_data", "execute_result"):
                out["texts"].append(content["data"].get("text/plain", ""))
                if kind != "update_display_data":
                    out["displayed"].append(sorted(content["data"]))
            elif kind == "error":
                out["error"] = "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                return out

    def kill(self) -> None:
        """SIGKILL the kernel (as a crash does): its workflows stay PENDING."""
        self.stop(now=True)


def kernel_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str, notebook: str
) -> Iterator[list[Kernel]]:
    """The kernels a test starts (with :func:`start`) on the database file ``database`` as the
    notebook ``notebook`` (both in ``tmp_path``); stopped at the end."""
    venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NBFLOW_DATABASE", str(tmp_path / database))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / notebook))
    started: list[Kernel] = []
    yield started
    for kernel in started:
        kernel.stop()


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Kernel]]:
    yield from kernel_session(tmp_path, monkeypatch, "launch.duckdb", "pipeline.ipynb")


def start(kernels: list[Kernel], cwd: Path) -> Kernel:
    kernel = Kernel(cwd)
    kernels.append(kernel)
    return kernel


def runs(side: Path) -> collections.Counter[int]:
    """How often each step ran, by item."""
    lines = side.read_text().split() if side.exists() else []
    return collections.Counter(int(i) for i in lines[1::2])


def workflows(db: Path) -> list[nbflow.WorkflowInfo]:
    """The pipeline's workflows, read in this process once the kernels are gone."""
    with nbflow.Runtime(str(db)) as rt:
        return [w for w in rt.list_workflows(limit=100) if w.name == "pipeline"]


def durable_items(db: Path) -> set[int]:
    """The items whose step checkpoint is durable (read while no kernel holds the file)."""
    with nbflow.Runtime(str(db)) as rt:
        [run] = [w for w in rt.list_workflows(limit=100) if w.name == "pipeline"]
        steps = [s for s in rt.list_steps(run.workflow_id) if s.name.endswith("work")]
    return set(range(len(steps)))


def ok(out: dict[str, Any]) -> dict[str, Any]:
    assert out["error"] is None, out["error"]
    return out


def test_run_all_after_a_kill_resumes_the_run_it_launched(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    side = tmp_path / "side.txt"
    cells = [
        DEFINE.format(side=str(side), pause=0.05) + "\nhandle = launch(pipeline, 60)",
        "%load_ext nbflow",
        "%nbflow recover",
    ]
    first = start(kernels, tmp_path)
    launched = ok(first.run(cells[0]))
    assert WIDGET in launched["displayed"][0], launched  # a live view, shown at once
    wait_until(lambda: sum(runs(side).values()) >= 15, timeout=60)
    first.kill()
    before = runs(side)
    durable = durable_items(tmp_path / "launch.duckdb")

    second = start(kernels, tmp_path)
    again = ok(second.run(cells[0]))
    ok(second.run(cells[1]))
    recovered = ok(second.run(cells[2]))
    result = ok(second.run("print(handle.previous.state, handle.result(timeout=60))"))
    second.stop()

    counts = runs(side)
    [run] = workflows(tmp_path / "launch.duckdb")  # exactly one run of the pipeline
    assert run.status == "SUCCESS", run
    assert "was interrupted; resuming it from its last checkpoint" in again["said"], again
    assert result["stdout"].split() == ["interrupted", str(sum(i * i for i in range(60)))]
    assert "not resumed" not in recovered["stdout"], recovered
    assert f"already running in this kernel: {run.workflow_id} (pipeline)" in recovered["stdout"]
    assert sorted(counts) == list(range(60)), counts
    twice = {i for i, n in counts.items() if n > 1}
    # it continued from its last checkpoint: no step whose checkpoint was durable ran again
    # (those that ran but whose checkpoint the kill lost may run again: at-least-once)
    assert durable and not twice & durable, (sorted(twice), sorted(durable))
    assert twice <= set(before), (sorted(twice), before)


def test_a_finished_call_is_shown_not_run_again_unless_rerun(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    side = tmp_path / "side.txt"
    define = DEFINE.format(side=str(side), pause=0)
    first = start(kernels, tmp_path)
    ok(first.run(define + "\nhandle = launch(pipeline, 5)\nprint(handle.result(timeout=30))"))
    first.stop()
    assert runs(side) == dict.fromkeys(range(5), 1)

    second = start(kernels, tmp_path)
    shown = ok(second.run(define + "\nhandle = launch(pipeline, 5)"))
    same = ok(second.run("print(handle.previous.state, handle.result(timeout=30))"))
    other = ok(second.run("print(launch(pipeline, 6).result(timeout=30))"))
    rerun = ok(second.run("h = launch(pipeline, 5, rerun=True)\nprint(h.result(timeout=30))"))
    third = ok(second.run("print(launch(pipeline, 5).workflow_id == h.workflow_id)"))
    magic = ok(second.run("%load_ext nbflow\n%nbflow start pipeline(5)"))
    second.stop()

    assert "already succeeded at" in shown["said"], shown
    assert "showing that run without running it again (launch(..., rerun=True)" in shown["said"]
    assert WIDGET in shown["displayed"][0], shown
    assert same["stdout"].split() == ["finished", "30"], same
    assert other["stdout"].split() == ["55"] and rerun["stdout"].split() == ["30"]
    assert "True" in third["stdout"], third  # later launches follow the newest run
    assert "(%nbflow start pipeline(5) --rerun runs it anew)" in magic["said"], magic
    ids = sorted(w.workflow_id for w in workflows(tmp_path / "launch.duckdb"))
    assert len(ids) == 3 and sum(i + ".2" in ids for i in ids) == 1, ids  # (5), its rerun, (6)
    assert runs(side) == {i: (2 if i < 5 else 0) + (i < 6) for i in range(6)}


def test_launch_while_running_follows_and_recover_shows_views(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    side = tmp_path / "side.txt"
    define = DEFINE.format(side=str(side), pause=0.05)
    first = start(kernels, tmp_path)
    ok(first.run(define + "\nh1 = launch(pipeline, 40)"))
    follow = ok(first.run("h2 = launch(pipeline, 40)\nprint(h1.workflow_id == h2.workflow_id)"))
    wait_until(lambda: sum(runs(side).values()) >= 10, timeout=60)
    first.kill()

    second = start(kernels, tmp_path)
    ok(second.run(define))  # the definitions only: no launch
    recovered = ok(second.run("handles = nbflow.recover()"))
    done = ok(second.run("print([h.result(timeout=60) for h in handles])"))
    second.stop()

    assert "is already running in this kernel; following it" in follow["said"], follow
    assert follow["stdout"].strip().endswith("True"), follow
    [run] = workflows(tmp_path / "launch.duckdb")
    assert f"resumed: {run.workflow_id} (pipeline)" in recovered["stdout"], recovered
    # one view (the widget, and the output under it that holds its state for a saved notebook)
    assert [WIDGET in d for d in recovered["displayed"]] == [True, False], recovered
    assert json.loads(done["stdout"].replace("'", '"')) == [sum(i * i for i in range(40))]
