"""Output capture: printed lines as unrecorded stream items, and the notebook's router.

The first part checks the core (``WorkflowContext.write_output``) on both stores: a line takes no
function id, a replay drops the body's lines the stream already holds, a step's lines are credited
to its attempt, and fork and resume keep a sensible stream. The second part runs real kernels
through nbclient: a launched workflow's prints, logging and tqdm go to its ``stdout`` stream and
to no other cell, and a resumed workflow does not print its replayed lines twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow.workflow import _context
from tests.support.helpers import Gate, interrupt, sql, wait_until
from tests.support.kernels import RealKernel, venv_kernel
from tests.support.processes import ROOT

OUT = "stdout"


def out(text: str) -> None:
    """Print ``text`` as the notebook's router does: one unrecorded line on ``stdout``."""
    ctx = _context.current()
    assert ctx is not None
    ctx.write_output(OUT, text)


def stream_rows(runtime: nbflow.Runtime, workflow_id: str) -> list[tuple[Any, ...]]:
    """``(value_json, function_id, attempt, is_end)`` of the ``stdout`` rows, in offset order."""
    return sql(
        runtime,
        "select value_json, function_id, attempt, is_end from streams where workflow_id = ? "
        'and key = ? order by "offset"',
        workflow_id,
        OUT,
    )


def lines(workflow_id: str) -> list[Any]:
    return list(nbflow.read_stream(workflow_id, OUT, timeout=10))


def step_ids(runtime: nbflow.Runtime, workflow_id: str) -> list[tuple[int, str]]:
    rows = sql(
        runtime,
        "select function_id, name from steps where workflow_id = ? order by function_id",
        workflow_id,
    )
    return [(int(r[0]), r[1]) for r in rows]


# -- the core: unrecorded lines ---------------------------------------------------------------


@pytest.mark.contract
def test_lines_take_no_position_and_steps_credit_their_attempt(rt: nbflow.Runtime) -> None:
    """A body line has neither function id nor attempt; a step's line has the step's; the steps'
    function ids are those of the same workflow printing nothing."""

    @nbflow.step(name="tests.capture.shout")
    def shout(text: str) -> str:
        out(f"step says {text}")
        return text

    @nbflow.workflow(name="tests.capture.printer")
    def printer(loud: bool) -> str:
        if loud:
            out("body 1")
        a = shout("a")
        nbflow.write_stream("other", a)
        if loud:
            out("body 2")
        return shout("b")

    loud = nbflow.start(printer, True)
    quiet = nbflow.start(printer, False)
    assert loud.result(timeout=10) == quiet.result(timeout=10) == "b"
    assert step_ids(rt, loud.workflow_id) == step_ids(rt, quiet.workflow_id)
    assert step_ids(rt, loud.workflow_id) == [
        (1, "tests.capture.shout"),
        (3, "tests.capture.shout"),
    ]
    assert lines(loud.workflow_id) == ["body 1", "step says a", "body 2", "step says b"]
    assert stream_rows(rt, loud.workflow_id) == [
        ('"body 1"', None, None, False),
        ('"step says a"', 1, 1, False),
        ('"body 2"', None, None, False),
        ('"step says b"', 3, 1, False),
        (None, None, None, True),
    ]


