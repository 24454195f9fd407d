"""Durable cells: ``%%nbflow step NAME`` runs a cell once, and afterwards restores what it made.

A cell's *key* (:mod:`nbflow.notebook._analysis`) hashes its name, its source and what it reads.
When a run with that key was recorded, the cell does not run: its ``import``/``def``/``class``
statements run again (cheap, and needed to unpickle), the variables it assigned are unpickled into
the namespace, and its output is shown again. Otherwise it runs, its output shows live and is
recorded (:mod:`nbflow.notebook._recording`), and its variables are pickled into a step of the
notebook's record-keeping workflow ``notebook:<name>``.

Each run ends with one line on stdout (a cell that worked does not look failed), the same words
whether it ran or was restored, so nbval can sanitize both with one pattern
(``nbflow: step '([^']*)' (ran|restored) in .*``)::

    nbflow: step 'load' ran in 1.20 s; recorded
    nbflow: step 'load' restored in 0.09 s from 2026-11-25 14:03:07; took 1.20 s originally

A warning (the cell ran but was not recorded, or could not be restored) goes to stderr.

A record is one step: its output is JSON (the key and the parts it hashes, whether ``--force`` made
it run, the outputs, the result, the modules) and the variables, pickled together once, are kept
beside it (``Runtime.record_step(pickled=...)``); DataFrames and numpy arrays among them are
kept as Arrow IPC parts of that blob, not pickled (:mod:`nbflow._arrowvalues`). A lookup reads only the JSON of the cell's
records; the pickle of the one restored is the only one read and unpickled. Records written
before (one pickled dict, the variables pickled again inside it; no parts) are still restored.
What each cell did last in this kernel, and why it ran, is kept for ``%nbflow why NAME``
(:mod:`nbflow.notebook._why`).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import pathlib
import sys
import time
import types
import weakref
from typing import Any

from IPython.core.displayhook import DisplayHook

import nbflow
from nbflow._arrowvalues import dumps, loads
from nbflow.notebook._analysis import HIDDEN, KeyParts, Names, analyze, cell_key, cell_key_parts
from nbflow.notebook._recording import Recording, flush_figures, format_result, json_outputs
from nbflow.notebook._why import Ran, Restored, reasons, to_record
from nbflow.text._format import format_duration, format_time

__all__ = ["DurableCells", "cells_for", "pipeline_id"]

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_WORKFLOW = "nbflow.notebook"  # the registered name of the pipeline's record-keeping workflow
_UNPICKLABLE = (
    "It will run again next time. Delete such variables at the end of the cell (del name), "
    "or make them in a cell that is not durable."
)


@dataclasses.dataclass(frozen=True)
class _Cell:
    """One durable cell to run or restore.

    Attributes:
        name: Its name in the pipeline.
        parts: Its key (name, source and what it reads) and the parts it hashes.
        tree: Its parsed body.
        filename: The name its code is compiled under.
        names: What it reads, assigns and mutates.
        quiet: Whether it ends with ``;`` (its last value is not shown).
        force: Whether it runs even if a run is recorded (``--force``).
    """

    name: str
    parts: KeyParts
    tree: ast.Module
    filename: str
    names: Names
    quiet: bool
    force: bool

    @property
    def key(self) -> str:
        """Its key."""
        return self.parts.key


@dataclasses.dataclass(frozen=True)
class _Found:
    """A recorded run of a cell: its record (decoded JSON), its step's function id, its end."""

    record: dict[str, Any]
    function_id: int
    ended: float


@dataclasses.dataclass(frozen=True)
class _Lookup:
    """The records of a cell's name: the newest run, the newest with the cell's key (not looked
    for under ``--force``), and why they could not be read (``""``: they were)."""

    newest: _Found | None
    match: _Found | None
    error: str = ""


def pipeline_id() -> str:
    """The id of the notebook's record-keeping workflow: ``notebook:<notebook file name>``.

    The name is that of ``$JPY_SESSION_NAME`` (the notebook's path, set by jupyter_server), else the
    working directory's name, else ``notebook``.
    """
    session = os.environ.get("JPY_SESSION_NAME")
    name = pathlib.PurePath(session).name if session else pathlib.Path.cwd().name
    return f"notebook:{name or 'notebook'}"


