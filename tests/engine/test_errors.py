"""The error tree: every error exported, rooted at NbflowError, carrying its ids, saying what to do."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nbflow
import nbflow._dberrors as dberrors_module
import nbflow._errors as errors_module
import nbflow.text._hints as hints_module
from tests.support.helpers import nbflow_threads, sql, wait_until

pytestmark = pytest.mark.contract

ERROR_CLASSES: list[type[BaseException]] = [
    cls
    for module in (errors_module, dberrors_module)
    for _, cls in inspect.getmembers(module, inspect.isclass)
    if issubclass(cls, BaseException) and cls.__module__ == module.__name__
]

EXTRA_BASES: dict[str, type[BaseException]] = {
    "ConfigurationError": ValueError,
    "SerializationError": TypeError,
    "NotInWorkflowError": RuntimeError,
    "WorkflowNotFoundError": LookupError,
    "WaitTimeoutError": TimeoutError,
    "StreamTimeoutError": TimeoutError,
}


def parse_tree(doc: str) -> dict[str, tuple[str | None, list[str]]]:
    """The tree drawn in the module docstring: class name -> (parent name, extra bases)."""
    tree: dict[str, tuple[str | None, list[str]]] = {}
    stack: list[str] = []
    root_indent = 0
    for line in doc.splitlines():
        match = re.match(
            r"^(?P<indent>[ │]*)(?P<branch>[├└]── )?(?P<name>[A-Z]\w*Error)\b(?P<rest>.*)$", line
        )
        if match is None:
            continue
        if match["branch"] is None:
            depth, root_indent = 0, len(match["indent"])
        else:
            depth = (len(match["indent"]) - root_indent) // 4 + 1
        extras = re.match(r"\s*\(([^)]*)\)", match["rest"])
        del stack[depth:]
        tree[match["name"]] = (
            stack[-1] if stack else None,
            [e.strip() for e in extras[1].split(",")] if extras else [],
        )
        stack.append(match["name"])
    return tree


def test_every_error_class_is_exported() -> None:
    """Each error class of nbflow._errors (and _dberrors) is in its module's __all__, in
    nbflow.__all__, and the same object."""
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert len(names) >= 18
    assert names == set(errors_module.__all__) | set(dberrors_module.__all__)
    for cls in ERROR_CLASSES:
        assert cls.__name__ in nbflow.__all__
        assert getattr(nbflow, cls.__name__) is cls


def test_every_error_is_an_nbflow_error() -> None:
    """Every error nbflow defines derives from NbflowError, an Exception."""
    assert issubclass(nbflow.NbflowError, Exception)
    for cls in ERROR_CLASSES:
        assert issubclass(cls, nbflow.NbflowError), cls


@pytest.mark.parametrize(("name", "base"), sorted(EXTRA_BASES.items()))
def test_documented_extra_bases(name: str, base: type[BaseException]) -> None:
    """The errors that stand for a standard error are also that standard error."""
    assert issubclass(getattr(nbflow, name), base)


def test_the_docstring_tree_draws_every_class_where_it_is() -> None:
    """The module docstring's tree names every class, under its real parent, with its extra bases."""
    doc = errors_module.__doc__ or ""
    tree = parse_tree(doc)
    assert set(tree) == {cls.__name__ for cls in ERROR_CLASSES}
    assert tree["NbflowError"] == (None, [])
    for cls in ERROR_CLASSES:
        parent, extras = tree[cls.__name__]
        if parent is None:
            continue
        bases = [b.__name__ for b in cls.__bases__]
        assert parent in bases, f"{cls.__name__} is drawn under {parent}, but its bases are {bases}"
        others = sorted(b for b in bases if b != parent)
        assert others == sorted(extras), f"{cls.__name__}: bases {bases}, drawn extras {extras}"


# -- raised for real, with their attributes and advice ---------------------------------------


