"""``%nbflow why NAME``: why a durable cell last ran, in a real InteractiveShell on a DuckDB file.

Each case runs cells, asks ``%nbflow why``, and checks the reasons it gives: never run, the
source, an input's value, an upstream cell that re-ran, a new input and one gone, ``--force``, a
restore, a restart (the reasons come from the records), a record of an older nbflow, a name that
is no durable cell, and wrong arguments.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbflow
from nbflow.notebook import _cells
from tests.notebook import test_magics
from tests.notebook.test_magics import Run, assert_usage_error

shell = test_magics.shell  # the fixtures: a real InteractiveShell, and running a cell in it
run = test_magics.run

RAN_NOTE = re.compile(r"nbflow: step '(\w+)' ran in \d+\.\d\d s; recorded\n")
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
LOAD = "%%nbflow step load\ndata = list(range(n))"
TOTAL = "%%nbflow step total\ntotal = sum(data)"


def why(run: Run, name: str) -> str:
    """What ``%nbflow why NAME`` printed."""
    ran = run(f"%nbflow why {name}")
    assert ran.ok and ran.stderr == "", ran.stderr
    return ran.stdout


def ran_here(name: str, *reasons: str) -> str:
    """The pattern of the answer for a cell that ran in this kernel for these reasons."""
    return _answer(f"step `{name}` ran in this kernel at {TIME}", reasons)


def ran_before(name: str, *reasons: str) -> str:
    """The pattern of the answer, from the records, for a cell that has not run in this kernel."""
    head = f"step `{name}` has not run in this kernel; its last run, recorded at {TIME}, ran"
    return _answer(head, reasons)


def _answer(head: str, reasons: tuple[str, ...]) -> str:
    if len(reasons) == 1:
        return f"{head} because {re.escape(reasons[0])}\\.\n"
    return f"{head} because:\n" + "".join(f"  - {re.escape(r)}\n" for r in reasons)


def records(rt: nbflow.Runtime, name: str) -> list[dict[str, Any]]:
    """The JSON records of a cell, oldest first."""
    return [out for _, _, out, _, _ in rt.recorded_steps(_cells.pipeline_id(), name)]


def restart(shell: InteractiveShell) -> None:
    """As a new kernel on the same database: the cells object starts afresh."""
    _cells._states.pop(shell, None)


def never(pipeline: str) -> str:
    """The reason of a cell's first run."""
    return f"it had never run before (no earlier run of it is recorded in {pipeline})"


# -- why a cell ran in this kernel ---------------------------------------------------------------


def test_never_run_before_and_the_note_is_unchanged(
    shell: InteractiveShell, run: Run, rt: nbflow.Runtime
) -> None:
    run("n = 3")
    first = run(LOAD)
    assert first.ok and RAN_NOTE.fullmatch(first.stdout), first.stdout  # one line, as before
    assert re.fullmatch(ran_here("load", never(_cells.pipeline_id())), why(run, "load"))
    (record,) = records(rt, "load")
    parts = record["parts"]
    assert parts["forced"] is False and len(parts["source"]) == 64
    assert [i[:2] for i in parts["inputs"]] == [["n", "value"]]


def test_source_changed(run: Run) -> None:
    run("n = 3")
    assert run(LOAD).ok
    assert run(LOAD.replace("range(n)", "range(n + 1)")).ok
    assert re.fullmatch(ran_here("load", "the source changed"), why(run, "load"))


def test_an_input_changed_value(run: Run) -> None:
    run("n = 3")
    assert run(LOAD).ok
    run("n = 4")
    assert run(LOAD).ok
    assert re.fullmatch(ran_here("load", "input `n` changed value"), why(run, "load"))


def test_an_input_from_an_upstream_cell_that_reran(run: Run, rt: nbflow.Runtime) -> None:
    run("n = 3")
    assert run(LOAD).ok and run(TOTAL).ok
    run("n = 4")
    assert run(LOAD).ok and run(TOTAL).ok
    upstream = "input `data` changed: it now comes from step `load` which re-ran"
    assert re.fullmatch(ran_here("total", upstream), why(run, "total"))
    assert re.fullmatch(ran_here("load", "input `n` changed value"), why(run, "load"))
    inputs = records(rt, "total")[-1]["parts"]["inputs"]
    assert [(i[0], i[1], i[3]) for i in inputs] == [("data", "cell", "load")]
    assert inputs[0][2] == records(rt, "load")[-1]["key"]  # the producer's key


