"""Durable cells (``%%nbflow step NAME``): what a cell reads, its key, running, recording and
restoring it, in a real InteractiveShell; then a notebook run four times by nbclient, each time in
a fresh kernel on one database.
"""

from __future__ import annotations

import ast
import pickle
import re
import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

import nbflow
from nbflow.notebook import _cells
from tests.notebook import test_magics
from tests.notebook.test_magics import Run
from tests.support.kernels import venv_kernel

shell = test_magics.shell  # the fixtures: a real InteractiveShell, and running a cell in it
run = test_magics.run

CALLS: list[str] = []
RESTORED = re.compile(
    r"nbflow: step '(\w+)' restored in (\d+\.\d\d) s from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d; "
    r"took \d+\.\d\d s originally\n"
)


def bump(name: str) -> None:
    """The side effect that shows a cell really ran."""
    CALLS.append(name)


@pytest.fixture(autouse=True)
def calls(shell: InteractiveShell) -> list[str]:
    CALLS.clear()
    shell.user_ns["bump"] = bump
    return CALLS


def ran_note(name: str) -> str:
    return f"nbflow: step {name!r} ran in "


def split_note(text: str) -> tuple[str, str]:
    """What a cell printed on stdout, and nbflow's note (its last line) after it."""
    body, _, note = text.rstrip("\n").rpartition("\n")
    return (body + "\n" if body else ""), note + "\n"


# -- what a cell reads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("x = y + 1", {"y"}),
        ("y = 1\nx = y", set()),
        ("x = x + 1", {"x"}),
        ("for i in range(n):\n    total += i", {"range", "n", "total"}),
        ("ok = [a for a in items if a > limit]", {"items", "limit"}),
        ("f = lambda q: q + k", {"k"}),
        ("def f(a, b=default):\n    c = a\n    return c + g(b)", {"default", "g"}),
        ("def f():\n    return f()", set()),
        ("with open(p) as fh:\n    data = fh.read()", {"open", "p"}),
        ("df['c'] = df['a'] * 2", {"df"}),
        ("import os.path\nos.getcwd()", set()),
        ("try:\n    pass\nexcept E as e:\n    print(e)", {"E", "print"}),
        ("(n := 3)\nprint(n)", {"print"}),
        ("class C(Base):\n    attr = value\n    other = attr", {"Base", "value"}),
        ("def f():\n    global g\n    g = 2\n    return h", {"h"}),
        ("del old", {"old"}),
        ("match v:\n    case [a, *rest]:\n        print(a, rest)", {"v", "print"}),
        ("get_ipython().run_line_magic('time', 'y = f(x)')", {"get_ipython", "f", "x"}),
        ("get_ipython().run_line_magic('cd', 'x')", {"get_ipython"}),
    ],
)
def test_reads(source: str, reads: set[str]) -> None:
    assert _cells.analyze(ast.parse(source)).reads == reads


def test_mutated_and_with_targets() -> None:
    names = _cells.analyze(ast.parse("df['c'] = 1\nobj.attr.x = 2\nwith a() as (f, g):\n    pass"))
    assert names.mutated == {"df", "obj"}
    assert names.with_targets == {"f", "g"}


def test_pipeline_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/work/analysis.ipynb")
    assert _cells.pipeline_id() == "notebook:analysis.ipynb"
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.chdir(tmp_path)
    assert _cells.pipeline_id() == f"notebook:{tmp_path.name}"


# -- running and restoring, in one shell ------------------------------------------------------

LOAD = (
    "%%nbflow step load\n"
    "bump('load')\n"
    "data = [1, 2, 3]\n"
    "print('loaded', len(data))\n"
    "from IPython.display import HTML, display\n"
    "display(HTML('<b>shown</b>'))\n"
    "len(data)\n"
)


def test_miss_then_hit(shell: InteractiveShell, run: Run, calls: list[str]) -> None:
    first = run(LOAD)
    assert first.ok and calls == ["load"]
    printed, note = split_note(first.printed)
    assert printed == "loaded 3\n" and first.stderr == ""  # a cell that worked is not pink
    assert note.startswith(ran_note("load")) and note.endswith("; recorded\n")
    assert first.mime("text/html") == ["<b>shown</b>"] and first.result.result == 3
    del shell.user_ns["data"]
    second = run(LOAD)
    assert second.ok and calls == ["load"], "restored, not run"
    assert shell.user_ns["data"] == [1, 2, 3]
    printed, note = split_note(second.printed)
    assert printed == "loaded 3\n" and second.stderr == ""
    assert RESTORED.fullmatch(note), note
    assert second.outputs == first.outputs  # the HTML
    assert repr(second.result.result) == "3"  # shown as Out[n], as the value was
    assert run("%%nbflow step load --force\n" + LOAD.split("\n", 1)[1]).ok
    assert calls == ["load", "load"]