@pytest.mark.contract
def test_a_replay_drops_the_lines_the_body_printed_before(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """Interrupted after lines printed both before and after its last checkpoint, a recovered
    workflow has each body line once; the step cut short prints again (at least once)."""
    g = gate()

    @nbflow.step(name="tests.capture.first")
    def first() -> int:
        return 1

    @nbflow.step(name="tests.capture.wait")
    def wait() -> None:
        out("waiting")
        g.wait()

    @nbflow.workflow(name="tests.capture.crashing")
    def crashing() -> None:
        out("before")
        first()
        out("after")
        wait()
        out("end")

    handle = nbflow.start(crashing)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    resumed.result(timeout=10)
    assert lines(handle.workflow_id) == ["before", "after", "waiting", "waiting", "end"]


@pytest.mark.contract
def test_printing_on_or_off_never_changes_a_replay(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A workflow interrupted while printing is resumed by a process that prints nothing (no
    router): the same positions, no NondeterminismError."""
    g = gate()
    printing = {"on": True}

    @nbflow.step(name="tests.capture.add")
    def add(x: int) -> int:
        return x + 1

    @nbflow.step(name="tests.capture.block")
    def block() -> None:
        g.wait()

    @nbflow.workflow(name="tests.capture.toggled")
    def toggled() -> int:
        total = 0
        for i in range(3):
            if printing["on"]:
                out(f"line {i}")
            total += add(i)
        block()
        return total

    handle = nbflow.start(toggled)
    g.reached()
    interrupt(rt, g)
    printing["on"] = False
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    assert resumed.result(timeout=10) == 6
    assert lines(handle.workflow_id) == ["line 0", "line 1", "line 2"]


@pytest.mark.contract
def test_a_fork_prints_its_body_again_and_keeps_the_copied_steps_lines(
    rt: nbflow.Runtime,
) -> None:
    """A fork holds no body line of its source (their positions are unknown): its replayed body
    prints them again, into its own stream; the lines of the steps it copies come with them."""

    @nbflow.step(name="tests.capture.s")
    def s(n: int) -> int:
        out(f"step {n}")
        return n

    @nbflow.workflow(name="tests.capture.forked")
    def forked() -> int:
        out("A")
        s(1)
        out("B")
        s(2)
        out("C")
        return 3

    source = nbflow.start(forked)
    source.result(timeout=10)
    assert lines(source.workflow_id) == ["A", "step 1", "B", "step 2", "C"]
    fork = nbflow.fork(source.workflow_id, from_step=2)
    assert fork.result(timeout=10) == 3
    assert lines(fork.workflow_id) == ["step 1", "A", "B", "step 2", "C"]
    assert lines(source.workflow_id) == ["A", "step 1", "B", "step 2", "C"]


@pytest.mark.contract
def test_resuming_a_failed_workflow_keeps_each_body_line_once(rt: nbflow.Runtime) -> None:
    """Resume runs a failed workflow on: its body's earlier lines are not printed twice; the step
    that failed prints again (its new attempt)."""
    broken = {"yes": True}

    @nbflow.step(name="tests.capture.fragile")
    def fragile() -> None:
        out("trying")
        if broken["yes"]:
            raise ValueError("broken")

    @nbflow.workflow(name="tests.capture.failing")
    def failing() -> None:
        out("start")
        fragile()
        out("done")

    handle = nbflow.start(failing)
    with pytest.raises(ValueError, match="broken"):
        handle.result(timeout=10)
    assert lines(handle.workflow_id) == ["start", "trying"]
    broken["yes"] = False
    nbflow.resume(handle.workflow_id).result(timeout=10)
    assert lines(handle.workflow_id) == ["start", "trying", "trying", "done"]
    assert [r[1:3] for r in stream_rows(rt, handle.workflow_id)][:4] == [
        (None, None),
        (1, 1),
        (1, 2),
        (None, None),
    ]


@pytest.mark.contract
def test_a_line_after_the_stream_closed_or_a_cancel_is_dropped(rt: nbflow.Runtime) -> None:
    """Printing never raises: a line on a closed stream, or after a cancel, is dropped."""

    @nbflow.workflow(name="tests.capture.closing")
    def closing() -> str:
        out("one")
        nbflow.close_stream(OUT)
        out("two")
        return "ok"

    handle = nbflow.start(closing)
    assert handle.result(timeout=10) == "ok"
    assert lines(handle.workflow_id) == ["one"]


# -- real kernels ------------------------------------------------------------------------------


class Kernel(RealKernel):
    """A real kernel of this venv; runs cells one by one and keeps each cell's outputs."""

    def __init__(self, cwd: Path) -> None:
        super().__init__(cwd)
        #: parent msg id -> the outputs (stream text, display text/plain, errors) sent under it
        self.outputs: dict[str | None, list[str]] = {}
        #: parent msg id -> the displays (live views) sent under it
        self.displays: dict[str | None, list[str]] = {}

    def run(self, code: str) -> list[str]:
        """Run a cell to its end; its outputs (an error fails the test)."""
        msg_id = self.client.execute(code)
        idle = False
        while not idle:
            msg = self.client.get_iopub_msg(timeout=120)
            parent = msg["parent_header"].get("msg_id")
            kind, content = msg["msg_type"], msg["content"]
            text = None
            if kind == "stream":
                text = content["text"]
            elif kind == "execute_result":
                text = str(content["data"].get("text/plain", ""))
            elif kind == "display_data":  # (an update changes the display it names)
                self.displays.setdefault(parent, []).append(str(content["data"]))
            elif kind == "error":
                text = "ERROR " + "\n".join(content["traceback"])
            if text is not None:
                self.outputs.setdefault(parent, []).append(text)
            idle = parent == msg_id and kind == "status"
            idle = idle and content["execution_state"] == "idle"
        self.last = msg_id
        outputs = self.outputs.get(msg_id, [])
        assert not [o for o in outputs if o.startswith("ERROR")], outputs
        return outputs


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernelspec of this venv and a database file for the kernels; returns the file."""
    venv_kernel(tmp_path, monkeypatch)
    db = tmp_path / "capture.duckdb"
    monkeypatch.setenv("NBFLOW_DATABASE", str(db))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return db


def stored_lines(db: Path, workflow_id: str) -> list[Any]:
    """The ``stdout`` stream of a workflow, read once the kernel let go of the file."""
    with nbflow.Runtime(str(db)) as runtime:
        return list(runtime.read_stream(workflow_id, OUT, timeout=10))


PRINTER = """
import logging, sys, threading
import nbflow, nbflow.notebook
from IPython.display import display
from tqdm import tqdm
from tqdm.notebook import tqdm as notebook_tqdm

go = threading.Event()

@nbflow.step(name="capture.item")
def item(x):
    print(f"item {x}")
    return x * x

@nbflow.step(name="capture.crunch")
def crunch():
    print("crunch starts")
    for _ in tqdm(range(50), desc="crunch", mininterval=0):
        pass
    logging.getLogger("capture").warning("step logs")
    return 1

@nbflow.step(name="capture.wait_for_go")
def wait_for_go():
    go.wait(60)

@nbflow.workflow(name="capture.printer")
def printer():
    print("body starts")
    print("to stderr", file=sys.stderr)
    logging.info("logged with the first handler")
    squares = nbflow.map(item, [1, 2, 3], concurrency=3)
    crunch()
    wait_for_go()
    logging.info("logged with the second handler")
    for _ in notebook_tqdm(range(3), desc="widget bar"):
        pass
    display("shown by display")
    print("partial", end="")
    return sum(squares)
"""


@pytest.mark.kernel
def test_a_launched_workflow_prints_logs_and_shows_only_in_its_stream(
    kernel_env: Path, tmp_path: Path
) -> None:
    kernel = Kernel(tmp_path)
    try:
        kernel.run(
            "import logging\n"
            "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s',"
            " force=True)"
        )
        kernel.run(PRINTER)
        launched = kernel.run(
            "with nbflow.set_workflow_id('printer-1'):\n"
            "    handle = nbflow.notebook.launch(printer)"
        )
        launched_id = kernel.last
        later = kernel.run(
            "print('a later cell')\n"
            "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s',"
            " force=True)\n"
            "logging.info('the cell logs')\n"
            "go.set()\n"
            "print('result', handle.result(timeout=60))"
        )
        last = kernel.run("print('the last cell')")

        sync = kernel.run(
            "@nbflow.workflow(name='capture.sync')\n"
            "def sync():\n"
            "    print('sync body')\n"
            "    return nbflow.map(item, [7])\n"
            "with nbflow.set_workflow_id('sync-1'):\n"
            "    print('sync result', sync())"
        )
    finally:
        kernel.stop()
    lines = stored_lines(kernel_env, "printer-1")
    assert lines[:2] == ["body starts", "to stderr"]
    assert "INFO logged with the first handler" in lines
    assert sorted(x for x in lines if x.startswith("item ")) == ["item 1", "item 2", "item 3"]
    crunch = [x for x in lines if x.startswith("crunch:")]
    assert len(crunch) == 1 and "100%" in crunch[0] and "50/50" in crunch[0], lines
    assert "WARNING step logs" in lines
    assert "INFO logged with the second handler" in lines
    [bar] = [x for x in lines if x.startswith("widget bar:")]  # the widget's final text/plain
    assert "100%" in bar and "3/3" in bar, lines
    assert "'shown by display'" in lines
    assert lines[-1] == "partial"
    printed = "".join(o for outputs in kernel.outputs.values() for o in outputs)
    for line in lines:
        assert line not in printed, (line, kernel.outputs)
    others = {k: v for k, v in kernel.displays.items() if k != launched_id}
    assert not others  # the launch cell's view, and nothing else
    assert sorted("".join(later).splitlines()) == [
        "INFO the cell logs",
        "a later cell",
        "result 14",
    ]
    assert "".join(last) == "the last cell\n"
    assert "".join(sync) == "sync body\nitem 7\nsync result [49]\n"
    assert stored_lines(kernel_env, "sync-1") == []
    assert not [o for o in launched if "body starts" in o]


RESUMABLE = """
import os, threading
import nbflow, nbflow.notebook

@nbflow.step(name="capture.first")
def first():
    return 1

@nbflow.step(name="capture.block")
def block(reached, release):
    if os.path.exists(release):
        return
    nbflow.runtime().flush()  # what the body printed is durable before the kill
    open(reached, "w").close()
    threading.Event().wait(120)

@nbflow.workflow(name="capture.resumable")
def resumable(reached, release):
    print("before")
    first()
    print("after")
    block(reached, release)
    print("end")
    return "done"
"""


@pytest.mark.kernel
def test_a_resumed_workflow_prints_nothing_twice(kernel_env: Path, tmp_path: Path) -> None:
    reached, release = tmp_path / "reached", tmp_path / "release"
    kernel = Kernel(tmp_path)
    try:
        kernel.run(RESUMABLE)
        kernel.run(
            "with nbflow.set_workflow_id('resumable-1'):\n"
            f"    handle = nbflow.notebook.launch(resumable, {str(reached)!r}, {str(release)!r})"
        )
        wait_until(reached.exists, timeout=60)
    finally:
        kernel.stop(now=True)  # killed mid-run
    release.touch()
    kernel = Kernel(tmp_path)
    try:
        kernel.run("%load_ext nbflow")
        kernel.run(RESUMABLE)
        resumed = kernel.run("print(nbflow.resume('resumable-1').result(timeout=60))")
    finally:
        kernel.stop()
    assert stored_lines(kernel_env, "resumable-1") == ["before", "after", "end"]
    assert "".join(resumed) == "done\n"


POOL_PRINTER = """
import concurrent.futures, multiprocessing
import nbflow, nbflow.notebook
from tests.apps import parallel_items

@nbflow.workflow(name="capture.on_a_pool")
def on_a_pool(items):
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
        return nbflow.map(parallel_items.chatty, items, executor=pool)
"""


@pytest.mark.kernel
def test_what_process_pool_items_print_goes_to_the_view(kernel_env: Path, tmp_path: Path) -> None:
    """Issue 18, defect 8: a launched workflow's map items on a process pool printed to the
    worker's terminal (nowhere a notebook user looks). Their lines come back with each item into
    the workflow's stream ``stdout`` (the view), credited to the item's step, and no cell."""
    kernel = Kernel(tmp_path)
    try:
        kernel.run(POOL_PRINTER)
        kernel.run(
            "with nbflow.set_workflow_id('pool-1'):\n"
            "    handle = nbflow.notebook.launch(on_a_pool, [1, 2, 3])"
        )
        result = kernel.run("print(handle.result(timeout=120))")
    finally:
        kernel.stop()
    assert "".join(result) == "[1, 2, 3]\n"
    lines = stored_lines(kernel_env, "pool-1")
    expected = [f"item {i} {what}" for i in (1, 2, 3) for what in ("says hi", "warns")]
    assert sorted(lines) == sorted(expected), lines
    printed = "".join(o for outputs in kernel.outputs.values() for o in outputs)
    assert "says hi" not in printed and "warns" not in printed, kernel.outputs
    with nbflow.Runtime(str(kernel_env)) as runtime:
        credited = stream_rows(runtime, "pool-1")
        items = {fid for fid, _ in step_ids(runtime, "pool-1")}
    assert {row[1] for row in credited if not row[3]} <= items  # each line: its item's step
    assert all(row[2] == 1 for row in credited if not row[3])  # from its first attempt


# -- the router in this process ------------------------------------------------------------------


@pytest.fixture
def router(rt: nbflow.Runtime) -> Iterator[Any]:
    """Capture installed in this process (with an IPython shell), uninstalled after."""
    from IPython.core.interactiveshell import InteractiveShell

    from nbflow.notebook import _capture

    InteractiveShell.instance()
    yield _capture
    _capture.uninstall()


def test_install_repoints_earlier_handlers_and_uninstall_puts_them_back(
    router: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A logging handler made before install writes a workflow's records to its stream and the
    main thread's where it wrote before; uninstall gives it its own stream back."""
    import logging
    import sys

    stream = sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("tests.capture.router")
    log.addHandler(handler)
    log.propagate = False
    try:
        router.install()
        assert handler.stream is sys.stderr and sys.stderr is not stream

        @nbflow.workflow(name="tests.capture.logs")
        def logs() -> None:
            log.warning("from the workflow")
            print("printed", end="")  # a partial line: written when the body ends

        handle = nbflow.start(logs)
        handle.result(timeout=10)
        log.warning("from the main thread")
        assert lines(handle.workflow_id) == ["from the workflow", "printed"]
        assert capsys.readouterr().err == "from the main thread\n"
        router.uninstall()
        assert handler.stream is stream and sys.stderr is stream
    finally:
        log.removeHandler(handler)


def test_display_from_a_workflow_writes_its_text(
    router: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """display() and clear_output() in a background workflow never reach a cell; its text/plain
    is a line of its stream. The main thread's displays show as before."""
    from IPython.display import clear_output, display

    router.install()

    @nbflow.workflow(name="tests.capture.displays")
    def displays() -> None:
        display({"a": 1})
        clear_output()
        print("\rdraft\rfinal  ")  # a refreshed line keeps its last state

    handle = nbflow.start(displays)
    handle.result(timeout=10)
    display("from the cell")
    assert lines(handle.workflow_id) == ["{'a': 1}", "final"]
    assert capsys.readouterr().out == "'from the cell'\n"


def test_children_print_into_their_own_streams_and_a_call_here_prints_here(
    router: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A child workflow, called or started from a background workflow, prints into its own
    stream; a workflow called in the main thread (a cell's own) prints where it runs."""
    router.install()

    @nbflow.workflow(name="tests.capture.child")
    def child(n: int) -> int:
        print(f"child {n}")
        return n

    @nbflow.workflow(name="tests.capture.parent")
    def parent() -> list[str]:
        print("parent")
        with nbflow.set_workflow_id("called-child"):
            child(1)
        with nbflow.set_workflow_id("started-child"):
            nbflow.start(child, 2).result(timeout=10)
        return ["done"]

    handle = nbflow.start(parent)
    assert handle.result(timeout=10) == ["done"]
    assert lines(handle.workflow_id) == ["parent"]
    assert lines("called-child") == ["child 1"]
    assert lines("started-child") == ["child 2"]
    with nbflow.set_workflow_id("here"):
        assert child(3) == 3
    assert lines("here") == []
    assert capsys.readouterr().out == "child 3\n"


def test_a_nested_text_bar_leaves_only_its_last_line(router: Any) -> None:
    """A text tqdm bar drawn below another (``position=1``: move down, draw, move back up) shows
    its final line only, with no control sequences and no line for each move."""
    from tqdm import tqdm

    router.install()

    @nbflow.workflow(name="tests.capture.nested_bars")
    def nested() -> None:
        with tqdm(range(2), desc="outer", mininterval=0, ascii=True) as outer:
            for _ in outer:
                for _ in tqdm(range(3), desc="inner", position=1, mininterval=0, ascii=True):
                    pass
        print("\x1b[1mbold\x1b[0m done")

    handle = nbflow.start(nested)
    handle.result(timeout=10)
    found = lines(handle.workflow_id)
    assert not any("\x1b" in line for line in found), found
    assert not any("inner" in line and " 0%" in line for line in found), found
    assert found[-1] == "bold done", found
    from nbflow.notebook import _capture

    assert not _capture._moved_up  # nothing of the ended workflow is kept