def test_a_new_input_and_one_no_longer_read(run: Run) -> None:
    guarded = "try:\n    y = k\nexcept NameError:\n    y = 0"  # k: an input while it is defined
    assert run("%%nbflow step new\n" + guarded).ok  # k is not defined: not an input
    run("k = 5")
    assert run("%%nbflow step new\n" + guarded).ok
    assert re.fullmatch(ran_here("new", "input `k` is a new input"), why(run, "new"))
    assert run("%%nbflow step gone\n" + guarded).ok
    run("del k")
    assert run("%%nbflow step gone\n" + guarded).ok
    assert re.fullmatch(ran_here("gone", "`k` is no longer an input"), why(run, "gone"))


def test_several_reasons(run: Run) -> None:
    run("n = 3\nm = 1")
    assert run(LOAD).ok
    run("n = 4")
    assert run("%%nbflow step load --force\ndata = list(range(n + m))").ok
    expected = ran_here(
        "load",
        "it was forced (`--force`)",
        "the source changed",
        "input `m` is a new input",
        "input `n` changed value",
    )
    assert re.fullmatch(expected, why(run, "load"))


def test_forced(run: Run, rt: nbflow.Runtime) -> None:
    run("n = 3")
    assert run(LOAD).ok
    forced = run(LOAD.replace("load", "load --force", 1))
    assert forced.ok and RAN_NOTE.fullmatch(forced.stdout), forced.stdout
    assert re.fullmatch(ran_here("load", "it was forced (`--force`)"), why(run, "load"))
    assert [r["parts"]["forced"] for r in records(rt, "load")] == [False, True]


def test_restored_nothing_changed(run: Run) -> None:
    run("n = 3")
    assert run(LOAD).ok
    assert run(LOAD).ok  # restored
    restored = f"step `load` was restored in this kernel \\(its key matched the run recorded at {TIME}\\): nothing changed\\.\n"
    assert re.fullmatch(restored, why(run, "load"))


def test_an_upstream_cell_restored_from_another_run(run: Run) -> None:
    run("n = 3")
    assert run(LOAD).ok and run(TOTAL).ok
    run("n = 4")
    assert run(LOAD).ok  # total not run with it
    run("n = 3")
    assert run(LOAD).ok  # restored: its first run
    run("n = 4")
    assert run(LOAD).ok  # restored: its second run
    assert run(TOTAL).ok  # runs: no record of it with load's second run
    changed = "input `data` changed: it now comes from step `load` which was restored from another of its runs"
    assert re.fullmatch(ran_here("total", changed), why(run, "total"))


# -- after a restart: from the records -----------------------------------------------------------


def test_after_a_restart_the_reason_comes_from_the_records(
    shell: InteractiveShell, run: Run
) -> None:
    run("n = 3")
    assert run(LOAD).ok and run(TOTAL).ok
    run("n = 4")
    assert run(LOAD).ok and run(TOTAL).ok
    assert run("%%nbflow step once\nz = 1").ok
    restart(shell)
    upstream = "input `data` changed: it now comes from step `load` which re-ran"
    assert re.fullmatch(ran_before("total", upstream), why(run, "total"))
    assert re.fullmatch(ran_before("load", "input `n` changed value"), why(run, "load"))
    assert re.fullmatch(ran_before("once", never(_cells.pipeline_id())), why(run, "once"))
    assert run(LOAD).ok  # restored in the new kernel: that is what it says now
    assert "was restored in this kernel" in why(run, "load")


# -- records of an older nbflow, keys computed otherwise -----------------------------------------


def _record_old(rt: nbflow.Runtime, name: str, key: str, **more: Any) -> None:
    """Record a run as an older nbflow did: its key, no parts."""
    record = {"key": key, "pickled": False, "modules": {}, "outputs": [], "result": None}
    record.update(duration=0.5, **more)
    rt.record_step(
        _cells.pipeline_id(), name, record, started=1.0, ended=1.5, workflow_name="nbflow.notebook"
    )