class DurableCells:
    """The durable-cell state of one IPython shell: which cell produced which variable.

    Args:
        shell: The IPython shell whose namespace the cells run in.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        #: variable -> (name and key of the durable cell that assigned it, id() of the value)
        self.producers: dict[str, tuple[str, str, int]] = {}
        #: cell name -> what it did last in this kernel: ran (and why), or was restored
        self.last: dict[str, Ran | Restored] = {}
        #: cell name -> its key when it last ran or was restored in this kernel (its current
        #: version: ``%nbflow prune --cells`` keeps the record with it)
        self.keys: dict[str, str] = {}

    def key(self, name: str, source: str, reads: set[str]) -> str:
        """The key of a cell named ``name`` with this source, given the namespace it reads."""
        return cell_key(name, source, reads, self.shell.user_ns, self.producers)

    def parts(self, name: str, source: str, reads: set[str]) -> KeyParts:
        """The key of such a cell (:meth:`key`) and the parts it hashes."""
        return cell_key_parts(name, source, reads, self.shell.user_ns, self.producers)

    def run(self, name: str, body: str, *, force: bool = False) -> Any:
        """Run the body of ``%%nbflow step NAME`` (or restore it); return its last value."""
        __tracebackhide__ = True
        shell, began = self.shell, time.perf_counter()
        code = "\n" + shell.transform_cell(body)  # line 1 is the magic line
        filename = shell.compile.cache(code, shell.execution_count, raw_code="\n" + body)
        try:
            tree = shell.transform_ast(shell.compile.ast_parse(code, filename=filename))
            shell.compile(tree, filename, "exec")  # (top-level await fails here)
        except SyntaxError as exc:  # shown like a plain cell's, without nbflow's frames
            if "await" in str(exc.msg):
                exc.msg += " (a durable cell runs synchronously: await in a plain cell)"
            raise exc.with_traceback(None) from None
        names = analyze(tree)
        parts = self.parts(name, body, names.reads)
        self.keys[name] = parts.key
        cell = _Cell(name, parts, tree, filename, names, _quiet(code), force)
        try:
            rt = nbflow.runtime()
        except nbflow.NbflowError as exc:
            unrecorded = "so the cell runs without being recorded"
            _warn(f"nbflow: step {name!r}: cannot open the database, {unrecorded} ({exc})")
            self.last[name] = Ran((f"the database could not be opened ({exc})",), time.time())
            return self._execute(tree, filename)
        looked = self._lookup(rt, cell)
        if looked.match is not None:
            restored = self._restore(rt, cell, looked.match, began)
            if restored is not _FAILED:
                self.last[name] = Restored(looked.match.ended)
                return restored
        self.last[name] = Ran(self._reasons(cell, looked), time.time())
        return self._run(rt, cell)

    def _lookup(self, rt: nbflow.Runtime, cell: _Cell) -> _Lookup:
        """The newest recorded run of the cell's name, and (unless forced) the newest with its
        key; only records' JSON is read."""
        name = cell.name
        newest: _Found | None = None
        try:
            found = rt.recorded_steps(pipeline_id(), name, newest_first=True)
            for function_id, _, record, _, ended in found:
                if not isinstance(record, dict):
                    continue
                newest = newest or _Found(record, function_id, ended)
                if cell.force:
                    break
                if record.get("key") == cell.key:
                    return _Lookup(newest, _Found(record, function_id, ended))
        except nbflow.NbflowError as exc:
            _warn(f"nbflow: step {name!r}: cannot read its records ({exc}); running it")
            return _Lookup(newest, None, str(exc))
        return _Lookup(newest, None)

    def _reasons(self, cell: _Cell, looked: _Lookup) -> tuple[str, ...]:
        """Why the cell runs (:func:`nbflow.notebook._why.reasons`)."""
        if looked.match is not None:
            return (f"its run recorded at {format_time(looked.match.ended)} could not be restored",)
        if looked.error:
            return (f"its records could not be read ({looked.error})",)
        previous = looked.newest.record if looked.newest is not None else None
        restored = {name for name, did in self.last.items() if isinstance(did, Restored)}
        return reasons(cell.parts, cell.force, previous, pipeline=pipeline_id(), restored=restored)

    def _restore(self, rt: nbflow.Runtime, cell: _Cell, found: _Found, began: float) -> Any:
        """Restore a recorded run; ``_FAILED`` (after a note) if it cannot be: then the cell runs.

        ``began``: when the cell started (``time.perf_counter()``), for the time the note tells.
        """
        __tracebackhide__ = True
        shell, ns, tree, name = self.shell, self.shell.user_ns, cell.tree, cell.name
        record = found.record
        definitions: list[ast.stmt] = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
        if definitions:  # functions and classes first: the pickles refer to them by name
            module = ast.Module(body=definitions, type_ignores=[])
            exec(shell.compile(module, cell.filename, "exec"), shell.user_global_ns, ns)
        try:
            values = _variables(rt, found)
            for var, module_name in record["modules"].items():
                values[var] = __import__(module_name, fromlist=["_"])
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            _warn(
                f"nbflow: step {name!r}: cannot restore its variables ({error}); running it again"
            )
            return _FAILED
        ns.update(values)
        self.producers.update({var: (name, cell.key, id(v)) for var, v in values.items()})
        Recording.replay(shell, record["outputs"])
        took, ended = format_duration(record["duration"]), format_time(found.ended)
        restored_in = format_duration(time.perf_counter() - began)
        _note(
            f"nbflow: step {name!r} restored in {restored_in} from {ended}; took {took} originally"
        )
        return _Result(*record["result"]) if record["result"] else None

    def _execute(self, tree: ast.Module, filename: str) -> Any:
        """Run a parsed cell in the user namespace; return the value of its last expression."""
        __tracebackhide__ = True
        shell = self.shell
        global_ns, ns = shell.user_global_ns, shell.user_ns
        body, last = list(tree.body), tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            body.pop()
        exec(shell.compile(ast.Module(body=body, type_ignores=[]), filename, "exec"), global_ns, ns)
        if not isinstance(last, ast.Expr):
            return None
        expression = ast.Expression(body=last.value)
        return eval(shell.compile(expression, filename, "eval"), global_ns, ns)

    def _run(self, rt: nbflow.Runtime, cell: _Cell) -> Any:
        """Run the cell, then record what it assigned, showed and returned."""
        __tracebackhide__ = True
        shell = self.shell
        before = {var: id(value) for var, value in shell.user_ns.items()}
        with Recording(shell) as recording:
            started = time.time()
            value = self._execute(cell.tree, cell.filename)  # an exception records nothing
            ended = time.time()
            flush_figures()
        assigned = self._assigned(before, cell)
        self.producers.update({v: (cell.name, cell.key, id(shell.user_ns[v])) for v in assigned})
        if cell.quiet:  # a cell ending in ';' shows no value (the shell may not see that ';')
            value = None
        result = None if value is None else format_result(shell, value)
        self._record(rt, cell, assigned, (recording.outputs, result), (started, ended))
        return value

    def _assigned(self, before: dict[str, int], cell: _Cell) -> set[str]:
        """The variables the cell assigned or mutated (``before``: id() of each value before)."""
        hidden = self.shell.user_ns_hidden
        return {
            var
            for var, obj in self.shell.user_ns.items()
            if (before.get(var) != id(obj) or var in cell.names.mutated)
            and not HIDDEN.fullmatch(var)
            and not (var in hidden and hidden[var] is obj)
        }

    def _record(
        self,
        rt: nbflow.Runtime,
        cell: _Cell,
        assigned: set[str],
        shown: tuple[list[Any], Any],
        span: tuple[float, float],
    ) -> None:
        """Record a run: the variables assigned, ``shown`` (outputs, result), and when it ran."""
        ns, name = self.shell.user_ns, cell.name
        (outputs, result), (started, ended) = shown, span
        took = format_duration(ended - started)
        modules = {v: ns[v].__name__ for v in assigned if isinstance(ns[v], types.ModuleType)}
        values = {v: ns[v] for v in sorted(assigned) if v not in modules}
        blob, bad = _pickle_variables(values, cell.names.with_targets)
        if bad:
            why = f"cannot pickle variable(s) {bad}"
            _warn(f"nbflow: step {name!r} ran in {took}; NOT recorded: {why}. {_UNPICKLABLE}")
            return
        record: dict[str, Any] = {"key": cell.key, "pickled": blob is not None, "modules": modules}
        record["parts"] = to_record(cell.parts, cell.force)
        record.update(outputs=json_outputs(outputs), duration=ended - started)
        record["result"] = None if result is None else json_outputs([result])[0]
        try:
            rt.record_step(
                pipeline_id(), name, record, started=started, ended=ended, workflow_name=_WORKFLOW,
                pickled=blob,
            )  # fmt: skip
        except nbflow.NbflowError as exc:
            _warn(f"nbflow: step {name!r} ran in {took}; NOT recorded: {exc}")
            return
        _note(f"nbflow: step {name!r} ran in {took}; recorded")


