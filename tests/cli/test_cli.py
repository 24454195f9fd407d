"""The ``nbflow`` command: the demo (with a real SIGKILL and a resume), and the management commands.

The demo and crash tests run the command as a real subprocess (``python -m nbflow``); the other
commands run in-process through :func:`nbflow.cli.main` on workflows made by the test. DuckDB lets
one process open a file at a time, so every runtime here is closed before a child opens the file.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow.cli import ProgressBar, main
from nbflow.text._tables import table_duration
from tests.support.processes import ROOT

THIS = sys.modules[__name__]

#: When set, the pipeline below stops before this item as if its process died (it stays PENDING).
STOP_AT: int | None = None


@nbflow.step(name="tests.cli.double")
def double(x: int) -> int:
    return 2 * x


@nbflow.workflow(name="tests.cli.pipeline")
def pipeline(n: int) -> int:
    total = 0
    for i in range(n):
        if i == STOP_AT:
            raise SystemExit("simulated crash")  # an interrupt: the workflow stays PENDING
        total += double(i)
        nbflow.write_stream("values", {"i": i})
    return total


@nbflow.workflow(name="tests.cli.fails")
def fails() -> None:
    raise ValueError("boom")


# -- helpers ----------------------------------------------------------------------------------


def spawn(db: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``python -m nbflow --db DB ARGS`` as a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NBFLOW_DATABASE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "nbflow", "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=db.parent,
    )


def run(db: Path, *args: str) -> tuple[int, str, str, int]:
    """Run the command in a child process; ``(returncode, stdout, stderr, pid)``."""
    child = spawn(db, *args)
    out, err = child.communicate(timeout=60)
    return child.returncode, out, err, child.pid


def cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    """Run the command in this process; ``(exit status, stdout, stderr)``."""
    code = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> Any:
    code, out, err = cli(capsys, db, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def started_id(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("started demo workflow"))
    return line.split()[3]


@pytest.fixture
def workflows(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database with workflows ``ok`` (SUCCESS), ``failed`` (ERROR), ``interrupted`` (PENDING)."""
    rt = nbflow.configure(db_path)
    with nbflow.set_workflow_id("ok"):
        assert pipeline(3) == 6
    with nbflow.set_workflow_id("failed"), pytest.raises(ValueError, match="boom"):
        fails()
    monkeypatch.setattr(THIS, "STOP_AT", 2)
    with nbflow.set_workflow_id("interrupted"), pytest.raises(SystemExit):
        pipeline(4)
    monkeypatch.setattr(THIS, "STOP_AT", None)
    rt.close()
    return db_path


# -- the demo, in real processes --------------------------------------------------------------


def test_demo_runs_to_the_end(db_path: Path) -> None:
    code, out, err, _ = run(db_path, "demo", "--steps", "30", "--delay", "0.01")
    assert code == 0, err
    assert "demo finished: 30 items, 0 replayed from checkpoints, 30 run now" in out
    assert f"workflow id: {started_id(out)}" in out
    # Not a terminal: plain lines, no carriage returns, and the last one complete.
    assert "\r" not in err
    assert "[##############################] 30/30 100%" in err.splitlines()[-1]
    assert "Traceback" not in err


