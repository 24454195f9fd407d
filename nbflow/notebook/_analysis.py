"""What a durable cell reads and binds, and the key that says whether a recorded run still holds.

A cell's *key* is a hash of its name, its source and its inputs: for each name the cell reads
before binding it, the key of the durable cell that produced the value (so a change upstream
re-runs everything downstream), else a fingerprint of plain values (numbers, strings, small
containers; functions and classes defined in the notebook by :func:`nbflow._fingerprint.
fingerprint`: their code and all it uses, helpers and globals included) and only the type of
anything else. Values are encoded by :mod:`nbflow._canonical`, so a key is the same in every
kernel: a set's order (which follows the hash seed) and a dict's insertion order are not part
of it.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import decimal
import fractions
import pathlib
import re
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

from nbflow._canonical import canonical, digest
from nbflow._fingerprint import fingerprint
from nbflow.workflow._steps import StepFunction
from nbflow.workflow._workflows import WorkflowFunction

__all__ = ["HIDDEN", "Names", "analyze", "cell_key"]

#: Names IPython and Python keep in the namespace: never a cell's input, never what it assigned.
HIDDEN = re.compile(r"_+|_i+|_i?\d+|_ih|_oh|_dh|_exit_code|In|Out|get_ipython|exit|quit|__\w+__")
_SCALARS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    dt.date,
    dt.time,
    dt.timedelta,
    decimal.Decimal,
    fractions.Fraction,
    pathlib.PurePath,
)
_NATIVE = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_FINGERPRINT_BUDGET = 100_000  # characters: bigger plain values count by their type only
_FORMAT = 3  # of the key: 1 hashed repr() texts (a set's follows the hash seed) as JSON; 2 took
# a notebook function by its own code and defaults only (not the helpers and globals it uses)


class Names:
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

    def definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        """A ``def`` or ``class``: its body in a scope of its own, then what its head reads."""
        heads: list[ast.expr] = list(node.decorator_list)
        if isinstance(node, ast.ClassDef):
            heads += [*node.bases, *(k.value for k in node.keywords)]
            self.scope(node.body, set())
        else:
            heads += [d for d in [*node.args.defaults, *node.args.kw_defaults] if d]
            params = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
            self.scope(node.body, params | {node.name})
        for expr in heads:
            self.expr(expr)
        self.bound.add(node.name)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.definition(node)
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
                    found = ast.walk(item.optional_vars)
                    self.with_targets |= {n.id for n in found if isinstance(n, ast.Name)}
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
            later = (p for g in rest for p in (g.target, g.iter, *g.ifs))
            parts += [first.target, *first.ifs, *later]
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
        names = [sub for node in nodes for sub in ast.walk(node) if isinstance(sub, ast.Name)]
        for name in names:
            # (a store of a name not local: declared global, so not a read)
            if not isinstance(name.ctx, ast.Store) and name.id not in local:
                self.load(name.id)


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


def analyze(tree: ast.Module) -> Names:
    """What a cell reads before binding it (``.reads``), mutates (``.mutated``: bases of
    subscript and attribute stores) and binds with ``with ... as`` (``.with_targets``).

    Conservative: a name read anywhere in a branch or a function body counts as read.
    """
    names = Names()
    names.body(tree.body)
    return names


def cell_key(
    name: str,
    source: str,
    reads: set[str],
    ns: Mapping[str, Any],
    producers: Mapping[str, tuple[str, str, int]],
) -> str:
    """The key of a cell named ``name`` with this source, given the namespace ``ns`` it reads.

    The same in every kernel for the same cell and inputs (:mod:`nbflow._canonical`: no hash
    seed, no insertion order of a dict, no address is part of it).

    Args:
        name: The cell's name (``%%nbflow step NAME``).
        source: The cell's body.
        reads: The names it reads before binding them (:func:`analyze`).
        ns: The namespace the cell runs in.
        producers: variable -> (name and key of the durable cell that assigned it, id() of the
            value).
    """
    return cell_key_parts(name, source, reads, ns, producers).key


class KeyInput(NamedTuple):
    """One input of a cell's key: a name the cell reads, and what it counts by.

    Attributes:
        name: The variable.
        kind: ``"cell"`` (made by a durable cell), ``"value"`` (a plain value) or ``"type"``.
        digest: The producing cell's key, the value's fingerprint, or the type's qualified name.
        step: The name of the durable cell that made it (kind ``"cell"``; else None). Not part
            of the key.
    """

    name: str
    kind: str
    digest: str
    step: str | None = None


class KeyParts(NamedTuple):
    """A cell's key and what it hashes, to tell why a key changed (:func:`cell_key_parts`).

    Attributes:
        key: The key (:func:`cell_key`).
        source_digest: A digest of the cell's normalized source.
        inputs: Its inputs, by name.
    """

    key: str
    source_digest: str
    inputs: tuple[KeyInput, ...]


def cell_key_parts(
    name: str,
    source: str,
    reads: set[str],
    ns: Mapping[str, Any],
    producers: Mapping[str, tuple[str, str, int]],
) -> KeyParts:
    """The key of a cell (:func:`cell_key`, same arguments) with the parts it hashes."""
    inputs: list[KeyInput] = []
    for var in sorted(reads):
        if HIDDEN.fullmatch(var) or var not in ns:
            continue
        value = ns[var]
        producer = producers.get(var)
        if producer is not None and producer[2] == id(value):
            if producer[0] != name:  # what a cell made itself is not its input
                inputs.append(KeyInput(var, "cell", producer[1], producer[0]))
        else:
            fp = _fingerprint(value, [_FINGERPRINT_BUDGET])
            kind = type(value)
            if fp:
                inputs.append(KeyInput(var, "value", fp))
            else:
                inputs.append(KeyInput(var, "type", f"{kind.__module__}.{kind.__qualname__}"))
    normalized = _normalized(source)
    hashed = [(i.name, i.kind, i.digest) for i in inputs]  # (the step's name is not hashed)
    key = digest((_FORMAT, name, normalized, hashed))
    return KeyParts(key, digest(normalized), tuple(inputs))


class _NotPlain(Exception):
    """A value that counts by its type only (too big, or not a plain value)."""


def _fingerprint(value: Any, budget: list[int]) -> str | None:
    """A digest of a plain value that is the same in any kernel (None: too big, or not a plain
    value: a number, string, date, path, a container of them, a notebook function)."""

    def plain(v: Any) -> bytes | None:
        """The :data:`~nbflow._canonical.Hook` that admits plain values only, within budget."""
        budget[0] -= 1
        if budget[0] < 0:
            raise _NotPlain
        kind = type(v)
        if kind in _CONTAINERS or (kind.__base__ is tuple and hasattr(kind, "_fields")):
            return None  # its items are looked at in turn
        if isinstance(v, types.ModuleType):
            return f"module:{v.__name__}".encode()
        if isinstance(v, _SCALARS):
            text = repr(v)
            budget[0] -= len(text)
            if budget[0] < 0:
                raise _NotPlain
            if kind in _NATIVE:
                return None  # the encoding's own, exact (1, 1.0 and True differ)
            return f"{kind.__module__}.{kind.__qualname__}:{text}".encode()
        if isinstance(v, (list, tuple, set, frozenset, dict)):  # a subclass: its items too
            base = next(b for b in _CONTAINERS if isinstance(v, b))
            return f"{kind.__qualname__}:".encode() + canonical(base(v), hook=plain)
        fn = v.fn if isinstance(v, (WorkflowFunction, StepFunction)) else v
        if isinstance(fn, (types.FunctionType, type)) and fn.__module__ == "__main__":
            # its code, defaults, closure, the globals it reads and the helpers it calls, down
            # to the last: a helper edited two levels down changes the key too
            return f"code:{fingerprint(fn)}".encode()
        raise _NotPlain

    try:
        return digest(value, hook=plain)
    except Exception:  # _NotPlain, a cycle through a subclass, a repr that fails: type only
        return None


def _normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip("\n").splitlines()).strip("\n")
