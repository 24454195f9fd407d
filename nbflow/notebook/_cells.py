"""Durable cells: ``%%nbflow step NAME`` runs a cell once, and afterwards restores what it made.

A cell's *key* is a hash of its name, its source and its inputs: for each name the cell reads
before binding it, the key of the durable cell that produced the value (so a change upstream
re-runs everything downstream), else a fingerprint of plain values (numbers, strings, small
containers, functions defined in the notebook) and only the type of anything else. When a run with
that key was recorded, the cell does not run: its ``import``/``def``/``class`` statements run again
(cheap, and needed to unpickle), the variables it assigned are unpickled into the namespace, and
its output is shown again. Otherwise it runs, its output shows live and is recorded, and its
variables are pickled into a step of the notebook's record-keeping workflow ``notebook:<name>``.

Each run ends with one line on stderr, the same words whether it ran or was restored, so nbval can
sanitize both with one pattern (``nbflow: step '([^']*)' (ran in|restored from) .*``)::

    nbflow: step 'load' ran in 1.20 s; recorded
    nbflow: step 'load' restored from 2026-11-25 14:03:07, took 1.20 s originally
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import decimal
import fractions
import hashlib
import json
import os
import pathlib
import pickle
import re
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

from IPython.core.displayhook import DisplayHook

import nbflow
from nbflow._serialization import decode
from nbflow._workflow import StepFunction, WorkflowFunction

__all__ = ["DurableCells", "Recording", "analyze", "cells_for", "pipeline_id"]

_HIDDEN = re.compile(r"_+|_i+|_i?\d+|_ih|_oh|_dh|_exit_code|In|Out|get_ipython|exit|quit|__\w+__")
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SCALARS = (type(None), bool, int, float, complex, str, bytes, range, dt.date, dt.time,
            dt.timedelta, decimal.Decimal, fractions.Fraction, pathlib.PurePath)  # fmt: skip
_FINGERPRINT_BUDGET = 100_000  # characters: bigger plain values count by their type only


def pipeline_id() -> str:
    """The id of the notebook's record-keeping workflow: ``notebook:<notebook file name>``.

    The name is that of ``$JPY_SESSION_NAME`` (the notebook's path, set by jupyter_server), else the
    working directory's name, else ``notebook``.
    """
    session = os.environ.get("JPY_SESSION_NAME")
    name = pathlib.PurePath(session).name if session else pathlib.Path.cwd().name
    return f"notebook:{name or 'notebook'}"


class _Names:
    """Walks a cell: names it reads before binding them, names it binds, bases it mutates."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.reads: set[str] = set()
        self.mutated: set[str] = set()
        self.with_targets: set[str] = set()

    def load(self, name: str) -> None:
        if name not in self.bound:
            self.reads.add(name)

    def body(self, stmts: list[ast.stmt]) -> None:
        for node in stmts:
            self.stmt(node)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            heads: list[ast.expr] = list(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                heads += [*node.bases, *(k.value for k in node.keywords)]
                self.scope(node.body, set())
            else:
                heads += [d for d in [*node.args.defaults, *node.args.kw_defaults] if d]
                self.scope(node.body, {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)} | {node.name})  # fmt: skip
            for expr in heads:
                self.expr(expr)
            self.bound.add(node.name)
        elif isinstance(node, ast.Assign):
            self.expr(node.value)
            for target in node.targets:
                self.target(target)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            if isinstance(node.target, ast.Name) and isinstance(node, ast.AugAssign):
                self.load(node.target.id)
            if node.value is not None:
                self.expr(node.value)
                self.target(node.target)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter)
            self.target(node.target)
            self.body(node.body + node.orelse)
        elif isinstance(node, (ast.While, ast.If)):
            self.expr(node.test)
            self.body(node.body + node.orelse)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
                    self.with_targets |= {n.id for n in ast.walk(item.optional_vars) if isinstance(n, ast.Name)}  # fmt: skip
            self.body(node.body)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.bound |= {(a.asname or a.name).split(".")[0] for a in node.names} - {"*"}
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.expr(target) if isinstance(target, ast.Name) else self.target(target)
        else:  # Expr, Return, Raise, Assert, Try, Match, ...: walk children in order
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.stmt(child)
                elif isinstance(child, ast.expr):
                    self.expr(child)
                elif isinstance(child, ast.ExceptHandler):
                    if child.type is not None:
                        self.expr(child.type)
                    if child.name:
                        self.bound.add(child.name)
                    self.body(child.body)
                else:  # match_case, pattern, ...: names a pattern captures are bound
                    for sub in ast.walk(child):
                        if isinstance(sub, ast.expr):
                            self.expr(sub)
                        elif isinstance(sub, (ast.MatchAs, ast.MatchStar)) and sub.name:
                            self.bound.add(sub.name)

    def target(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            self.bound.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self.target(elt)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        elif isinstance(node, (ast.Attribute, ast.Subscript)):
            self.expr(node)
            base: ast.expr = node
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                self.mutated.add(base.id)

    def expr(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Store):
                self.load(node.id)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.target(node.target)
        elif isinstance(node, ast.Lambda):
            for d in [*node.args.defaults, *node.args.kw_defaults]:
                if d is not None:
                    self.expr(d)
            self.scope([node.body], {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)})
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            first, *rest = node.generators
            self.expr(first.iter)
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            parts += [first.target, *first.ifs, *(p for g in rest for p in (g.target, g.iter, *g.ifs))]  # fmt: skip
            self.scope(parts, set())
        else:
            code = _timed_code(node)
            if code is not None:  # %time / %timeit / %prun run Python code: see into it
                with contextlib.suppress(SyntaxError):
                    self.body(ast.parse(code).body)
            for child in _expr_children(node):
                self.expr(child)

    def scope(self, nodes: list[Any], params: set[str]) -> None:
        """A nested scope (function, lambda, comprehension) reads what it loads but never binds."""
        local, declared = set(params), set()
        for node in nodes:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    local.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(sub.name)
                elif isinstance(sub, ast.arg):
                    local.add(sub.arg)
                elif isinstance(sub, (ast.Global, ast.Nonlocal)):
                    declared |= set(sub.names)
        local -= declared
        for node in nodes:
            for sub in ast.walk(node):
                # (a store of a name not local: declared global, so not a read)
                name = sub.id if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Store) else None  # fmt: skip
                if name is not None and name not in local:
                    self.load(name)


