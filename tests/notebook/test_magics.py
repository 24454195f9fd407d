"""The ``%nbflow`` magics through a real IPython ``InteractiveShell``: loading, every subcommand,
usage errors (a usage line, never a traceback), HTML tables, and background cells.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbflow
from nbflow.notebook import _background, _cells, _magics
from tests.support.helpers import Gate, interrupt, sql, wait_until


class Ran:
    """What one cell did: its result, what it printed and what it displayed."""

    def __init__(self, result: Any, captured: Any) -> None:
        self.result = result
        self.stdout: str = captured.stdout
        self.stderr: str = captured.stderr
        self.outputs: list[dict[str, Any]] = [dict(o.data) for o in captured.outputs]

    @property
    def printed(self) -> str:
        """What the cell printed (a plain shell also prints ``Out[n]: value``: left out)."""
        return "".join(line for line in self.stdout.splitlines(True) if not line.startswith("Out["))  # fmt: skip

    @property
    def ok(self) -> bool:
        return bool(self.result.success)

    def mime(self, kind: str) -> list[Any]:
        return [o[kind] for o in self.outputs if kind in o]


Run = Callable[[str], Ran]


@pytest.fixture
def shell(
    rt: nbflow.Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """A real InteractiveShell with ``%load_ext nbflow``, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    ip = InteractiveShell.instance()
    ip.colors = "nocolor"
    ip.run_line_magic("load_ext", "nbflow")
    yield ip
    if "nbflow" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "nbflow")
    _cells._states.pop(ip, None)
    ip.reset(new_session=False)


@pytest.fixture
def run(shell: InteractiveShell) -> Run:
    """Run a cell; capture its output and displays."""

    def run_cell(code: str) -> Ran:
        with capture_output() as captured:
            if "nbflow" in shell.extension_manager.loaded:
                _background.install()  # as in a kernel, where the router stays sys.stdout
            result = shell.run_cell(code)
        return Ran(result, captured)

    return run_cell


def assert_usage_error(ran: Ran, *words: str) -> None:
    assert not ran.ok
    assert "Traceback" not in ran.stdout + ran.stderr
    assert ran.stderr.startswith("UsageError:"), ran.stderr
    for word in words:
        assert word in ran.stderr


# -- loading ----------------------------------------------------------------------------------


def test_load_twice_unload_and_reload(shell: InteractiveShell, run: Run) -> None:
    magics = shell.magics_manager.magics
    first = magics["line"]["nbflow"]
    assert run("%load_ext nbflow").ok
    nbflow.load_ipython_extension(shell)  # a direct second call changes nothing either
    assert magics["line"]["nbflow"] == first
    assert magics["cell"]["nbflow"] == first
    assert run("%unload_ext nbflow").ok
    assert "nbflow" not in magics["line"] and "nbflow" not in magics["cell"]
    assert not _background.installed()
    assert_usage_error(run("%nbflow list"), "not found")
    shell.run_line_magic("load_ext", "nbflow")  # (not captured: capturing swaps sys.stdout)
    assert _background.installed()
    shell.run_line_magic("reload_ext", "nbflow")
    assert _background.installed()
    assert run("%nbflow list").ok


def test_loading_never_patches_the_event_loop() -> None:
    code = (
        "import asyncio, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'nbflow')\n"
        "ip.run_cell('%%nbflow step s\\nx = 1')\n"
        "print(sorted(m for m in set(sys.modules) - before if 'nest' in m))\n"
        "print(asyncio.run.__module__, asyncio.run(asyncio.sleep(0, 'ran')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "NBFLOW_DATABASE": ":memory:"},
    )  # fmt: skip
    assert out.stdout.splitlines()[-2:] == ["[]", "asyncio.runners ran"], out.stdout + out.stderr