def test_workflow_not_found_names_the_id_and_how_to_look(rt: nbflow.Runtime) -> None:
    """WorkflowNotFoundError carries the id and points at list_workflows."""
    with pytest.raises(nbflow.WorkflowNotFoundError) as info:
        nbflow.get_workflow("wf-404")
    err = info.value
    assert err.workflow_id == "wf-404"
    assert "'wf-404'" in str(err) and "list_workflows" in str(err)
    assert not str(err).startswith(("'", '"'))  # LookupError would quote the message


def test_not_in_workflow_names_the_call_and_the_decorator(rt: nbflow.Runtime) -> None:
    """NotInWorkflowError names the operation and says to call it from a workflow."""
    with pytest.raises(nbflow.NotInWorkflowError) as info:
        nbflow.write_stream("k", 1)
    assert info.value.operation == "write_stream"
    assert "write_stream" in str(info.value) and "@nbflow.workflow" in str(info.value)


def test_stream_closed_names_workflow_and_key(rt: nbflow.Runtime) -> None:
    """StreamClosedError carries the workflow id and key and says to write before closing."""
    caught: list[nbflow.StreamClosedError] = []

    @nbflow.workflow
    def wf() -> None:
        nbflow.close_stream("done")
        try:
            nbflow.write_stream("done", 1)
        except nbflow.StreamClosedError as exc:
            caught.append(exc)

    handle = nbflow.start(wf)
    handle.result(timeout=10)
    [err] = caught
    assert (err.workflow_id, err.key) == (handle.workflow_id, "done")
    assert handle.workflow_id in str(err) and "close_stream" in str(err)


def test_serialization_error_names_what_and_type(rt: nbflow.Runtime) -> None:
    """SerializationError carries what the value was for and its type, and says what to do."""
    caught: list[nbflow.SerializationError] = []

    @nbflow.workflow
    def wf() -> None:
        try:
            nbflow.write_stream("locks", threading.Lock())
        except nbflow.SerializationError as exc:
            caught.append(exc)

    nbflow.start(wf).result(timeout=10)
    [err] = caught
    assert "'locks'" in err.what
    assert err.type_name == "_thread.lock"
    assert "Nothing was written" in str(err) and "instead" in str(err)


def test_cancelled_and_interrupted_say_how_to_resume(rt: nbflow.Runtime, database: str) -> None:
    """WorkflowCancelledError and WorkflowInterruptedError carry the id and name resume/recover."""
    entered, release = threading.Event(), threading.Event()

    @nbflow.step(name="tests.errors.wait")
    def wait() -> None:
        entered.set()
        release.wait(30)

    @nbflow.workflow(name="tests.errors.waiting")
    def wf() -> None:
        wait()

    cancelled = nbflow.start(wf)
    assert entered.wait(10)
    cancelled.cancel()
    release.set()
    with pytest.raises(nbflow.WorkflowCancelledError) as info:
        cancelled.result(timeout=10)
    assert info.value.workflow_id == cancelled.workflow_id
    assert "nbflow.resume" in str(info.value)

    entered.clear()
    release.clear()
    interrupted = nbflow.start(wf)
    assert entered.wait(10)
    rt.close(timeout=0)
    release.set()
    wait_until(lambda: not [t for t in nbflow_threads() if t.name.startswith("nbflow-workflow")])
    nbflow.configure(database)
    with pytest.raises(nbflow.WorkflowInterruptedError) as stopped:
        nbflow.get_workflow(interrupted.workflow_id).result(timeout=1)
    assert stopped.value.workflow_id == interrupted.workflow_id
    assert "nbflow.resume" in str(stopped.value) and "nbflow.recover" in str(stopped.value)


def test_function_not_registered_names_workflow_and_function(
    rt: nbflow.Runtime, database: str
) -> None:
    """Resuming a workflow whose function is not declared raises FunctionNotRegisteredError."""
    sql(
        rt,
        "insert into workflows (workflow_id, name, status, inputs_json, created_at, updated_at) "
        "values ('orphan', 'tests.errors.gone', 'PENDING', '{\"args\":[],\"kwargs\":{}}', 1, 1)",
    )
    with pytest.raises(nbflow.FunctionNotRegisteredError) as info:
        nbflow.resume("orphan")
    err = info.value
    assert (err.workflow_id, err.name) == ("orphan", "tests.errors.gone")
    assert "'tests.errors.gone'" in str(err) and "Import or define" in str(err)