def test_changes_upstream_rerun_dependents(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    run("n = 3")
    load = "%%nbflow step load\nbump('load')\ndata = list(range(n))"
    total = "%%nbflow step total\nbump('total')\ntotal = sum(data)"
    for _ in range(2):
        assert run(load).ok and run(total).ok
    assert calls == ["load", "total"] and shell.user_ns["total"] == 3
    run("n = 4")  # a plain value it reads
    assert run(load).ok and run(total).ok
    assert calls[2:] == ["load", "total"] and shell.user_ns["total"] == 6
    assert run(load.replace("range(n)", "range(n + 1)")).ok  # upstream source
    assert run(total).ok
    assert calls[4:] == ["load", "total"] and shell.user_ns["total"] == 10
    assert run(total.replace("sum(data)", "sum(data) * 2")).ok  # its own source
    assert calls[6:] == ["total"] and shell.user_ns["total"] == 20
    run("data = [100]")  # a plain cell replaces what a durable cell made
    assert run(total).ok and shell.user_ns["total"] == 100
    assert calls[7:] == ["total"]


def test_names_it_binds_first_are_not_inputs(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    run("i = 5")
    cell = "%%nbflow step loop\nbump('loop')\nfor i in range(2):\n    pass\nlooped = i"
    assert run(cell).ok
    run("i = 6")
    assert run(cell).ok and calls == ["loop"]


def test_functions_it_calls(shell: InteractiveShell, run: Run, calls: list[str]) -> None:
    run("def scale(v):\n    return v * 2")
    cell = "%%nbflow step scaled\nbump('scaled')\n%time y = scale(3)\ny"  # (seen inside %time)
    for _ in range(2):
        assert run(cell).ok
    assert calls == ["scaled"] and shell.user_ns["y"] == 6
    run("def scale(v):\n    return v * 3")  # a function from a plain cell, changed
    assert run(cell).ok and calls == ["scaled", "scaled"] and shell.user_ns["y"] == 9


def test_what_a_cell_made_itself_is_not_its_input(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    cell = "%%nbflow step itself\nbump('itself')\nexec('z = 5')\nw = z + 1"  # z: unseen
    for _ in range(2):
        assert run(cell).ok
    assert calls == ["itself"] and shell.user_ns["w"] == 6


def test_syntax_errors_and_top_level_await(run: Run, calls: list[str]) -> None:
    ran = run("%%nbflow step bad\nx = = 1")
    assert isinstance(ran.result.error_in_exec, SyntaxError)
    ran = run("%%nbflow step waits\nimport asyncio\nx = await asyncio.sleep(0)")
    assert isinstance(ran.result.error_in_exec, SyntaxError)
    assert "await in a plain cell" in str(ran.result.error_in_exec)
    assert "(none)" in run("%nbflow steps").mime("text/plain")[0]


def test_unpicklable_variable_warns_and_reruns(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    cell = "%%nbflow step gen\nbump('gen')\ngen = (i for i in range(3))\nfine = 1"
    first = run(cell)
    assert first.ok and "NOT recorded" in first.stderr
    assert "'gen' (TypeError: cannot pickle 'generator' object)" in first.stderr
    assert "fine" not in first.stderr
    assert run(cell).ok and calls == ["gen", "gen"], "nothing half-restored: it ran again"


def test_with_targets_that_cannot_be_pickled_are_left_out(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    cell = "%%nbflow step write\nbump('write')\nwith open('f.txt', 'w') as fh:\n    fh.write('x')\nwritten = True"  # fmt: skip
    assert run(cell).ok
    del shell.user_ns["written"], shell.user_ns["fh"]
    assert run(cell).ok and calls == ["write"]
    assert shell.user_ns["written"] is True and "fh" not in shell.user_ns


def test_a_cell_that_raises_records_nothing(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    cell = "%%nbflow step boom\nbump('boom')\npartial = 1\n1 / 0\n"
    first = run(cell)
    assert isinstance(first.result.error_in_exec, ZeroDivisionError)
    assert "----> 4 1 / 0" in first.stdout  # the cell's own line, numbered as in the cell
    assert "nbflow: step" not in first.stderr + first.stdout
    assert isinstance(run(cell).result.error_in_exec, ZeroDivisionError)
    assert calls == ["boom", "boom"]
    assert "boom" not in run("%nbflow steps").mime("text/html")[0]


def test_a_restart_restores_imports_functions_classes_and_instances(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    cell = (
        "%%nbflow step model\n"
        "bump('model')\n"
        "import math as m\n"
        "class Point:\n"
        "    def __init__(self, x):\n"
        "        self.x = x\n"
        "def norm(p):\n"
        "    return m.sqrt(p.x)\n"
        "p = Point(16)\n"
        "mod = m\n"
    )
    assert run(cell).ok
    for name in ["m", "Point", "norm", "p", "mod"]:  # as a new kernel would be
        del shell.user_ns[name]
    _cells._states.pop(shell)
    assert run(cell).ok and calls == ["model"]
    assert run("result = norm(p)").ok and shell.user_ns["result"] == 4.0
    assert type(shell.user_ns["p"]) is shell.user_ns["Point"]
    assert shell.user_ns["mod"] is shell.user_ns["m"]


def test_semicolon_and_display_updates(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    cell = (
        "%%nbflow step shown\n"
        "bump('shown')\n"
        "h = display('first', display_id=True)\n"
        "h.update('second')\n"
        "print('printed')\n"
        "h = None\n"
        "42;\n"
    )
    first = run(cell)
    assert first.ok and first.mime("text/plain") == ["'first'", "'second'"]  # shown, updated
    assert first.result.result is None  # 42; shows nothing
    second = run(cell)
    assert second.ok and calls == ["shown"]
    assert second.mime("text/plain") == ["'second'"]  # the display as it ended
    assert split_note(second.printed)[0] == "printed\n" and second.result.result is None


def test_inline_figures_are_recorded(shell: InteractiveShell, run: Run, calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    inline = types.ModuleType("matplotlib_inline.backend_inline")  # shows figures after a cell
    drawn: list[str] = []

    def flush_figures() -> None:
        from IPython.display import display

        while drawn:
            display({"image/png": drawn.pop(), "text/plain": "<Figure>"}, raw=True)

    inline.flush_figures = flush_figures  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, inline.__name__, inline)
    shell.user_ns["draw"] = drawn.append
    cell = "%%nbflow step plot\nbump('plot')\ndraw('iVBORw0KGgo=')"
    first = run(cell)
    assert first.ok and first.mime("image/png") == ["iVBORw0KGgo="]
    second = run(cell)
    assert second.ok and calls == ["plot"] and second.mime("image/png") == ["iVBORw0KGgo="]


def test_steps_show_the_pipeline(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    assert "(none)" in run("%nbflow steps").mime("text/plain")[0]
    run("%%nbflow step first\nx = 1")
    run("%%nbflow step second\ny = x + 1")
    run("%%nbflow step second\ny = x + 1")
    ran = run("%nbflow steps")
    (text,) = ran.mime("text/plain")
    assert text.startswith(f"steps of {_cells.pipeline_id()}\n")
    assert [line.split()[1] for line in text.splitlines()[3:]] == ["first", "second"]
    assert "<table>" in ran.mime("text/html")[0]
    assert run("%nbflow steps --pipeline").mime("text/plain") == [text]


def test_a_runtime_that_refuses_pickle(db_path: Path, shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    nbflow.configure(db_path, allow_pickle=False)
    cell = "%%nbflow step plain\nbump('plain')\nx = 1"
    first = run(cell)
    assert first.ok and "NOT recorded" in first.stderr and "allow_pickle=False" in first.stderr
    assert run(cell).ok and calls == ["plain", "plain"]


# -- records: the JSON apart from the pickle -----------------------------------------------------


def test_a_restore_unpickles_only_the_record_it_restores(shell: InteractiveShell, run: Run, calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Three versions of a cell are recorded; restoring the oldest reads the newer two's JSON
    only: one ``pickle.loads`` in all (before, each newer record was unpickled whole to read its
    key, the variables' pickle inside it)."""
    versions = [f"%%nbflow step load\nbump('load')\nblob = bytes({n}) * 100_000" for n in (1, 2, 3)]
    for cell in versions:
        assert run(cell).ok
    loads: list[int] = []
    real_loads = pickle.loads

    def counting_loads(data: bytes, *args: Any, **kwargs: Any) -> Any:
        loads.append(len(data))
        return real_loads(data, *args, **kwargs)

    monkeypatch.setattr(pickle, "loads", counting_loads)
    del shell.user_ns["blob"]
    restored = run(versions[0])
    assert restored.ok and calls == ["load"] * 3, "restored, not run"
    assert shell.user_ns["blob"] == bytes(1) * 100_000
    assert len(loads) == 1 and loads[0] >= 100_000, loads  # its variables, once
    assert RESTORED.fullmatch(split_note(restored.stdout)[1])


def test_records_written_before_are_restored(shell: InteractiveShell, run: Run, calls: list[str], rt: nbflow.Runtime) -> None:  # fmt: skip
    """A record of the earlier form (one pickled dict, the variables pickled inside it) still
    restores the cell."""
    body = "bump('old')\nold = {'a': 1}\nprint('made')"
    key = _cells.cells_for(shell).key("old", body, {"bump", "print"})
    record = {
        "key": key, "variables": pickle.dumps({"old": {"a": 1}}), "modules": {},
        "outputs": [["stream", "stdout", "made\n"]], "result": None, "duration": 0.5,
    }  # fmt: skip
    rt.record_step(_cells.pipeline_id(), "old", record, started=1.0, ended=1.5, workflow_name="nbflow.notebook")  # fmt: skip
    ran = run("%%nbflow step old\n" + body)
    assert ran.ok and calls == [] and shell.user_ns["old"] == {"a": 1}
    printed, note = split_note(ran.stdout)
    assert printed == "made\n" and RESTORED.fullmatch(note) and "took 0.50 s" in note


def test_restore_time_is_in_the_note(shell: InteractiveShell, run: Run, calls: list[str]) -> None:  # fmt: skip
    """The note tells how long the restore took (what the cell did, not a guess): a restore that
    had to import a slow module first takes at least as long as that import."""
    (package := Path.cwd() / "slowmod").mkdir()
    (package / "__init__.py").write_text("import time\ntime.sleep(0.2)\n")
    sys.path.insert(0, str(Path.cwd()))
    try:
        cell = "%%nbflow step slow\nbump('slow')\nimport slowmod\nvalue = 1"
        assert run(cell).ok
        sys.modules.pop("slowmod")
        restored = run(cell)
    finally:
        sys.path.remove(str(Path.cwd()))
        sys.modules.pop("slowmod", None)
    match = RESTORED.fullmatch(split_note(restored.stdout)[1])
    assert match and calls == ["slow"] and float(match.group(2)) >= 0.2, restored.stdout


def test_outputs_are_kept_as_json() -> None:
    from nbflow.notebook._recording import json_outputs

    kept = json_outputs([
        ["stream", "stdout", "text\n"],
        ["display", {"image/png": b"\x89PNG", "text/plain": "<Figure>"}, {"size": (3, 4)}],
        ["display", {"application/json": {"v": float("nan")}, "text/plain": "nan"}, {}],
        [{"text/plain": "(1, 2)"}, {}],
    ])  # fmt: skip
    assert kept == [
        ["stream", "stdout", "text\n"],
        ["display", {"image/png": "iVBORw==", "text/plain": "<Figure>"}, {"size": [3, 4]}],
        ["display", {"text/plain": "nan"}, {}],  # not JSON: its text only
        [{"text/plain": "(1, 2)"}, {}],
    ]


@pytest.mark.contract
def test_record_step_keeps_a_pickle_beside_its_json(rt: nbflow.Runtime, database: str) -> None:
    """``record_step(pickled=...)``: ``recorded_steps`` reads the JSON only, ``recorded_pickle``
    the bytes of one step; steps recorded whole (pickled) still read as before."""
    assert rt.record_step("rec", "a", {"k": 1}, started=1.0, ended=2.0, pickled=b"one") == 1
    assert rt.record_step("rec", "a", (1, 2), started=2.0, ended=3.0) == 2  # pickled whole
    assert rt.record_step("rec", "b", {"k": 3}, started=3.0, ended=4.0) == 3
    assert list(rt.recorded_steps("rec", "a", newest_first=True)) == [
        (2, "a", (1, 2), 2.0, 3.0),
        (1, "a", {"k": 1}, 1.0, 2.0),
    ]
    assert [s[2] for s in rt.recorded_steps("rec")] == [{"k": 1}, (1, 2), {"k": 3}]
    assert rt.recorded_pickle("rec", 1) == b"one"
    assert rt.recorded_pickle("rec", 3) is None and rt.recorded_pickle("rec", 99) is None
    with pytest.raises(nbflow.SerializationError, match="must be JSON-native"):
        rt.record_step("rec", "a", (1,), started=5.0, ended=6.0, pickled=b"x")
    assert [s.name for s in rt.list_steps("rec")] == ["a", "a", "b"], "nothing was written"
    heads = rt.store.list_steps("rec", outputs=False)  # a listing reads no values
    assert [(h.function_id, h.output_json, h.output_pickle) for h in heads] == [
        (1, None, None), (2, None, None), (3, None, None)
    ]  # fmt: skip
    assert rt.store.list_steps("rec")[0][3:5] == ('{"k":1}', b"one")


def test_record_step_pickle_under_allow_pickle_false(db_path: Path) -> None:
    rt = nbflow.configure(db_path)
    rt.record_step("rec", "a", {"k": 1}, started=1.0, ended=2.0, pickled=b"one")
    rt.close()
    strict = nbflow.configure(db_path, allow_pickle=False)
    assert [s[2] for s in strict.recorded_steps("rec")] == [{"k": 1}]  # the JSON reads
    with pytest.raises(nbflow.SerializationError, match="allow_pickle=False"):
        strict.recorded_pickle("rec", 1)
    with pytest.raises(nbflow.SerializationError, match="allow_pickle=False"):
        strict.record_step("rec", "a", {"k": 2}, started=2.0, ended=3.0, pickled=b"two")


# -- two fresh kernels ------------------------------------------------------------------------

NOTEBOOK = [
    "%load_ext nbflow",
    "%%nbflow step load\n"
    "with open('side.txt', 'a') as f:\n"
    "    f.write('load\\n')\n"
    "data = list(range(5))\n"
    "print('loaded', len(data))",
    "%%nbflow step total\n"
    "with open('side.txt', 'a') as f:\n"
    "    f.write('total\\n')\n"
    "total = sum(data)\n"
    "total",
    "print('check', data, total)",
    "%nbflow steps",
]


def execute(cells: list[str], cwd: Path, kernel: str) -> list[dict[str, str]]:
    """Run a notebook of ``cells`` in a fresh kernel; each cell's text by output kind."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name=kernel, timeout=60, resources={"metadata": {"path": str(cwd)}}).execute()  # fmt: skip
    texts = []
    for cell in nb.cells:
        text: dict[str, str] = {}
        for out in cell.outputs:
            kind = out.get("name") or out["output_type"]
            text[kind] = text.get(kind, "") + (out.get("text") or out.get("data", {}).get("text/plain", ""))  # fmt: skip
        texts.append(text)
    return texts


@pytest.mark.kernel
def test_a_notebook_run_again_in_fresh_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    kernel = venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NBFLOW_DATABASE", str(tmp_path / "notebook.duckdb"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    side = tmp_path / "side.txt"

    out = execute(NOTEBOOK, tmp_path, kernel)
    assert side.read_text().split() == ["load", "total"]
    assert "stderr" not in out[1] and "stderr" not in out[2], "a cell that worked is not pink"
    printed, note = split_note(out[1]["stdout"])
    assert printed == "loaded 5\n" and note.startswith(ran_note("load"))
    assert out[2]["execute_result"] == "10" and out[3]["stdout"] == "check [0, 1, 2, 3, 4] 10\n"

    again = execute(NOTEBOOK, tmp_path, kernel)
    assert side.read_text().split() == ["load", "total"], "the durable cells did not run"
    assert "stderr" not in again[1] and "stderr" not in again[2]
    printed, note = split_note(again[1]["stdout"])
    assert printed == "loaded 5\n" and RESTORED.fullmatch(note), note
    assert again[2]["execute_result"] == "10" and RESTORED.fullmatch(again[2]["stdout"])
    assert again[3] == out[3]

    edited = [*NOTEBOOK[:2], NOTEBOOK[2].replace("sum(data)", "sum(data) * 2"), *NOTEBOOK[3:]]
    out = execute(edited, tmp_path, kernel)
    assert side.read_text().split() == ["load", "total", "total"]
    assert RESTORED.fullmatch(split_note(out[1]["stdout"])[1]) and out[2]["execute_result"] == "20"

    upstream = [NOTEBOOK[0], NOTEBOOK[1].replace("range(5)", "range(6)"), *edited[2:]]
    out = execute(upstream, tmp_path, kernel)
    assert side.read_text().split() == ["load", "total", "total", "load", "total"]
    assert out[3]["stdout"] == "check [0, 1, 2, 3, 4, 5] 30\n"
    steps = out[4]["display_data"].splitlines()
    assert steps[0] == "steps of notebook:analysis.ipynb"
    assert [line.split()[1] for line in steps[3:]] == ["load", "total", "total", "load", "total"]