# -- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("%nbflow", ["usage: %nbflow", "required: COMMAND"]),
        ("%nbflow bogus", ["usage: %nbflow", "invalid choice: 'bogus'"]),
        ("%nbflow list --limit 0", ["usage: %nbflow list", "--limit"]),
        ("%nbflow list --status nope", ["usage: %nbflow list", "Unknown workflow status"]),
        ("%nbflow list --bogus", ["usage: %nbflow list", "unrecognized arguments"]),
        ("%nbflow start", ["usage: %nbflow start EXPR", "required: EXPR"]),
        ("%nbflow start --id x", ["usage: %nbflow start EXPR"]),
        ("%nbflow start 1 +", ["EXPR must be a workflow call"]),
        ("%nbflow start len", ["EXPR must be a workflow call"]),
        ("%nbflow start len([1])", ["len is not a workflow"]),
        ("%nbflow start f('unclosed)", ["unbalanced"]),
        ("%nbflow watch", ["usage: %nbflow watch", "required: ID"]),
        ("%nbflow watch no-such-id", ["No workflow with id 'no-such-id'"]),
        ("%nbflow steps no-such-id", ["No workflow with id 'no-such-id'"]),
        ("%nbflow steps x --pipeline", ["usage: %nbflow steps", "not allowed with"]),
        ("%nbflow cancel", ["usage: %nbflow cancel"]),
        ("%nbflow cancel no-such-id", ["No workflow with id 'no-such-id'"]),
        ("%nbflow resume no-such-id", ["No workflow with id 'no-such-id'"]),
        ("%nbflow recover now", ["usage: %nbflow recover", "unrecognized arguments"]),
        ("%nbflow step name", ["is a cell magic"]),
        ("%nbflow background", ["is a cell magic"]),
        ("%%nbflow list\nx = 1", ["is a line magic"]),
        ("%%nbflow step\nx = 1", ["usage: %%nbflow step", "required: NAME"]),
        ("%%nbflow step a b\nx = 1", ["usage: %%nbflow step", "unrecognized arguments"]),
        ("%nbflow db 'unclosed", ["cannot split"]),
    ],
)
def test_wrong_arguments_print_a_usage_line_not_a_traceback(
    run: Run, line: str, words: list[str]
) -> None:
    assert_usage_error(run(line), *words)


def test_watch_says_only_its_id_is_required(run: Run) -> None:
    ran = run("%nbflow watch")
    assert_usage_error(ran, "usage: %nbflow watch [-h] ID [KEY ...]")
    assert ran.stderr.rstrip().endswith("the following arguments are required: ID")


def test_hints_name_the_magic_in_a_notebook(rt: nbflow.Runtime, run: Run) -> None:
    """With the magics loaded, a message's way out is a %nbflow command; after unloading, the
    Python call again."""
    assert_usage_error(run("%nbflow steps no-such-id"), "`%nbflow list`")
    assert "nbflow.list_workflows()" not in run("%nbflow steps no-such-id").stderr
    err = nbflow.WorkflowInterruptedError("wf-7")
    assert "`%nbflow resume wf-7`" in str(err) and "`%nbflow recover`" in str(err)
    assert run("%unload_ext nbflow").ok
    err = nbflow.WorkflowInterruptedError("wf-7")
    assert "nbflow.resume('wf-7')" in str(err) and "nbflow.recover()" in str(err)


def test_help(shell: InteractiveShell, run: Run) -> None:
    ran = run("%nbflow -h")
    assert ran.ok and "usage: %nbflow" in ran.stdout and "steps" in ran.stdout
    ran = run("%nbflow start -h")
    assert ran.ok and "EXPR" in ran.stdout and "--watch" in ran.stdout
    doc = shell.magics_manager.magics["line"]["nbflow"].__doc__
    for command in ["start EXPR", "watch", "timeline", "list", "steps", "cancel", "resume", "db"]:
        assert f"%nbflow {command}" in doc
    assert "%%nbflow step" in doc and "%%nbflow background" in doc


# -- management subcommands -------------------------------------------------------------------


@nbflow.workflow
def double(n: int) -> int:
    for i in range(n):
        nbflow.progress(i + 1, n)
    return 2 * nbflow.run_step(abs, n)


gate_for_tests: Gate | None = None


@nbflow.workflow
def gated() -> str:
    nbflow.run_step(wait_at_gate)
    return "through"


def wait_at_gate() -> None:
    assert gate_for_tests is not None
    gate_for_tests.wait()