@pytest.mark.crash
def test_demo_crash_then_resume(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("demo", "--steps", "30", "--delay", "0.01")
    code, out, err, crashed_pid = run(db_path, *args, "--crash-after", "10")
    assert code == -signal.SIGKILL, (out, err)
    workflow_id = started_id(out)
    assert "demo finished" not in out

    code, out, err, resumed_pid = run(db_path, *args)
    assert code == 0, err
    assert f"resuming interrupted demo workflow {workflow_id} ..." in out
    assert "steps run in this process: 20 (items 11-30)" in out  # counted from 1, as the bar
    assert "steps replayed from checkpoints: 10 (items 1-10)" in out
    assert "demo finished: 30 items, 10 replayed from checkpoints, 20 run now" in out
    assert err.splitlines()[-1].startswith("[##############################] 30/30 100%")

    listed = cli_json(capsys, db_path, "list")
    assert [(w["workflow_id"], w["status"]) for w in listed] == [(workflow_id, "SUCCESS")]
    steps = cli_json(capsys, db_path, "steps", workflow_id)
    assert len(steps) == 30
    assert {(s["name"], s["status"], s["attempts"]) for s in steps} == {
        ("nbflow.demo.process", "SUCCESS", 1)
    }
    code, out, err = cli(capsys, db_path, "tail", workflow_id, "results")
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["item"] for r in results] == list(range(30))  # each item exactly once, in order
    assert [r["pid"] for r in results] == [crashed_pid] * 10 + [resumed_pid] * 20
    shown = cli_json(capsys, db_path, "show", workflow_id)
    assert shown["status"] == "SUCCESS"
    assert shown["result"] == {"items": 30}
    assert {(s["key"], s["items"], s["closed"]) for s in shown["streams"]} == {
        ("progress", 30, True),
        ("results", 30, True),
    }


@pytest.mark.crash
def test_recover_resumes_what_it_can(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = workflows
    code, out, err, _ = run(db, "demo", "--steps", "6", "--delay", "0", "--crash-after", "3")
    assert code == -signal.SIGKILL, (out, err)
    demo_id = started_id(out)

    # The child process declares only the demo workflow: it resumes it, and names the other.
    code, out, err, _ = run(db, "recover")
    assert code == 0, err
    assert f"resumed: {demo_id} (nbflow.demo)" in out
    assert f'workflow {demo_id} succeeded: {{"items": 6}}' in out
    assert "not resumed: interrupted (tests.cli.pipeline)" in out
    code, out, err, _ = run(db, "resume", "interrupted")
    assert code == 1
    assert err.startswith("nbflow: error: Workflow 'interrupted' runs the function")
    assert len(err.splitlines()) == 1

    # This process declares the pipeline too.
    code, out, err = cli(capsys, db, "recover")
    assert code == 0, err
    assert "resumed: interrupted (tests.cli.pipeline)" in out
    assert "workflow interrupted succeeded: 12" in out
    assert cli(capsys, db, "recover")[1] == "no interrupted workflows\n"
    assert cli_json(capsys, db, "recover") == {"resumed": [], "not_resumed": []}


def test_demo_in_process(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db_path, "demo", "--steps", "5", "--delay", "0")
    assert code == 0, err
    assert "demo finished: 5 items, 0 replayed from checkpoints, 5 run now" in out
    workflow_id = started_id(out)
    code, out, _ = cli(capsys, db_path, "tail", workflow_id, "progress", "--start", "4")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"done": 5, "total": 5, "message": "item 5"}
    ]


# -- the progress bar -------------------------------------------------------------------------


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, width=10, tty=True, min_interval=0)
    for done in range(1, 5):
        bar.update(done, 4, message=f"item {done}")
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 4
    assert text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("[##########] 4/4 100% ")
    assert "it/s" in last
    assert last.rstrip().endswith("item 4")


def test_progress_bar_prints_a_line_per_tenth_elsewhere() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, width=10, tty=False)
    for done in range(1, 101):
        bar.update(done, 100)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[1] for line in lines] == [
        "1/100",
        *(f"{10 * k}/100" for k in range(1, 11)),
    ]
    assert lines[3].startswith("[###.......] 30/100 30% ")

    out = io.StringIO()
    bar = ProgressBar(out, tty=False)
    bar.update(3, None, "no total")
    bar.close()
    assert out.getvalue() == "3 it no total\n"


# -- the management commands, in this process -------------------------------------------------