def test_nondeterminism_error_names_both_operations() -> None:
    """NondeterminismError carries the id, the position and both operations, and says what to do."""
    err = nbflow.NondeterminismError("wf-1", 3, "step 'a'", "write_stream('k')")
    assert (err.workflow_id, err.function_id, err.recorded, err.called) == (
        "wf-1",
        3,
        "step 'a'",
        "write_stream('k')",
    )
    assert "step 'a'" in str(err) and "write_stream('k')" in str(err) and "#3" in str(err)
    assert "step" in str(err) and "new workflow" in str(err)


def test_stream_timeout_says_where_to_read_on(rt: nbflow.Runtime) -> None:
    """StreamTimeoutError carries id, key and offset, and says to read on with start=offset."""
    entered, release = threading.Event(), threading.Event()

    @nbflow.step(name="tests.errors.timeout-wait")
    def wait() -> None:
        entered.set()
        release.wait(30)

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("k", 1)
        wait()

    handle = nbflow.start(wf)
    try:
        assert entered.wait(10)
        with pytest.raises(nbflow.StreamTimeoutError) as info:
            list(nbflow.read_stream(handle.workflow_id, "k", timeout=0.05))
        err = info.value
        assert (err.workflow_id, err.key, err.offset) == (handle.workflow_id, "k", 1)
        assert "start=1" in str(err)
        assert isinstance(err, nbflow.WaitTimeoutError)
    finally:
        release.set()
    handle.result(timeout=10)


def test_runtime_closed_says_how_to_reopen(database: str) -> None:
    """Using a closed runtime raises RuntimeClosedError that says how to open one again."""

    @nbflow.workflow
    def wf() -> None:
        return None

    runtime = nbflow.Runtime(database)
    runtime.close()
    runtime.close()  # closing twice is harmless
    with pytest.raises(nbflow.RuntimeClosedError, match="configure"):
        runtime.start(wf)


def test_recorded_error_stands_for_an_exception_that_cannot_be_rebuilt(
    rt: nbflow.Runtime, database: str
) -> None:
    """An exception that does not unpickle comes back as RecordedError with its type and message."""

    class LocalError(Exception):
        """Defined in a function: pickle cannot find it again."""

    @nbflow.workflow
    def wf() -> None:
        raise LocalError("only here")

    handle = nbflow.start(wf)
    with pytest.raises(LocalError):
        handle.result(timeout=10)
    rt.close()
    nbflow.configure(database)
    with pytest.raises(nbflow.RecordedError) as info:
        nbflow.get_workflow(handle.workflow_id).result()
    err = info.value
    assert err.type_name.endswith("LocalError") and err.message == "only here"
    assert str(err) == f"{err.type_name}: only here"