def _timed_code(node: ast.expr) -> str | None:
    """The code of ``get_ipython().run_line_magic('time', 'code')`` (also timeit, prun)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    args = node.args
    if node.func.attr != "run_line_magic" or len(args) != 2:
        return None
    if not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
        return None
    magic, code = args[0].value, args[1].value  # type: ignore[attr-defined]
    return code if magic in ("time", "timeit", "prun") else None


def _expr_children(node: ast.AST) -> list[ast.expr]:
    """The expressions directly under ``node``, looking through keywords, slices and the like."""
    found: list[ast.expr] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            found.append(child)
        else:
            found += _expr_children(child)
    return found


def analyze(tree: ast.Module) -> _Names:
    """What a cell reads before binding it (``.reads``), mutates (``.mutated``: bases of
    subscript and attribute stores) and binds with ``with ... as`` (``.with_targets``).

    Conservative: a name read anywhere in a branch or a function body counts as read.
    """
    names = _Names()
    names.body(tree.body)
    return names


def _fingerprint(value: Any, budget: list[int]) -> str | None:
    """A stable text for a plain value (None: too big, or not a plain value)."""
    try:
        return _plain(value, budget)
    except Exception:  # RecursionError (a cycle), a repr that fails: not a plain value
        return None


def _plain(value: Any, budget: list[int]) -> str | None:
    budget[0] -= 1
    if budget[0] < 0:
        return None
    kind = type(value).__qualname__
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if isinstance(value, _SCALARS):
        text = repr(value)
        budget[0] -= len(text)
        return None if budget[0] < 0 else f"{kind}:{text}"
    if isinstance(value, (list, tuple, set, frozenset)):
        found = [_plain(v, budget) for v in value]
        parts = [p for p in found if p is not None]
        if len(parts) < len(found):
            return None
        return f"{kind}[{','.join(sorted(parts) if isinstance(value, (set, frozenset)) else parts)}]"  # fmt: skip
    if isinstance(value, dict):
        items = [(_plain(k, budget), _plain(v, budget)) for k, v in value.items()]
        ok = all(k is not None and v is not None for k, v in items)
        return f"{kind}{{{','.join(f'{k}:{v}' for k, v in items)}}}" if ok else None
    fn = value.fn if isinstance(value, (WorkflowFunction, StepFunction)) else value
    if isinstance(fn, types.FunctionType) and fn.__module__ == "__main__":
        defaults = _plain(fn.__defaults__, budget)
        return f"function:{_code_fingerprint(fn.__code__)}:{defaults}"
    return None


def _code_fingerprint(code: types.CodeType) -> str:
    """A hash of what a code object does, leaving out where it was defined (file, lines)."""
    digest = hashlib.sha256(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        text = _code_fingerprint(const) if isinstance(const, types.CodeType) else repr(const)
        digest.update(text.encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:16]


def _normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip("\n").splitlines()).strip("\n")


class DurableCells:
    """The durable-cell state of one IPython shell: which cell produced which variable.

    Args:
        shell: The IPython shell whose namespace the cells run in.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        #: variable -> (name and key of the durable cell that assigned it, id() of the value)
        self.producers: dict[str, tuple[str, str, int]] = {}

    def key(self, name: str, source: str, reads: set[str]) -> str:
        """The key of a cell named ``name`` with this source, given the namespace it reads."""
        ns = self.shell.user_ns
        inputs = []
        for var in sorted(reads):
            if _HIDDEN.fullmatch(var) or var not in ns:
                continue
            value = ns[var]
            producer = self.producers.get(var)
            if producer is not None and producer[2] == id(value):
                if producer[0] != name:  # what a cell made itself is not its input
                    inputs.append([var, "cell", producer[1]])
            else:
                fp = _fingerprint(value, [_FINGERPRINT_BUDGET])
                kind = type(value)
                inputs.append([var, "value", fp] if fp else [var, "type", f"{kind.__module__}.{kind.__qualname__}"])  # fmt: skip
        text = json.dumps({"format": 1, "name": name, "source": _normalized(source), "inputs": inputs})  # fmt: skip
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def run(self, name: str, body: str, *, force: bool = False) -> Any:
        """Run the body of ``%%nbflow step NAME`` (or restore it); return its last value."""
        __tracebackhide__ = True
        shell = self.shell
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
        key = self.key(name, body, names.reads)
        try:
            rt = nbflow.runtime()
        except nbflow.NbflowError as exc:
            _note(f"nbflow: step {name!r}: cannot open the database, so the cell runs without being recorded ({exc})")  # fmt: skip
            return self._execute(tree, filename)
        if not force:
            found = self._lookup(rt, name, key)
            if found is not None:
                restored = self._restore(name, key, found, tree, filename)
                if restored is not _FAILED:
                    return restored
        return self._run(rt, name, key, tree, filename, names, quiet=_quiet(code))

    def _lookup(self, rt: nbflow.Runtime, name: str, key: str) -> tuple[dict[str, Any], float] | None:  # fmt: skip
        """The newest recorded run of ``name`` with ``key``, and when it ended."""
        try:
            rows = [r for r in rt.store.list_steps(pipeline_id()) if r.name == name]
            for row in reversed(rows):  # a record's variables stay pickled bytes until restored
                record = decode(row.output_json, row.output_pickle, what=f"the record of cell {name!r}", allow_pickle=rt.allow_pickle)  # fmt: skip
                if isinstance(record, dict) and record.get("key") == key:
                    return record, row.ended_at
        except nbflow.NbflowError as exc:
            _note(f"nbflow: step {name!r}: cannot read its records ({exc}); running it")
        return None

    def _restore(self, name: str, key: str, found: tuple[dict[str, Any], float], tree: ast.Module, filename: str) -> Any:  # fmt: skip
        """Restore a recorded run; ``_FAILED`` (after a note) if it cannot be: then the cell runs."""
        __tracebackhide__ = True
        record, ended = found
        shell, ns = self.shell, self.shell.user_ns
        definitions: list[ast.stmt] = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
        if definitions:  # functions and classes first: the pickles refer to them by name
            module = ast.Module(body=definitions, type_ignores=[])
            exec(shell.compile(module, filename, "exec"), shell.user_global_ns, ns)
        try:
            values = pickle.loads(record["variables"]) if record["variables"] else {}
            for var, module_name in record["modules"].items():
                values[var] = __import__(module_name, fromlist=["_"])
        except Exception as exc:
            _note(f"nbflow: step {name!r}: cannot restore its variables ({type(exc).__name__}: {exc}); running it again")  # fmt: skip
            return _FAILED
        ns.update(values)
        self.producers.update({var: (name, key, id(value)) for var, value in values.items()})
        Recording.replay(shell, record["outputs"])
        when = dt.datetime.fromtimestamp(ended).strftime("%Y-%m-%d %H:%M:%S")
        _note(f"nbflow: step {name!r} restored from {when}, took {_duration(record['duration'])} originally")  # fmt: skip
        return _Result(*record["result"]) if record["result"] else None

    def _execute(self, tree: ast.Module, filename: str) -> Any:
        """Run a parsed cell in the user namespace; return the value of its last expression."""
        __tracebackhide__ = True
        shell = self.shell
        body, last = list(tree.body), tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            body.pop()
        module = ast.Module(body=body, type_ignores=[])
        exec(shell.compile(module, filename, "exec"), shell.user_global_ns, shell.user_ns)
        if not isinstance(last, ast.Expr):
            return None
        expression = ast.Expression(body=last.value)
        return eval(shell.compile(expression, filename, "eval"), shell.user_global_ns, shell.user_ns)  # fmt: skip

    def _run(self, rt: nbflow.Runtime, name: str, key: str, tree: ast.Module, filename: str, names: _Names, quiet: bool) -> Any:  # fmt: skip
        __tracebackhide__ = True
        shell, ns = self.shell, self.shell.user_ns
        before = {var: id(value) for var, value in ns.items()}
        with Recording(shell) as recording:
            started = time.time()
            value = self._execute(tree, filename)  # an exception records nothing
            ended = time.time()
            _flush_figures()
        hidden = shell.user_ns_hidden
        assigned = {
            var for var, obj in ns.items()
            if (before.get(var) != id(obj) or var in names.mutated)
            and not _HIDDEN.fullmatch(var) and not (var in hidden and hidden[var] is obj)
        }  # fmt: skip
        self.producers.update({var: (name, key, id(ns[var])) for var in assigned})
        if quiet:  # a cell ending in ';' shows no value (the shell may not see that ';')
            value = None
        result = None if value is None else format_result(shell, value)
        modules = {v: ns[v].__name__ for v in assigned if isinstance(ns[v], types.ModuleType)}
        values = {v: ns[v] for v in sorted(assigned) if v not in modules}
        took = _duration(ended - started)
        blob, bad = _pickle_variables(values, names.with_targets)
        if bad:
            _note(
                f"nbflow: step {name!r} ran in {took}; NOT recorded: cannot pickle variable(s) {bad}. "
                "It will run again next time. Delete such variables at the end of the cell (del name), "
                "or make them in a cell that is not durable."
            )  # fmt: skip
            return value
        record = {"key": key, "variables": blob, "modules": modules, "outputs": recording.outputs, "result": result, "duration": ended - started}  # fmt: skip
        try:
            rt.record_step(pipeline_id(), name, record, started=started, ended=ended, workflow_name="nbflow.notebook")  # fmt: skip
        except nbflow.NbflowError as exc:
            _note(f"nbflow: step {name!r} ran in {took}; NOT recorded: {exc}")
            return value
        _note(f"nbflow: step {name!r} ran in {took}; recorded")
        return value