def test_list(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "status", "started", "duration", "error"]
    # newest first; PENDING, and nothing runs it: interrupted
    assert lines[2].split()[:3] == ["interrupted", "tests.cli.pipeline", "interrupted"]
    assert [line.split()[2] for line in lines[3:]] == ["failed", "succeeded"]
    assert "ValueError: boom" in next(line for line in lines if line.startswith("failed "))
    listed = cli_json(capsys, workflows, "list")
    assert [w["workflow_id"] for w in listed] == ["interrupted", "failed", "ok"]
    assert [w["status"] for w in listed] == ["PENDING", "ERROR", "SUCCESS"]
    assert listed[1]["error"] == "ValueError: boom"
    assert listed[0]["ended_at"] is None
    assert cli_json(capsys, workflows, "list", "--status", "success") == [listed[2]]
    assert cli_json(capsys, workflows, "list", "--name", "tests.cli.fails") == [listed[1]]
    assert cli_json(capsys, workflows, "list", "--limit", "1") == [listed[0]]
    # --json is accepted before the command too
    assert main(["--json", "--db", str(workflows), "list"]) == 0
    assert json.loads(capsys.readouterr().out) == listed
    assert cli(capsys, workflows, "list", "--name", "nothing")[1] == "(no workflows)\n"


def test_show(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "show", "ok")
    assert code == 0, err
    assert "status       SUCCESS" in out
    assert "result       6" in out
    assert 'inputs       {"args": [3], "kwargs": {}}' in out
    assert out.splitlines()[-1].split() == ["values", "3", "yes"]
    shown = cli_json(capsys, workflows, "show", "ok")
    assert shown["workflow_id"] == "ok"
    assert shown["name"] == "tests.cli.pipeline"
    assert shown["result"] == 6
    assert shown["inputs"] == {"args": [3], "kwargs": {}}
    assert [(s["key"], s["items"], s["closed"]) for s in shown["streams"]] == [("values", 3, True)]

    shown = cli_json(capsys, workflows, "show", "failed")
    assert (shown["status"], shown["error"], shown["result"]) == ("ERROR", "ValueError: boom", None)
    code, out, _ = cli(capsys, workflows, "show", "failed")
    assert "error        ValueError: boom" in out
    assert "result" not in out
    assert "streams:\n  (none)" in out
    shown = cli_json(capsys, workflows, "show", "interrupted")
    assert (shown["status"], shown["ended_at"], shown["streams"][0]["closed"]) == (
        "PENDING",
        None,
        False,
    )