def test_database_locked_names_file_process_and_ways_out(tmp_path: Path) -> None:
    """Opening a file another process holds raises DatabaseLockedError with the file and its PID."""
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(nbflow.DatabaseLockedError) as info:
            nbflow.Runtime(path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    err = info.value
    assert isinstance(err, nbflow.DatabaseError)
    assert err.path == str(path) and err.pid == holder.pid
    assert str(path) in str(err) and str(holder.pid) in str(err)
    assert "postgresql" in str(err).lower() and "another file" in str(err)


def test_database_corrupt_names_the_file(tmp_path: Path) -> None:
    """A file that is not a DuckDB database raises DatabaseCorruptError, and is left as it was."""
    path = tmp_path / "notes.duckdb"
    path.write_bytes(b"not a database " * 500)
    with pytest.raises(nbflow.DatabaseCorruptError) as info:
        nbflow.Runtime(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert path.read_bytes() == b"not a database " * 500


def test_schema_version_error_says_to_upgrade(db_path: Path) -> None:
    """A file from a newer nbflow raises SchemaVersionError with both versions."""
    with nbflow.Runtime(db_path) as runtime:
        runtime.store.sql("insert into nbflow_schema values (999)")
    with pytest.raises(nbflow.SchemaVersionError) as info:
        nbflow.Runtime(db_path)
    err = info.value
    assert err.found == 999 and err.supported < 999
    assert err.path == str(db_path) and "Upgrade nbflow" in str(err)


def test_configuration_error_for_an_unknown_url(tmp_path: Path) -> None:
    """An unknown database URL raises ConfigurationError (a ValueError) listing what works."""
    with pytest.raises(nbflow.ConfigurationError) as info:
        nbflow.Runtime("mysql://localhost/db")
    assert isinstance(info.value, ValueError)
    assert "mysql://localhost/db" in str(info.value) and "duckdb:///" in str(info.value)


def test_wait_timeout_names_the_workflow_and_says_to_wait_again(rt: nbflow.Runtime) -> None:
    """WaitTimeoutError from result(timeout) names the workflow and says to call result() again."""
    release = threading.Event()

    @nbflow.step
    def wait() -> None:
        release.wait(30)

    @nbflow.workflow
    def wf() -> None:
        wait()

    handle = nbflow.start(wf)
    try:
        with pytest.raises(nbflow.WaitTimeoutError) as info:
            handle.result(timeout=0.01)
    finally:
        release.set()
    assert handle.workflow_id in str(info.value) and ".result()" in str(info.value)
    handle.result(timeout=10)


# -- where a failure happened -------------------------------------------------------------------


@nbflow.step(name="parse_batch", retries=2, interval=0)
def parse_batch(n: int) -> None:
    raise ValueError(f"could not parse batch {n}")


@nbflow.workflow(name="tests.errors.parse")
def parse(n: int) -> None:
    parse_batch(n)


def test_a_failure_names_the_step_that_raised(rt: nbflow.Runtime, database: str) -> None:
    """The exception keeps its type and message and gains a note naming the step and attempt;
    the workflow's recorded error names them too, after a reopen as well."""
    note = "raised in step 'parse_batch' (attempt 3 of 3)"
    handle = nbflow.start(parse, 5)
    with pytest.raises(ValueError) as info:
        handle.result(timeout=10)
    assert type(info.value) is ValueError and str(info.value) == "could not parse batch 5"
    assert info.value.__notes__ == [note]
    [wf] = nbflow.list_workflows(name="tests.errors.parse")
    assert wf.error == f"ValueError: could not parse batch 5\n{note}"
    rt.close()
    nbflow.configure(database)
    with pytest.raises(ValueError) as again:  # rebuilt from the record, with its frames
        nbflow.get_workflow(handle.workflow_id).result()
    assert str(again.value) == "could not parse batch 5" and again.value.__notes__ == [
        note,
        "(the frames above were recorded when it was raised; nbflow raised it again from the record)",
    ]
    assert again.traceback[-1].name == "parse_batch" and again.traceback[-1].path == Path(__file__)


def test_a_failed_map_item_is_named_once(rt: nbflow.Runtime) -> None:
    """A map item's error names the item (nbflow.map's note), not a step attempt as well."""

    def check(n: int) -> int:
        if n == 3:
            raise KeyError(n)
        return n

    @nbflow.workflow(name="tests.errors.mapped")
    def mapped() -> list[int]:
        return nbflow.map(check, range(5), concurrency=1)

    with pytest.raises(KeyError) as info:
        mapped()
    [note] = info.value.__notes__
    assert "item 4 of 5" in note and "raised in step" not in note
    [wf] = nbflow.list_workflows(name="tests.errors.mapped")
    assert wf.error == f"KeyError: 3\n{note}"


def test_an_error_of_the_body_itself_has_no_step_note(rt: nbflow.Runtime) -> None:
    @nbflow.workflow(name="tests.errors.body")
    def body() -> None:
        try:
            parse_batch(1)
        except ValueError:
            raise RuntimeError("gave up") from None

    with pytest.raises(RuntimeError) as info:
        body()
    assert not hasattr(info.value, "__notes__")
    assert nbflow.list_workflows(name="tests.errors.body")[0].error == "RuntimeError: gave up"


KERNEL_CELLS = [
    "import nbflow\n"
    "@nbflow.step(retries=2, interval=0)\n"
    "def parse_batch(n):\n"
    "    raise ValueError(f'could not parse batch {n}')\n"
    "@nbflow.workflow\n"
    "def pipeline(n):\n"
    "    return parse_batch(n)\n"
    "def check(n):\n"
    "    if n == 2:\n"
    "        raise KeyError(n)\n"
    "@nbflow.workflow\n"
    "def mapped():\n"
    "    return nbflow.map(check, range(4), concurrency=1)\n"
    "@nbflow.workflow\n"
    "def parent():\n"
    "    return pipeline(7)\n"
    "@nbflow.step\n"
    "async def fetch():\n"
    "    raise OSError('disk full')\n"
    "@nbflow.workflow\n"
    "async def fetching():\n"
    "    return await fetch()",
    "handle = nbflow.start(pipeline, 5)\nhandle.result()",
    "pipeline(6)",
    "nbflow.get_workflow(handle.workflow_id).result()",
    "mapped()",
    "parent()",
    "await fetching()",
]
#: Per cell after the first: the exception, the note, and the cell's frames shown (in order).
KERNEL_ERRORS = [
    ("ValueError", "could not parse batch 5", "raised in step 'parse_batch' (attempt 3 of 3)",
     ["Cell In[2], line 2", "Cell In[1], line 7, in pipeline", "Cell In[1], line 4, in parse_batch"]),
    ("ValueError", "could not parse batch 6", "raised in step 'parse_batch' (attempt 3 of 3)",
     ["Cell In[3], line 1", "Cell In[1], line 7, in pipeline", "Cell In[1], line 4, in parse_batch"]),
    ("ValueError", "could not parse batch 5", "raised in step 'parse_batch' (attempt 3 of 3)",
     ["Cell In[4], line 1", "Cell In[1], line 7, in pipeline", "Cell In[1], line 4, in parse_batch"]),
    # (rebuilt from the record, with the frames recorded when it was raised)
    ("KeyError", "2", "nbflow.map: item 3 of 4 failed in step 'check'",
     ["Cell In[5], line 1", "Cell In[1], line 13, in mapped", "Cell In[1], line 10, in check"]),
    ("ValueError", "could not parse batch 7", "raised in step 'parse_batch' (attempt 3 of 3)",
     ["Cell In[6], line 1", "Cell In[1], line 16, in parent", "Cell In[1], line 7, in pipeline",
      "Cell In[1], line 4, in parse_batch"]),
    ("OSError", "disk full", "raised in step 'fetch'",
     ["Cell In[7], line 1", "Cell In[1], line 22, in fetching", "Cell In[1], line 19, in fetch"]),
]  # fmt: skip


@pytest.mark.kernel
def test_tracebacks_in_a_kernel_show_the_user_s_frames_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a real kernel, the traceback of handle.result(), of a workflow called in a cell (with a
    step, a map, a child, an async step) shows the cells' frames only (nbflow's are hidden), the
    exception's type and message unchanged, and the note naming the step or map item."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from tests.support.kernels import venv_kernel

    kernel = venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NBFLOW_DATABASE", str(tmp_path / "tb.duckdb"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in KERNEL_CELLS])
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=60, allow_errors=True)
    client.execute()
    assert not [o for o in nb.cells[0].outputs if o.output_type == "error"]
    for cell, (ename, evalue, note, shown) in zip(nb.cells[1:], KERNEL_ERRORS, strict=True):
        [error] = [o for o in cell.outputs if o.output_type == "error"]
        assert (error.ename, error.evalue) == (ename, evalue)
        text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
        frames = re.findall(r"^(?:File .*|Cell In\[.*)$", text, re.M)
        assert [re.sub(r"\(.*\)$", "", f) for f in frames] == shown, text
        assert note in text.splitlines(), text