def _flush_figures() -> None:
    """Show the figures the cell drew now, while its output is recorded (matplotlib's inline
    backend would show them after the cell, where they would not be recorded)."""
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is not None:
        with contextlib.suppress(Exception):
            inline.flush_figures()


def _quiet(code: str) -> bool:
    """Whether the cell ends with ``;`` (its last value is not shown)."""
    try:
        return bool(DisplayHook.semicolon_at_end_of_expression(code))  # type: ignore[no-untyped-call]
    except Exception:  # tokenize errors: show it
        return False


def _pickle_variables(values: dict[str, Any], droppable: set[str]) -> tuple[bytes | None, str]:
    """Pickle variables together (objects they share stay shared); else name those that fail.

    Those in ``droppable`` (``with ... as`` targets: closed files and the like) are left out
    quietly when they cannot be pickled.

    Returns:
        ``(pickle or None, "")``, or ``(None, "'name' (error), ...")`` when some cannot be.
    """
    try:
        return (pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL) if values else None), ""
    except Exception:
        errors = {var: _pickle_error(value) for var, value in values.items()}
    bad = ", ".join(f"{var!r} ({error})" for var, error in errors.items() if error and var not in droppable)  # fmt: skip
    if bad:
        return None, bad
    kept = {var: value for var, value in values.items() if not errors[var]}
    try:
        return (pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL) if kept else None), ""
    except Exception as exc:  # each alone pickles, together they do not
        return None, f"{', '.join(map(repr, kept))} together ({type(exc).__name__}: {exc})"