def test_list_hides_nbflow_s_own_workflows_unless_asked(
    workflows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The record keeping of a notebook's durable cells is listed with --all (or by its name)."""
    with nbflow.Runtime(workflows) as rt:
        now = time.time()  # the newest workflow: it takes the first place the list asks for
        rt.record_step("notebook:a.ipynb", "load", None, started=now, ended=now,
                       workflow_name="nbflow.notebook")  # fmt: skip
    assert [w["workflow_id"] for w in cli_json(capsys, workflows, "list", "--limit", "2")] == [
        "interrupted",
        "failed",
    ]
    code, out, err = cli(capsys, workflows, "list")
    assert code == 0, err
    assert "notebook:" not in out and "nbflow.notebook" not in out and "ok" in out
    listed = [w["workflow_id"] for w in cli_json(capsys, workflows, "list", "--all")]
    assert listed == ["notebook:a.ipynb", "interrupted", "failed", "ok"]
    named = cli_json(capsys, workflows, "list", "--name", "nbflow.notebook")
    assert [w["workflow_id"] for w in named] == ["notebook:a.ipynb"]


def test_list_filters(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`nbflow list` takes list_workflows's filters: statuses (repeated or a comma list), name,
    a literal id prefix, times (ISO, epoch seconds, an age), offset, limit, oldest first."""

    def listed(*args: str) -> list[str]:
        return [w["workflow_id"] for w in cli_json(capsys, workflows, "list", *args)]

    assert listed("--status", "success,error") == ["failed", "ok"]
    assert listed("--status", "success", "--status", "PENDING") == ["interrupted", "ok"]
    assert listed("--id-prefix", "o") == ["ok"]
    assert listed("--id-prefix", "_") == []
    assert listed("--name", "tests.cli.fails") == ["failed"]
    assert listed("--oldest-first", "--offset", "1", "--limit", "1") == ["failed"]
    assert listed("--since", "1h") == ["interrupted", "failed", "ok"]
    assert listed("--until", "1h") == []
    assert listed("--since", str(time.time() + 60)) == []
    assert listed("--until", "2999-01-01T00:00:00+00:00") == ["interrupted", "failed", "ok"]
    code, _, err = cli(capsys, workflows, "list", "--since", "soon")
    assert code == 2 and "not a time" in err
    code, _, err = cli(capsys, workflows, "list", "--status", "ok,finished")
    assert code == 2 and "Unknown workflow status 'ok,finished'" in err


def test_status_takes_the_tables_words(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--status failed` as the tables say it, or `ERROR` as the enum says it; prune too."""

    def listed(*args: str) -> list[str]:
        return [w["workflow_id"] for w in cli_json(capsys, workflows, "list", *args)]

    assert listed("--status", "failed") == listed("--status", "ERROR") == ["failed"]
    assert listed("--status", "succeeded,running") == ["interrupted", "ok"]
    assert listed("--status", "Queued,canceled") == []
    code, out, err = cli(capsys, workflows, "list", "--status", "interrupted")
    assert code == 2 and "'running' lists them" in err and "failed (ERROR)" in err, err
    code, out, err = cli(capsys, workflows, "prune", "--older-than", "0.001", "--status", "failed")
    assert code == 0 and out.startswith("removed 1 finished workflow (failed)"), (out, err)
    code, out, err = cli(capsys, workflows, "prune", "--older-than", "1d", "--status", "running")
    assert code == 2 and "Unknown workflow status 'running'" in err, err
    assert "succeeded (SUCCESS), failed (ERROR)" in err, err


def test_stats_as_a_table_and_as_json(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "stats")
    assert code == 0, err
    assert out.splitlines()[0].split() == [
        "step",
        "count",
        "errors",
        "retries",
        "p50",
        "p95",
        "max",
        "total",
    ]
    stats = cli_json(capsys, workflows, "stats")
    assert {s["name"] for s in stats} == {"tests.cli.double"}
    assert stats[0]["count"] == 5 and stats[0]["errors"] == 0
    assert cli_json(capsys, workflows, "stats", "--name", "nope") == []
    assert cli_json(capsys, workflows, "stats", "--until", "1h") == []


def test_steps_json_leaves_the_lazy_output_out(
    workflows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = cli_json(capsys, workflows, "steps", "ok")
    assert steps[0]["ended_at"] and "child_workflow_id" in steps[0]
    assert not [key for key in steps[0] if key.endswith("output")]


def test_hints_name_the_command_in_a_terminal(
    workflows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error's way out is a `nbflow` command in a terminal, and nbflow.…() in Python."""
    code, _, err = cli(capsys, workflows, "steps", "nope")
    assert code == 1
    assert "`nbflow list`" in err and "list_workflows" not in err
    with nbflow.Runtime(workflows) as rt, pytest.raises(nbflow.WorkflowNotFoundError) as info:
        rt.get_workflow("nope")
    assert "nbflow.list_workflows()" in str(info.value) and "`" not in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0.0001, "<1 ms"), (0.35, "350 ms"), (0.9996, "1.00 s"), (61.2, "1 min 01 s")],
)
def test_table_durations_have_units(seconds: float | None, text: str) -> None:
    assert table_duration(seconds) == text


def test_steps(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "steps", "ok")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "#",
        "step",
        "call",
        "argument",
        "status",
        "duration",
        "attempts",
        "error",
    ]
    assert len(lines) == 2 + 3
    assert [line.split()[:7] for line in lines[2:]] == [
        [str(n), "tests.cli.double", str(n), "of", "3", str(n - 1), "succeeded"] for n in (1, 2, 3)
    ]  # each call's argument: the pipeline doubles 0, 1, 2
    steps = cli_json(capsys, workflows, "steps", "ok")
    assert [(s["name"], s["status"], s["attempts"]) for s in steps] == [
        ("tests.cli.double", "SUCCESS", 1)
    ] * 3
    assert [s["function_id"] for s in steps] == sorted(s["function_id"] for s in steps)
    assert cli(capsys, workflows, "steps", "failed")[1] == "(no steps recorded)\n"