@pytest.fixture
def gate_in(gate: Callable[[], Gate]) -> Iterator[Gate]:
    global gate_for_tests
    gate_for_tests = gate()
    yield gate_for_tests
    gate_for_tests = None


def test_list_and_steps_render_html_tables(rt: nbflow.Runtime, run: Run) -> None:
    assert nbflow.start(double, 3).result(timeout=10) == 6
    with nbflow.set_workflow_id("wf-one"):
        double(2)
    ran = run("%nbflow list")
    assert ran.ok
    (html,) = ran.mime("text/html")
    assert html.count("<tr>") == 3 and "wf-one" in html and "succeeded" in html
    (text,) = ran.mime("text/plain")
    assert "wf-one" in text and "status" in text and "<" not in text
    assert run("%nbflow list --limit 1").mime("text/html")[0].count("<tr>") == 2
    assert "wf-one" in run("%nbflow list --status success").mime("text/html")[0]
    assert "(succeeded)" in run("%nbflow list --status success").mime("text/html")[0]
    assert "(running or interrupted)" in run("%nbflow list --status pending").mime("text/plain")[0]
    assert "(none)" in run("%nbflow list --status error").mime("text/html")[0]
    ran = run("%nbflow steps wf-one")
    (html,) = ran.mime("text/html")
    assert "<table>" in html and "steps of wf-one" in html and "builtins.abs" in html


def test_list_filters_and_stats_magics(rt: nbflow.Runtime, run: Run) -> None:
    """%nbflow list takes the filters of nbflow list; %nbflow stats shows step statistics."""
    for workflow_id in ("a_1", "ab2"):
        with nbflow.set_workflow_id(workflow_id):
            double(2)
    html = run("%nbflow list --id-prefix a_ --status success,error").mime("text/html")[0]
    assert "a_1" in html and "ab2" not in html and "(succeeded, failed)" in html
    html = run("%nbflow list --oldest-first --limit 1 --since 1h").mime("text/html")[0]
    assert "a_1" in html and "ab2" not in html
    assert "(none)" in run("%nbflow list --until 1h").mime("text/html")[0]
    ran = run("%nbflow list --since tomorrow")
    assert not ran.ok and "not a time" in str(ran.result.error_in_exec)
    ran = run("%nbflow list --status success,nope")
    assert not ran.ok and "Unknown workflow status 'success,nope'" in str(ran.result.error_in_exec)
    ran = run("%nbflow stats")
    (html,) = ran.mime("text/html")
    assert "step statistics in" in html and "builtins.abs" in html
    assert headers(html) == ["step", "count", "errors", "retries", "p50", "p95", "max", "total"]
    assert "(none)" in run("%nbflow stats --name nope --since 2d").mime("text/html")[0]


@nbflow.workflow
def broken() -> None:
    raise ValueError("no such city")


@nbflow.workflow
def doubles(n: int) -> list[int]:
    return nbflow.map(abs, range(n))


def test_list_and_prune_take_the_views_status_words(rt: nbflow.Runtime, run: Run) -> None:
    """`--status failed` as the tables say it, `--status ERROR` as the enum says it: the same."""
    with nbflow.set_workflow_id("wf-ok"):
        double(2)
    with nbflow.set_workflow_id("wf-broken"), pytest.raises(ValueError):
        broken()
    for word in ("failed", "error", "ERROR"):
        ran = run(f"%nbflow list --status {word}")
        assert ran.ok, ran.stderr
        (html,) = ran.mime("text/html")
        assert "(failed)" in html and "wf-broken" in html and "wf-ok" not in html, html
    assert "(running or interrupted)" in run("%nbflow list --status running").mime("text/html")[0]
    assert "(succeeded)" in run("%nbflow list --status succeeded").mime("text/html")[0]
    ran = run("%nbflow prune --older-than 0.001 --status failed --dry-run")
    assert ran.ok and "would remove 1 finished workflow (failed)" in ran.stdout, ran.stdout
    assert_usage_error(run("%nbflow list --status finished"), "failed (ERROR)")