def _quiet(code: str) -> bool:
    """Whether the cell ends with ``;`` (its last value is not shown)."""
    try:
        return bool(DisplayHook.semicolon_at_end_of_expression(code))  # type: ignore[no-untyped-call]
    except Exception:  # tokenize errors: show it
        return False


def _pickle_variables(values: dict[str, Any], droppable: set[str]) -> tuple[bytes | None, str]:
    """Pickle variables together (objects they share stay shared); else name those that fail.
    DataFrames and arrays among them, at any depth, are stored as Arrow (:func:`~nbflow._arrowvalues.dumps`).

    Those in ``droppable`` (``with ... as`` targets: closed files and the like) are left out
    quietly when they cannot be pickled.

    Returns:
        ``(pickle or None, "")``, or ``(None, "'name' (error), ...")`` when some cannot be.
    """
    try:
        return (dumps(values) if values else None), ""
    except Exception:
        errors = {var: _pickle_error(value) for var, value in values.items()}
    bad = ", ".join(
        f"{var!r} ({error})" for var, error in errors.items() if error and var not in droppable
    )
    if bad:
        return None, bad
    kept = {var: value for var, value in values.items() if not errors[var]}
    try:
        return (dumps(kept) if kept else None), ""
    except Exception as exc:  # each alone pickles, together they do not
        return None, f"{', '.join(map(repr, kept))} together ({type(exc).__name__}: {exc})"