def test_a_record_of_an_older_nbflow(shell: InteractiveShell, run: Run, rt: nbflow.Runtime) -> None:
    _record_old(rt, "old", "a key of another source")
    restart(shell)
    older = f"step `old` has not run in this kernel; its last run, recorded at {TIME}, was recorded by an older nbflow: no details of why it ran\\.\n"
    assert re.fullmatch(older, why(run, "old"))
    assert run("%%nbflow step old\nw = 1").ok
    changed = "the cell's key changed (recorded by an older nbflow: no details)"
    assert re.fullmatch(ran_here("old", changed), why(run, "old"))
    restart(shell)
    assert re.fullmatch(ran_before("old", changed), why(run, "old"))


def test_the_same_parts_under_another_key(
    shell: InteractiveShell, run: Run, rt: nbflow.Runtime
) -> None:
    body = "w = 1"
    parts = _cells.cells_for(shell).parts("same", body, set())
    kept = {"source": parts.source_digest, "inputs": [], "forced": False}
    _record_old(rt, "same", "a key computed otherwise", parts=kept)
    assert run("%%nbflow step same\n" + body).ok
    assert "though its source and inputs did not" in why(run, "same")


# -- not a durable cell; wrong arguments ---------------------------------------------------------


def test_neither_a_durable_cell_nor_a_cached_step(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("n = 3")
    assert run(LOAD).ok and run(TOTAL).ok
    neither = (
        "`nothing` is neither a durable cell of this notebook nor a cached step "
        f"(the durable cells of {_cells.pipeline_id()}: `load`, `total`).\n"
    )
    monkeypatch.delattr(nbflow, "why", raising=False)
    assert why(run, "nothing") == neither

    def unknown(step: Any, *args: Any, **kwargs: Any) -> str:
        raise nbflow.NbflowError(f"no cached step {step!r}")

    monkeypatch.setattr(nbflow, "why", unknown, raising=False)
    assert why(run, "nothing") == neither


def test_a_cached_step_is_asked_of_nbflow_why(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []

    def cached(step: Any, *args: Any, **kwargs: Any) -> str:
        asked.append(step)
        return f"step {step!r} missed: its argument changed"

    monkeypatch.setattr(nbflow, "why", cached, raising=False)
    assert why(run, "fetch") == "step 'fetch' missed: its argument changed\n"
    assert asked == ["fetch"]
    run("n = 3")
    assert run(LOAD).ok
    assert "ran in this kernel" in why(run, "load") and asked == ["fetch"]  # a cell: not asked


def test_nothing_recorded_yet(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(nbflow, "why", raising=False)
    assert "(the durable cells of" in why(run, "load") and "none yet" in why(run, "load")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("%nbflow why", ["usage: %nbflow why [-h] NAME", "required: NAME"]),
        (
            "%nbflow why load total",
            ["usage: %nbflow why [-h] NAME", "unrecognized arguments: total"],
        ),
        ("%nbflow why --bogus load", ["usage: %nbflow why [-h] NAME", "unrecognized arguments"]),
        ("%%nbflow why load\nx = 1", ["is a line magic"]),
    ],
)
def test_wrong_arguments_show_the_usage_line(run: Run, line: str, words: list[str]) -> None:
    assert_usage_error(run(line), *words)


def test_help_lists_why() -> None:
    from nbflow.notebook._magics import NbflowMagics

    assert "%nbflow why NAME" in (NbflowMagics.nbflow.__doc__ or "")


def test_a_cached_step_of_the_notebook_by_its_short_name(run: Run, rt: nbflow.Runtime) -> None:
    """The real nbflow.why: ``%nbflow why fetch`` for the notebook's cached step ``fetch``."""
    assert run("import nbflow\n@nbflow.step(cache=True)\ndef fetch(url):\n    return url * 2").ok
    assert run("fetch('a')").ok
    said = why(run, "fetch")
    assert "the last call of step 'fetch' ran: never run" in said, said
    assert run("fetch('a')").ok
    assert "did not run: it took the result kept" in why(run, "fetch")