def test_steps_count_from_one_show_each_call_and_fold(rt: nbflow.Runtime, run: Run) -> None:
    """`#` counts steps from 1; `call` says which call of its step each one is (a map's item),
    `argument` a short form of its argument (the item); a long table folds to its first and last
    rows with "… N more"; --all shows every row."""
    with nbflow.set_workflow_id("wf-40"):
        doubles(40)
    ran = run("%nbflow steps wf-40")
    (html,) = ran.mime("text/html")
    assert headers(html)[:4] == ["#", "step", "call", "argument"]
    numbers = [c.split(">")[1].split("<")[0] for c in cells(html, "#")]
    assert numbers[:3] == ["1", "2", "3"] and numbers[-1] == "40", numbers
    calls = [c.split(">")[1].split("<")[0] for c in cells(html, "call")]
    assert calls[0] == "1 of 40" and calls[-1] == "40 of 40", calls
    arguments = [c.split(">")[1].split("<")[0] for c in cells(html, "argument")]
    assert arguments[:2] == ["0", "1"] and arguments[-1] == "39", arguments
    steps = [c.split(">")[1].split("<")[0] for c in cells(html, "step")]
    assert "… 20 more (--all shows all)" in steps and len(steps) == 21, steps
    (text,) = ran.mime("text/plain")
    assert "… 20 more" in text and len(text.splitlines()) == 2 + 21 + 1, text
    html = run("%nbflow steps wf-40 --all").mime("text/html")[0]
    assert len(cells(html, "#")) == 40 and "more" not in html