def _pickle_error(value: Any) -> str:
    try:
        dumps(value)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _variables(rt: nbflow.Runtime, found: _Found) -> dict[str, Any]:
    """The variables of a recorded run, unpickled (the one pickle read for a restore)."""
    record = found.record
    if "variables" in record:  # recorded before the variables were kept beside the record
        blob = record["variables"]
    elif record.get("pickled"):
        blob = rt.recorded_pickle(pipeline_id(), found.function_id)
    else:
        blob = None
    values: dict[str, Any] = loads(blob) if blob else {}
    return values


def _note(text: str) -> None:
    """Say how a durable cell went, on stdout: a cell that worked does not look failed."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _warn(text: str) -> None:
    """Warn on stderr (after what the cell printed): the cell was not recorded or restored."""
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class _Result:
    """The recorded value of a restored cell's last expression, displayed as it was."""

    def __init__(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.data, self.metadata = data, metadata

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        return self.data, self.metadata

    def __repr__(self) -> str:
        return str(self.data.get("text/plain", "<restored output>"))


_FAILED: Any = object()
_states: weakref.WeakKeyDictionary[Any, DurableCells] = weakref.WeakKeyDictionary()


def cells_for(shell: Any) -> DurableCells:
    """The durable-cell state of ``shell`` (kept for the shell's life, across ``%reload_ext``)."""
    state = _states.get(shell)
    if state is None:
        state = _states[shell] = DurableCells(shell)
    return state