# -- hints name the command where the reader is -------------------------------------------------


@pytest.fixture
def front_end() -> Iterator[Callable[[str], None]]:
    """Set the front end for one test (then back to what it was)."""
    before = hints_module.front_end()
    yield lambda name: hints_module.set_front_end(name) and None
    hints_module.set_front_end(before)


def test_hints_follow_the_front_end(front_end: Callable[[str], None]) -> None:
    """A hint is the Python call by default, the magic in a notebook, the command in a terminal."""
    hints = {}
    for name in ("python", "magic", "cli"):
        front_end(name)
        hints[name] = (hints_module.hint("resume", "wf-1"), str(nbflow.WorkflowNotFoundError("x")))
    assert (
        hints["python"][0] == "nbflow.resume('wf-1')"
        and "nbflow.list_workflows()" in hints["python"][1]
    )
    assert hints["magic"][0] == "`%nbflow resume wf-1`" and "`%nbflow list`" in hints["magic"][1]
    assert hints["cli"][0] == "`nbflow resume wf-1`" and "`nbflow list`" in hints["cli"][1]
    with pytest.raises(ValueError, match="front end"):
        hints_module.set_front_end("browser")


def test_recover_s_warning_names_the_magic_in_a_notebook(
    rt: nbflow.Runtime, front_end: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    sql(
        rt,
        "insert into workflows (workflow_id, name, status, inputs_json, created_at, updated_at) "
        "values ('orphan', 'tests.errors.gone', 'PENDING', '{\"args\":[],\"kwargs\":{}}', 1, 1)",
    )
    front_end("magic")
    with caplog.at_level("WARNING", logger="nbflow"):
        assert nbflow.recover() == []
    [warning] = [r.getMessage() for r in caplog.records if "Not recovered" in r.getMessage()]
    assert "`%nbflow recover`" in warning and "'orphan'" in warning


def test_a_database_nbflow_cannot_use_names_the_way_out_as_the_reader_gives_it(
    front_end: Callable[[str], None], tmp_path: Path
) -> None:
    """Issue 18 (the class of defect 10): every message about the database said
    ``nbflow.configure(...)``, in a terminal and in a notebook with the magics too."""
    (tmp_path / "a-file").write_text("")
    says = {}
    for name in ("python", "magic", "cli"):
        front_end(name)
        with pytest.raises(nbflow.DatabaseError) as raised:
            nbflow.Runtime(str(tmp_path / "a-file" / "nbflow.duckdb"))
        locked = nbflow.DatabaseLockedError("x.duckdb", 12)
        says[name] = (str(raised.value), str(locked))
    assert all("nbflow.configure('" in text for text in says["python"])
    assert all("`%nbflow db " in text for text in says["magic"]), says["magic"]
    assert all("`nbflow --db " in text for text in says["cli"]), says["cli"]


def test_every_error_pickles_whatever_its_constructor_takes() -> None:
    """A process pool or Dask worker sends errors back pickled: each comes back whole (a
    DatabaseLockedError from a worker broke the pool: its __init__ takes (path, pid))."""
    import pickle

    errors = nbflow
    locked = errors.DatabaseLockedError("/tmp/x.duckdb", 1234)
    again = pickle.loads(pickle.dumps(locked))
    assert (type(again), str(again), again.pid, again.path) == (
        errors.DatabaseLockedError,
        str(locked),
        1234,
        "/tmp/x.duckdb",
    )
    for name in errors.__all__:
        kind = getattr(errors, name)
        if not (isinstance(kind, type) and issubclass(kind, errors.NbflowError)):
            continue
        error = kind.__new__(kind)
        Exception.__init__(error, f"a {name}")
        error.workflow_id = "wf-1"
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), str(copy), copy.workflow_id) == (kind, f"a {name}", "wf-1")