def test_recover_names_each_workflow_it_left_once(
    rt: nbflow.Runtime, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason a workflow is not resumed is printed once, not warned as well."""
    sql(
        rt,
        "insert into workflows (workflow_id, name, status, inputs_json, created_at, updated_at) "
        "values ('orphan', 'tests.magics.gone', 'PENDING', '{\"args\":[],\"kwargs\":{}}', 1, 1)",
    )
    with caplog.at_level("WARNING", logger="nbflow"):
        ran = run("%nbflow recover")
    assert ran.ok, ran.stderr
    said = ran.stdout + ran.stderr + caplog.text
    assert said.count("'orphan'") + said.count("orphan (") == 1, said
    assert "not resumed: orphan (tests.magics.gone)" in ran.stdout, said


def test_timeline_shows_a_gantt_chart(rt: nbflow.Runtime, run: Run) -> None:
    with nbflow.set_workflow_id("wf-chart"):
        double(2)
    ran = run("%nbflow timeline wf-chart")
    assert ran.ok
    (html,) = ran.mime("text/html")
    assert '<div class="nbflow-timeline-view"' in html and "<svg" in html
    assert "nbflow-bar nbflow-success" in html and "builtins.abs" in html
    (text,) = ran.mime("text/plain")
    assert text.startswith("nbflow timeline · ") and "wf-chart" in text
    assert_usage_error(run("%nbflow timeline nope"), "%nbflow timeline", "No workflow")
    assert_usage_error(run("%nbflow timeline"), "ID")


def headers(html: str) -> list[str]:
    return re.findall(r"<th[^>]*>([^<]*)</th>", html)


def cells(html: str, column: str) -> list[str]:
    """The cells of one column of an HTML table, with their ``<td …>`` tags."""
    index = headers(html).index(column)
    rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1], re.S)
    return [unescape(re.findall(r"<td[^>]*>[^<]*</td>", row)[index]) for row in rows]


def test_tables_show_curated_columns_and_hide_nbflow_s_own(rt: nbflow.Runtime, run: Run) -> None:
    """The HTML tables have the text tables' columns, units, unwrapped times and status words;
    step names lose ``__main__.``; the durable cells' record keeping shows with --all only."""
    assert run("%%nbflow step load\nx = 1").ok  # the notebook's record keeping: notebook:…
    ran = run(
        "import nbflow\n"
        "@nbflow.step\n"
        "def flaky(n):\n"
        "    raise ValueError(f'could not parse batch {n}')\n"
        "@nbflow.workflow\n"
        "def parse(n):\n"
        "    return flaky(n)\n"
        "with nbflow.set_workflow_id('wf-bad'):\n"
        "    try:\n"
        "        parse(5)\n"
        "    except ValueError:\n"
        "        pass\n"
    )
    assert ran.ok, ran.stderr
    html = run("%nbflow list").mime("text/html")[0]
    assert headers(html) == ["id", "name", "status", "started", "duration", "error"]
    for raw in ["workflow_id", "ended_at", "parent_id", "created_at", "SUCCESS", "ERROR"]:
        assert raw not in html
    assert "notebook:" not in html and "nbflow.notebook" not in html and "__main__" not in html
    assert [c.split(">")[1].split("<")[0] for c in cells(html, "name")] == ["parse"]
    [status] = cells(html, "status")
    assert ">failed<" in status
    [started] = cells(html, "started")
    assert "white-space:nowrap" in started
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<", started)
    [duration] = cells(html, "duration")
    assert re.search(r">(\d+ ms|<1 ms|\d+\.\d\d s)<", duration), duration
    assert "white-space:nowrap" in duration
    [error] = cells(html, "error")
    assert "ValueError: could not parse batch 5" in error and "raised in step 'flaky'" in error
    assert "min-width:20em" in error  # (else the unwrapped columns squeeze it to a letter a line)
    html_all = run("%nbflow list --all").mime("text/html")[0]
    assert "notebook:" in html_all and "nbflow.notebook" in html_all
    html = run("%nbflow steps wf-bad").mime("text/html")[0]
    assert headers(html) == [
        "#",
        "step",
        "call",
        "argument",
        "status",
        "started",
        "duration",
        "attempts",
        "error",
    ]
    assert "function_id" not in html and "__main__" not in html
    [step] = cells(html, "step")
    assert ">flaky<" in step and ">failed<" in cells(html, "status")[0]
    text = run("%nbflow steps wf-bad").mime("text/plain")[0]
    assert "__main__" not in text and "flaky" in text and "failed" in text
    shown = run("from IPython.display import display\ndisplay(nbflow.list_steps('wf-bad'))")
    html = shown.mime("text/html")[0]  # the records: one name too
    assert "__main__" not in html and ">flaky<" in html, html
    assert nbflow.list_steps("wf-bad")[0].name == "__main__.flaky"  # the API keeps the value


def test_a_failed_map_item_is_named_without_main(rt: nbflow.Runtime, run: Run) -> None:
    ran = run(
        "import nbflow\n"
        "def check(n):\n"
        "    if n == 1:\n"
        "        raise KeyError(n)\n"
        "@nbflow.workflow\n"
        "def mapped():\n"
        "    return nbflow.map(check, range(3), concurrency=1)\n"
        "with nbflow.set_workflow_id('wf-map'):\n"
        "    try:\n"
        "        mapped()\n"
        "    except KeyError:\n"
        "        pass\n"
    )
    assert ran.ok, ran.stderr
    [error] = cells(run("%nbflow list").mime("text/html")[0], "error")
    assert "KeyError: 1 · nbflow.map: item 2 of 3 failed in step 'check'" in error


def test_a_pending_workflow_not_running_here_is_interrupted(
    rt: nbflow.Runtime, run: Run, gate_in: Gate
) -> None:
    with nbflow.set_workflow_id("gated-running"):
        handle = nbflow.start(gated)
    gate_in.reached()
    try:  # the interrupted one is written as a crash leaves it: PENDING, nothing runs it
        sql(
            rt,
            "insert into workflows (workflow_id, name, status, inputs_json, created_at, "
            "updated_at) values ('crashed', 'tests.gone', 'PENDING', '{\"args\":[],\"kwargs\":{}}', "
            "1, 1)",
        )
        html = run("%nbflow list").mime("text/html")[0]
        ids, words = cells(html, "id"), cells(html, "status")
        status = {
            re.sub("<[^>]+>", "", i): re.sub("<[^>]+>", "", w)
            for i, w in zip(ids, words, strict=True)
        }
        assert status == {"gated-running": "running", "crashed": "interrupted"}
    finally:
        gate_in.release.set()
    assert handle.result(timeout=10) == "through"


def test_start_shows_a_live_view_and_runs_the_call(
    shell: InteractiveShell, rt: nbflow.Runtime, run: Run
) -> None:
    shell.user_ns["double"] = double
    run("n = 4")
    ran = run("%nbflow start double(n - 1) --id started-1 --watch progress")
    assert ran.ok, ran.stdout + ran.stderr
    assert nbflow.get_workflow("started-1").result(timeout=10) == 6
    assert ran.outputs, "the live view was displayed"
    ran = run("%nbflow start double(n=2) --id started-1")  # an existing id: that workflow
    assert ran.ok and nbflow.get_workflow("started-1").result(timeout=10) == 6
    ran = run("%nbflow watch started-1 progress")
    assert ran.ok and ran.outputs
    views_done(shell)


def test_cancel_resume_and_recover(
    rt: nbflow.Runtime, run: Run, gate_in: Gate, db_path: Path
) -> None:
    with nbflow.set_workflow_id("gated-1"):
        handle = nbflow.start(gated)
    gate_in.reached()
    ran = run("%nbflow cancel gated-1")
    assert ran.ok and "cancelled workflow gated-1\n" in ran.stdout
    assert "already ended" in run("%nbflow cancel gated-1").stdout
    gate_in.release.set()
    wait_until(lambda: handle.status() == nbflow.Status.CANCELLED)
    ran = run("%nbflow resume gated-1")
    assert ran.ok and "resumed: workflow gated-1 (was cancelled)" in ran.stdout
    assert nbflow.get_workflow("gated-1").result(timeout=10) == "through"
    assert "already finished" in run("%nbflow resume gated-1").stdout
    assert "no interrupted workflows" in run("%nbflow recover").stdout

    gate_in.release.clear()
    gate_in.entered.clear()
    with nbflow.set_workflow_id("gated-2"):
        nbflow.start(gated)
    gate_in.reached()
    interrupt(rt, gate_in)  # the process "stops": the workflow stays PENDING
    nbflow.configure(db_path)
    ran = run("%nbflow recover")
    assert ran.ok and "resumed: gated-2" in ran.stdout
    assert nbflow.get_workflow("gated-2").result(timeout=10) == "through"


def test_db_shows_and_switches_the_database(rt: nbflow.Runtime, run: Run, tmp_path: Path) -> None:
    assert f"nbflow database: {rt.database}" in run("%nbflow db").stdout
    other = tmp_path / "other.duckdb"
    ran = run(f"%nbflow db {other}")
    assert ran.ok and str(other) in ran.stdout
    assert nbflow.runtime().database == str(other)
    assert "(none)" in run("%nbflow list").mime("text/plain")[0]


# -- background cells -------------------------------------------------------------------------


def views_done(shell: InteractiveShell) -> None:
    """Wait until the live views the magics opened have shown everything (their threads end,
    so they draw nothing after the test)."""
    for view in _magics._loaded[shell].views:
        assert view.wait(10)


def background_runs(shell: InteractiveShell) -> list[Any]:
    nbflow.runtime().flush()
    return nbflow.list_workflows(name="nbflow.background")


def test_background_cell_streams_its_prints(shell: InteractiveShell, run: Run) -> None:
    ran = run(
        "%%nbflow background job\n"
        "import sys\n"
        "for i in range(3):\n"
        "    print('line', i)\n"
        "print('warn', file=sys.stderr)\n"
        "print('no newline', end='')\n"
        "made_in_background = 7\n"
    )
    assert ran.ok, ran.stderr
    (info,) = wait_until(lambda: background_runs(shell))
    assert info.workflow_id.startswith("job-")
    assert nbflow.get_workflow(info.workflow_id).result(timeout=10) is None
    lines = list(nbflow.read_stream(info.workflow_id, "stdout"))
    assert lines == ["line 0", "line 1", "line 2", "warn", "no newline"]
    assert shell.user_ns["made_in_background"] == 7
    assert "line 0" not in ran.stdout  # the thread's prints went to the stream only
    views_done(shell)


def test_background_cell_error_goes_to_its_stream(shell: InteractiveShell, run: Run) -> None:
    assert run("%%nbflow background\nprint('before')\n1 / 0\n").ok
    (info,) = wait_until(lambda: background_runs(shell))
    with pytest.raises(ZeroDivisionError):
        nbflow.get_workflow(info.workflow_id).result(timeout=10)
    lines = list(nbflow.read_stream(info.workflow_id, "stdout"))
    assert lines[0] == "before"
    assert "ZeroDivisionError: division by zero" in "\n".join(lines)
    assert "background_cell" not in "\n".join(lines)  # only the cell's own frames
    views_done(shell)


def test_main_thread_prints_are_not_routed(shell: InteractiveShell, run: Run) -> None:
    _background.install()  # (pytest puts its own sys.stdout back between setup and call)
    ran = run("print('plain')")
    assert ran.stdout == "plain\n"


# -- messages and queues ----------------------------------------------------------------------


@nbflow.workflow(name="tests.magics.listener")
def listener() -> Any:
    return nbflow.recv("orders", timeout=30)


def test_send_magic_delivers_json_or_text(rt: nbflow.Runtime, run: Run) -> None:
    first, second = nbflow.start(listener), nbflow.start(listener)
    ran = run(f"%nbflow send {first.workflow_id} '{{\"qty\": 2}}' --topic orders")
    assert ran.ok and "sent to" in ran.printed
    assert first.result(timeout=10) == {"qty": 2}
    assert run(f"%nbflow send {second.workflow_id} 'two apples' --topic orders").ok
    assert second.result(timeout=10) == "two apples"
    assert_usage_error(run("%nbflow send nobody hi"), "nobody")


def test_list_magic_shows_the_queue(rt: nbflow.Runtime, run: Run) -> None:
    queue = nbflow.Queue("tests-magics-queue")
    handle = queue.enqueue(listener)
    nbflow.send(handle.workflow_id, "x", topic="orders")
    assert handle.result(timeout=10) == "x"
    ran = run("%nbflow list")
    [html_table] = ran.mime("text/html")
    assert "tests-magics-queue" in html_table and "queue" in headers(html_table)


KERNEL_CELLS = [
    "%load_ext nbflow",
    "%%nbflow step load\nx = 1",
    "import nbflow\n"
    "@nbflow.step\n"
    "def flaky(n):\n"
    "    raise ValueError(f'could not parse batch {n}')\n"
    "@nbflow.workflow\n"
    "def parse(n):\n"
    "    return flaky(n)\n"
    "handle = nbflow.start(parse, 5)\n"
    "try:\n"
    "    handle.result()\n"
    "except ValueError:\n"
    "    pass",
    "%nbflow list",
    "%nbflow list --all",
    "%nbflow steps no-such-id",
]


@pytest.mark.kernel
def test_tables_and_hints_in_a_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a real kernel: the list's HTML has the curated columns, hides the durable cells' record
    keeping unless --all, names the failed step; an error's hint is the magic."""
    import nbformat
    from nbclient import NotebookClient

    from tests.support.kernels import venv_kernel

    kernel = venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NBFLOW_DATABASE", str(tmp_path / "kernel.duckdb"))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in KERNEL_CELLS])
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(nb, kernel_name=kernel, timeout=60, allow_errors=True, resources=resources).execute()  # fmt: skip
    html = "".join(o["data"]["text/html"] for o in nb.cells[3].outputs if "data" in o)
    assert headers(html) == ["id", "name", "status", "started", "duration", "error"]
    assert "notebook:" not in html and "__main__" not in html
    [error] = cells(html, "error")
    assert "ValueError: could not parse batch 5 · raised in step 'flaky'" in error
    html_all = "".join(o["data"]["text/html"] for o in nb.cells[4].outputs if "data" in o)
    assert "notebook:" in html_all
    [failed] = [o for o in nb.cells[5].outputs if o["output_type"] == "error" or o.get("name") == "stderr"]  # fmt: skip
    said = failed.get("text") or failed.get("evalue", "")
    assert "No workflow with id 'no-such-id'" in said and "`%nbflow list`" in said, said