@nbflow.workflow(name="tests.cli.many")
def many(n: int) -> list[int]:
    return nbflow.map(double, range(n))


def test_a_long_step_list_folds(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """40 steps: the first and last ten, "… 20 more (--all shows all)" between; --all: all."""
    with nbflow.configure(db_path), nbflow.set_workflow_id("many"):
        many(40)
    code, out, err = cli(capsys, db_path, "steps", "many")
    assert code == 0, err
    lines = out.splitlines()[2:]
    assert len(lines) == 21 and lines[10].split() == ["…", "20", "more", "(--all", "shows", "all)"]
    assert [line.split()[0] for line in lines[:10]] == [str(n) for n in range(1, 11)]
    assert lines[11].split()[:5] == ["31", "tests.cli.double", "31", "of", "40"]
    code, out, err = cli(capsys, db_path, "steps", "many", "--all")
    assert len(out.splitlines()) == 2 + 40 and "more" not in out


def test_timeline_writes_a_self_contained_html_page(
    workflows: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "timeline.html"
    code, out, err = cli(capsys, workflows, "timeline", "ok", "--html", str(page))
    assert code == 0, err
    assert out == f"wrote the timeline of ok (3 steps) to {page}\n"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text and "href" not in text
    svg = ET.fromstring(text[text.index("<svg") : text.index("</svg>") + 6])
    bars = [e for e in svg.iter() if "nbflow-bar" in (e.get("class") or "")]
    assert len(bars) == 1 + 3  # the workflow and its three steps
    ticks = [e for e in svg.iter() if e.get("class") == "nbflow-tick"]
    assert len(ticks) == 3  # its writes to "values"
    code, out, err = cli(capsys, workflows, "timeline", "failed")  # no --html: the SVG
    assert code == 0, err
    svg = ET.fromstring(out)
    assert [e.get("class") for e in svg.iter() if e.get("class") == "nbflow-error-mark"]
    assert cli_json(capsys, workflows, "timeline", "ok", "--html", str(page))["steps"] == 3
    code, out, err = cli(capsys, workflows, "timeline", "ok", "--html", str(tmp_path / "no" / "x"))
    assert (code, out) == (1, "")
    assert err.startswith("nbflow: error: Cannot write the timeline to ") and "folder" in err


def test_tail(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "tail", "ok", "values")
    assert code == 0, err
    assert out == '{"i": 0}\n{"i": 1}\n{"i": 2}\n'
    assert cli(capsys, workflows, "tail", "ok", "values", "--start", "2")[1] == '{"i": 2}\n'
    assert cli(capsys, workflows, "tail", "ok", "unknown-key")[:2] == (0, "")
    # An interrupted workflow may be resumed later: its reader waits, here for a short timeout.
    code, out, err = cli(capsys, workflows, "tail", "interrupted", "values", "--timeout", "0.2")
    assert code == 1
    assert out == '{"i": 0}\n{"i": 1}\n'
    assert err.startswith("nbflow: error: No item arrived on stream 'values'")
    assert len(err.splitlines()) == 1


def test_cancel(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "cancel", "interrupted")
    assert code == 0, err
    assert out == "cancelled workflow interrupted\n"
    assert cli_json(capsys, workflows, "show", "interrupted")["streams"][0]["closed"] is True
    assert cli(capsys, workflows, "cancel", "ok")[1] == (
        "workflow ok already ended (succeeded); nothing to cancel\n"
    )
    assert cli_json(capsys, workflows, "cancel", "interrupted") == {
        "workflow_id": "interrupted",
        "status": "CANCELLED",
        "cancelled": False,
    }


def test_resume(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "resume", "interrupted")
    assert code == 0, err
    assert (
        out
        == "resumed: workflow interrupted (was interrupted)\nworkflow interrupted succeeded: 12\n"
    )
    code, out, _ = cli(capsys, workflows, "tail", "interrupted", "values")
    assert [json.loads(line)["i"] for line in out.splitlines()] == [0, 1, 2, 3]
    assert cli_json(capsys, workflows, "steps", "interrupted")[-1]["name"] == "tests.cli.double"
    assert len(cli_json(capsys, workflows, "steps", "interrupted")) == 4

    code, out, err = cli(capsys, workflows, "resume", "ok")
    assert (code, out) == (
        0,
        "already finished: workflow ok (had succeeded)\nworkflow ok succeeded: 6\n",
    )
    code, out, err = cli(capsys, workflows, "resume", "failed")
    assert code == 1
    assert out == "resumed: workflow failed (had failed)\n"
    assert err == "nbflow: error: workflow failed failed: ValueError: boom\n"
    assert cli_json(capsys, workflows, "list", "--name", "tests.cli.fails")[0]["status"] == "ERROR"
    code, out, _ = cli(capsys, workflows, "resume", "failed", "--json")
    assert code == 1
    assert json.loads(out) == {
        "workflow_id": "failed",
        "error": "ValueError: boom",
        "status": "ERROR",
    }


def test_resume_no_wait(workflows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, workflows, "resume", "interrupted", "--no-wait")
    assert code == 0, err
    assert out.startswith("resumed: workflow interrupted (was interrupted); not waiting")
    # The command's runtime closed at its end: the workflow finished or stopped at a checkpoint.
    status = cli_json(capsys, workflows, "list", "--name", "tests.cli.pipeline")[0]["status"]
    assert status in ("PENDING", "SUCCESS")
    code, out, err = cli(capsys, workflows, "resume", "interrupted")
    assert (code, out.splitlines()[-1]) == (0, "workflow interrupted succeeded: 12"), err
    code, out, _ = cli(capsys, workflows, "tail", "interrupted", "values")
    assert [json.loads(line)["i"] for line in out.splitlines()] == [0, 1, 2, 3]
    assert cli_json(capsys, workflows, "resume", "ok", "--no-wait") == {
        "workflow_id": "ok",
        "status": "SUCCESS",
    }


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["steps", "nope"],
        ["tail", "nope", "values"],
        ["cancel", "nope"],
        ["resume", "nope"],
        ["resume", "nope", "--json"],
        ["timeline", "nope"],
    ],
)
def test_unknown_id(db_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = cli(capsys, db_path, *args)
    assert code == 1
    assert out == ""
    assert err.startswith("nbflow: error: No workflow with id 'nope' in ")
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_errors_in_a_real_process(db_path: Path) -> None:
    code, out, err, _ = run(db_path, "show", "nope")
    assert (code, out) == (1, "")
    assert err.startswith("nbflow: error: No workflow with id 'nope'")
    assert len(err.splitlines()) == 1
    with nbflow.Runtime(db_path):  # holds the file: the child cannot open it
        code, out, err, _ = run(db_path, "list")
    assert (code, out) == (1, "")
    assert err.startswith(f"nbflow: error: The nbflow database {str(db_path)!r} is in use by")
    assert len(err.splitlines()) == 1


def test_usage(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "list", "show", "steps", "timeline", "tail", "cancel", "resume"):
        assert command in out
    assert "--json" in out
    assert main(["bogus"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["list", "--status", "done"]) == 2
    assert main(["demo", "--steps", "0"]) == 2
    assert main(["tail", "x", "k", "--start", "-1"]) == 2
    assert "must be >= 0" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"nbflow {nbflow.__version__}\n"


# -- removing history: prune, delete, compact ---------------------------------------------------


@nbflow.workflow(name="tests.cli.big")
def big(i: int) -> int:
    nbflow.run_step(os.urandom, 200_000)
    return i


def big_file(db: Path, count: int) -> list[str]:
    """``count`` workflows of 200 kB each, made to look 40 days old; their ids."""
    with nbflow.Runtime(db) as rt:
        ids = [rt.start(big, i).workflow_id for i in range(count)]
        for workflow_id in ids:
            rt.get_workflow(workflow_id).result()
        rt.store.sql("UPDATE workflows SET created_at = created_at - 40 * 86400")  # type: ignore[attr-defined]
    return ids


def test_prune_removes_old_workflows_and_shrinks_the_file(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big_file(db_path, 60)
    code, out, err = cli(capsys, db_path, "prune", "--older-than", "30d", "--dry-run")
    assert code == 0, err
    assert out.startswith("would remove 60 finished workflows created before ")
    code, out, err = cli(capsys, db_path, "prune", "--older-than", "50d")
    assert (code, err) == (0, "")
    assert out.startswith("removed 0 finished workflows")
    size = os.stat(db_path).st_size
    code, out, err = cli(capsys, db_path, "prune", "--older-than", "30d", "--status", "success")
    assert code == 0, err
    first, second = out.splitlines()
    assert first.startswith("removed 60 finished workflows (succeeded) created before ")
    assert second.startswith(f"{db_path}: ") and second.endswith(" MB")
    before, after = (float(part.split()[0]) for part in second.split(": ")[1].split(" -> "))
    assert after < 0.3 * before
    assert os.stat(db_path).st_size < 0.3 * size
    with nbflow.Runtime(db_path) as rt:
        assert [w for w in rt.list_workflows() if w.name == "tests.cli.big"] == []


@pytest.mark.parametrize("text", ["30x", "abc", "0", "-1d", "d", ""])
def test_prune_refuses_what_is_not_an_age(
    db_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    code, out, err = cli(capsys, db_path, "prune", f"--older-than={text}")
    assert code == 2 and out == ""
    assert "is not an age" in err and "30d, 12h, 45m, 90s" in err


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("45m", 2700), ("90s", 90), ("7", 7)]
)
def test_ages(text: str, seconds: float) -> None:
    from nbflow.cli._retention import age

    assert age(text) == seconds


def test_delete_with_and_without_children(
    workflows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, workflows, "delete", "ok")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "removed workflow ok"
    code, out, err = cli(capsys, workflows, "delete", "ok")
    assert code == 1 and "nbflow: error: No workflow with id 'ok'" in err
    code, out, err = cli(capsys, workflows, "delete", "interrupted", "--children")
    assert code == 1 and "is PENDING (not finished), so nothing was deleted" in err
    assert "`nbflow cancel interrupted`" in err
    assert [w["workflow_id"] for w in cli_json(capsys, workflows, "list")] == [
        "interrupted",
        "failed",
    ]


def test_compact(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = big_file(db_path, 40)
    with nbflow.Runtime(db_path) as rt:
        for workflow_id in ids[1:]:
            rt.delete_workflow(workflow_id)
        rt.close(compact=False)
    size = os.stat(db_path).st_size
    code, out, err = cli(capsys, db_path, "compact")
    assert code == 0, err
    assert out.startswith(f"{db_path}: ")
    assert os.stat(db_path).st_size < 0.3 * size
    with nbflow.Runtime(db_path) as rt:
        assert rt.get_workflow(ids[0]).result() == 0