def _pickle_error(value: Any) -> str:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def _note(text: str) -> None:
    sys.stdout.flush()  # what the cell printed comes first
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


_WIDGET = "application/vnd.jupyter.widget-view+json"


class Recording:
    """Tee a cell's output while it runs: it shows as usual, and is kept in order to show again.

    Only what the cell's own thread writes is kept (other threads may print meanwhile). Widgets
    are not kept: their models do not outlive the kernel. ``display(..., display_id=...)`` updates
    replace the output they update, and ``clear_output()`` forgets what was kept before it.

    Attributes:
        outputs: ``["stream", name, text]`` and ``["display", data, metadata]`` items.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.outputs: list[list[Any]] = []
        self._thread = threading.get_ident()
        self._active = False
        self._publishing = False
        self._display_ids: dict[str, list[Any]] = {}
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> Recording:
        self._active = True
        for name in ("stdout", "stderr"):
            self._patch(sys, name, getattr(sys, name), "write", self._stream_writer(name))
        pub = self.shell.display_pub
        self._patch(None, "", pub, "publish", self._publisher(pub.publish))
        self._patch(None, "", pub, "clear_output", self._clearer(pub.clear_output))
        return self

    def __exit__(self, *exc: object) -> None:
        self._active = False
        while self._undo:
            self._undo.pop()()

    def _patch(self, holder: Any, attr: str, obj: Any, name: str, new: Any) -> None:
        """Set ``obj.name = new`` (undone on exit); a stream that refuses is wrapped instead."""
        had = vars(obj).get(name, _FAILED) if hasattr(obj, "__dict__") else _FAILED
        try:
            setattr(obj, name, new)
        except (AttributeError, TypeError):  # e.g. a C io object: replace the stream itself
            if holder is not None:
                setattr(holder, attr, _Wrapped(obj, new))
                self._undo.append(lambda: setattr(holder, attr, obj) if isinstance(getattr(holder, attr), _Wrapped) else None)  # fmt: skip
            return

        def undo() -> None:
            if vars(obj).get(name) is new:
                if had is _FAILED:
                    delattr(obj, name)
                else:
                    setattr(obj, name, had)

        self._undo.append(undo)

    def _keep(self, name: str, text: str) -> None:
        if not self._active or self._publishing or not text:
            return
        if threading.get_ident() != self._thread:
            return
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last[0] == "stream" and last[1] == name:
            last[2] += text
        else:
            self.outputs.append(["stream", name, text])

    def _stream_writer(self, name: str) -> Callable[..., Any]:
        original = getattr(sys, name).write

        def write(text: str, *args: Any, **kwargs: Any) -> Any:
            self._keep(name, text)
            return original(text, *args, **kwargs)

        return write

    def _publisher(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def publish(data: dict[str, Any], metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            if self._active and threading.get_ident() == self._thread and _WIDGET not in data:
                display_id = (kwargs.get("transient") or {}).get("display_id")
                if kwargs.get("update"):
                    if display_id in self._display_ids:
                        self._display_ids[display_id][1:] = [data, metadata or {}]
                else:
                    self.outputs.append(["display", data, metadata or {}])
                    if display_id:
                        self._display_ids[display_id] = self.outputs[-1]
            self._publishing = True  # a plain shell prints text/plain: do not keep it twice
            try:
                return original(data, metadata, *args, **kwargs)
            finally:
                self._publishing = False

        return publish

    def _clearer(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def clear_output(*args: Any, **kwargs: Any) -> Any:
            if self._active and threading.get_ident() == self._thread:
                self.outputs.clear()
                self._display_ids.clear()
            return original(*args, **kwargs)

        return clear_output

    @staticmethod
    def replay(shell: Any, outputs: list[list[Any]]) -> None:
        """Show recorded outputs again, in order."""
        for item in outputs:
            if item[0] == "stream":
                stream = sys.stdout if item[1] == "stdout" else sys.stderr
                stream.write(item[2])
                stream.flush()
            else:
                shell.display_pub.publish(item[1], item[2])


class _Wrapped:
    """A stream whose ``write`` is replaced (for streams that refuse a patched attribute)."""

    def __init__(self, stream: Any, write: Callable[..., Any]) -> None:
        self._stream, self.write = stream, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def format_result(shell: Any, value: Any) -> list[Any] | None:
    """``[data, metadata]`` of a value as the display hook would show it (None: nothing)."""
    try:
        data, metadata = shell.display_formatter.format(value)
    except Exception:
        return None
    data = {k: v for k, v in data.items() if k != _WIDGET}
    return [data, metadata] if data else None


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
