"""Code fingerprints: a hash of what a function does, the same in every process and kernel.

For a step cache, and for noticing that code changed between two runs in a notebook::

    fingerprint(parse)            # 32 hex digits
    parts = code_parts(parse)     # what it is the hash of (store parts.to_json() beside it)
    describe_changes(old, parts)  # ["the code of `strip_tags` changed (called by `parse`
                                  #   through `clean`, two levels down)"]

What counts, starting from the function and going down everything it references (breadth first,
each function or class expanded once, so recursion and cycles end):

- its code (:mod:`nbflow._fingerprint_code`): bytecode and the constants it uses, nested code
  objects by the same rule; not comments, docstrings, formatting, file names or line numbers;
- the globals it reads (nested code's too), its closure cells and its default arguments: the
  user's own functions and classes (``__main__``, modules without a file or outside the installed
  paths) by their code, recursively; plain values by content; anything else by its type
  (:mod:`nbflow._fingerprint_values`); a user module's attributes that the code names
  (``helpers.clean``) as globals of their own;
- functions, classes and modules of installed packages by the distribution's name and version
  (``"requests==2.31.0"``; the standard library and builtins as ``"python==3.11"``), never by
  their code;
- a class: its user-defined bases, its methods (static and class methods, property accessors
  included) and its plain class attributes.

It looks through nbflow's ``@step`` and ``@workflow`` wrappers (by their ``fn``), functools
wrappers (``__wrapped__``, the wrapper's own code counting too when it is a function),
``functools.partial`` (the function, and the bound arguments as values), bound methods (the
function and the class of ``__self__``) and callable objects (their class).

Warm, it is fast: each code object is analysed once (cached, thread-safe); what values the
globals, cells and defaults hold is looked at again on every call, since they can change.
"""

from __future__ import annotations

import functools
import types
from collections import deque
from collections.abc import Callable
from typing import Any

from nbflow._errors import InvalidValueError
from nbflow._fingerprint_code import code_info
from nbflow._fingerprint_parts import CodeParts, Part, describe_changes, digest_of
from nbflow._fingerprint_values import (
    PYTHON,
    import_label,
    name_digest,
    origin,
    origin_of,
    qualified_name,
    text_digest,
    value_digest,
)

__all__ = ["CodeParts", "Part", "code_parts", "describe_changes", "fingerprint"]

_MAX_NODES = 5_000  # functions and classes expanded, at most (a deterministic cut)
_MAX_UNWRAP = 32
_MODULE_DEPTH = 3  # attribute chains followed on the user's modules: helpers.sub.fn
_EMPTY_CELL = text_digest("empty cell")
_NODES = (types.FunctionType, type, functools.partial)
_BUILTINS = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)
_CALLABLES = (*_NODES, *_BUILTINS)
_UNWRAPPED = (*_CALLABLES, types.MethodType, types.ModuleType)
_DATA = frozenset({type(None), bool, int, float, complex, str, bytes, tuple, list, dict, set})


def fingerprint(fn: Callable[..., Any]) -> str:
    """A hash of what ``fn`` does (32 hex digits), equal in any process for the same code.

    Args:
        fn: A function, lambda, method, class, ``functools.partial``, nbflow step or workflow,
            or any other callable.

    Raises:
        InvalidValueError: ``fn`` is not callable.
    """
    return code_parts(fn).digest


def code_parts(fn: Callable[..., Any]) -> CodeParts:
    """The parts :func:`fingerprint` hashes, sorted; ``.digest`` is the fingerprint.

    Raises:
        InvalidValueError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise InvalidValueError(
            f"fingerprint() takes a function, a class or another callable, not a "
            f"{qualified_name(fn)} ({fn!r:.80}). Pass the function itself (parse, not parse()).",
            what="A function to fingerprint",
            value=fn,
        )
    walk = _Walk()
    try:
        walk.start(fn)
    except Exception:  # (what could not be read counts as such; what was found counts too)
        walk.add((qualified_name(fn),), "code", "<unreadable>", text_digest("unreadable"))
    parts = tuple(Part(*part) for part in sorted(set(walk.parts)))
    return CodeParts(digest_of(parts), parts)


class _Walk:
    """One fingerprint: the parts found, and the functions and classes still to expand."""

    def __init__(self) -> None:
        self.parts: list[tuple[tuple[str, ...], str, str, str]] = []
        self.seen: dict[int, Any] = {}  # id -> the object (kept alive: ids stay theirs)
        self.queue: deque[tuple[Any, tuple[str, ...]]] = deque()
        self.values: dict[int, tuple[Any, str, list[Any]]] = {}  # id -> (value, digest, refs)

    def start(self, fn: Any) -> None:
        target, owner = _unwrap(fn), None
        if isinstance(target, types.MethodType):
            target, owner = _unwrap(target.__func__), _owner(target)
        if not isinstance(target, _UNWRAPPED):
            target = type(target)  # a callable object: its class
        if isinstance(target, functools.partial) or (
            isinstance(target, (types.FunctionType, type)) and origin_of(target) is None
        ):
            path = self.edge((), target)
        else:
            path = (qualified_name(target),)
            self.package(path, _label(target))
        if owner is not None:
            self.ref(path, owner)
        while self.queue:
            obj, at = self.queue.popleft()
            try:
                self.expand(obj, at)
            except Exception:  # (a class whose members cannot be read: what was found counts)
                self.add(at, "global", "<unreadable>", text_digest("unreadable"))

    def add(self, path: tuple[str, ...], kind: str, name: str, digest: str) -> None:
        self.parts.append((path, kind, name, digest))

    def package(self, path: tuple[str, ...], label: str) -> None:
        self.parts.append((path, "package", label, name_digest(label)))

    def edge(self, path: tuple[str, ...], obj: Any) -> tuple[str, ...]:
        """``obj`` (the user's function or class, or a partial) referenced from ``path``: its
        head part below ``path``, and its expansion if it was not met before."""
        full, kind, name, digest = _head(obj)
        child = (*path, full)
        self.add(child, kind, name, digest)
        if id(obj) not in self.seen and len(self.seen) < _MAX_NODES:
            self.seen[id(obj)] = obj
            self.queue.append((obj, child))
        return child

    def ref(self, path: tuple[str, ...], obj: Any) -> bool:
        """A function or class met at ``path``: an edge if it is the user's (True), else its
        package."""
        if isinstance(obj, functools.partial) or (
            isinstance(obj, (types.FunctionType, type)) and origin_of(obj) is None
        ):
            self.edge(path, obj)
            return True
        self.package(path, _label(obj))
        return False

    def slot(self, path: tuple[str, ...], kind: str, name: str, value: Any, attrs: Any) -> None:
        """A global, closure cell or default of the function at ``path``. Never raises."""
        try:
            self.value(path, kind, name, value, attrs, 0)
        except Exception:
            self.add(path, kind, name, text_digest(f"type:{qualified_name(value)}"))

    def value(
        self, path: tuple[str, ...], kind: str, name: str, value: Any, attrs: Any, depth: int
    ) -> None:
        v = _unwrap(value)
        if isinstance(v, types.MethodType):
            self.value(path, kind, name, v.__func__, attrs, depth)
            self.ref(path, _owner(v))
        elif isinstance(v, types.ModuleType):
            self.module(path, kind, name, v, attrs, depth)
        elif isinstance(v, _CALLABLES):
            if not self.ref(path, v):  # a package's: by its name too
                self.add(path, kind, name, name_digest(f"name:{qualified_name(v)}"))
        else:
            known = self.values.get(id(v))
            if known is None:  # (a value many functions read is digested once per fingerprint)
                found: list[Any] = []
                known = self.values[id(v)] = (v, value_digest(v, found), found)
                found.sort(key=qualified_name)
            self.add(path, kind, name, known[1])
            for inner in known[2]:
                self.ref(path, inner)
            cls = type(v)
            if cls not in _DATA:
                if origin_of(cls) is None:
                    self.edge(path, cls)  # an instance of the user's class: its code counts
                elif callable(v):
                    self.package(path, _label(cls))

    def module(
        self, path: tuple[str, ...], kind: str, name: str, mod: Any, attrs: Any, depth: int
    ) -> None:
        self.add(path, kind, name, name_digest(f"module:{mod.__name__}"))
        label = origin(mod.__name__)
        if label is not None:
            self.package(path, label)
        elif depth < _MODULE_DEPTH:  # the user's module: the attributes the code names
            members = vars(mod)
            for attr in attrs:
                if attr in members:
                    self.value(path, kind, f"{name}.{attr}", members[attr], attrs, depth + 1)

    def expand(self, obj: Any, path: tuple[str, ...]) -> None:
        if isinstance(obj, type):
            self.cls(obj, path)
        elif isinstance(obj, functools.partial):
            self.slot(path, "global", "func", obj.func, ())
            for i, arg in enumerate(obj.args):
                self.slot(path, "default", f"args[{i}]", arg, ())
            for key, arg in sorted(obj.keywords.items()):
                self.slot(path, "default", key, arg, ())
        else:
            self.function(obj, path)

    def function(self, fn: types.FunctionType, path: tuple[str, ...]) -> None:
        code = fn.__code__
        info = code_info(code)
        defaults = fn.__defaults__ or ()
        if defaults:
            names = code.co_varnames[: code.co_argcount][-len(defaults) :]
            for arg, value in zip(names, defaults, strict=False):
                self.slot(path, "default", arg, value, info.attrs)
        for arg, value in sorted((fn.__kwdefaults__ or {}).items()):
            self.slot(path, "default", arg, value, info.attrs)
        for var, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            try:
                content = cell.cell_contents
            except ValueError:  # not assigned yet
                self.add(path, "closure", var, _EMPTY_CELL)
                continue
            self.slot(path, "closure", var, content, info.attrs)
        namespace = fn.__globals__
        for var in info.loads:
            value = namespace.get(var, namespace)
            if value is namespace:  # (a builtin)
                continue
            if var in info.mutated:  # state it keeps (a call log): by type, not content
                self.add(path, "global", var, name_digest(f"state:{type(value).__qualname__}"))
            else:
                self.slot(path, "global", var, value, info.attrs)
        for module in info.imports:
            label = import_label(module)
            if label is not None:
                self.package(path, label)
        wrapped = fn.__dict__.get("__wrapped__")
        if wrapped is not None:
            self.slot(path, "global", "__wrapped__", wrapped, ())

    def cls(self, cls: type, path: tuple[str, ...]) -> None:
        for base in cls.__bases__:
            if base is not object:
                self.ref(path, base)
        if type(cls) is not type:
            self.ref(path, type(cls))
        for name, value in sorted(vars(cls).items(), key=lambda item: str(item[0])):
            for member in _members(name, value):
                self.slot(path, "global", name, member, ())


def _unwrap(value: Any) -> Any:
    """What a wrapper stands for: nbflow's ``@step``/``@workflow`` (its ``fn``), a functools
    wrapper that is not a function (``lru_cache``: its ``__wrapped__``)."""
    v = value
    for _ in range(_MAX_UNWRAP):
        kind = type(v)
        if kind in _DATA or isinstance(v, _UNWRAPPED):
            return v
        if kind.__module__.startswith("nbflow."):  # duck-typed: this module imports no wrapper
            inner = getattr(v, "fn", None)
            if callable(inner):
                v = inner
                continue
        try:
            state = object.__getattribute__(v, "__dict__")
        except Exception:
            return v
        wrapped = state.get("__wrapped__") if isinstance(state, dict) else None
        if wrapped is None or not callable(wrapped):
            return v
        v = wrapped
    return v


def _owner(method: types.MethodType) -> type:
    """The class a bound method is bound to (a class method: the class itself)."""
    bound = method.__self__
    return bound if isinstance(bound, type) else type(bound)


def _label(obj: Any) -> str:
    """The package label of a function, class or other callable that is not the user's."""
    label = origin_of(obj)
    if label is None and not isinstance(obj, (type, types.FunctionType)):
        owner = getattr(obj, "__objclass__", None) or getattr(obj, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            label = origin_of(owner if isinstance(owner, type) else type(owner))
    return label or PYTHON


def _head(obj: Any) -> tuple[str, str, str, str]:
    """``(path element, kind, name, digest)`` of a node: a function, a class or a partial."""
    if isinstance(obj, functools.partial):
        inner = _unwrap(obj.func)
        short = getattr(inner, "__qualname__", None)
        full = qualified_name(inner)
        name = f"partial({short if isinstance(short, str) else full})"
        return f"functools.partial({full})", "code", name, text_digest(full)
    if isinstance(obj, type):
        bases = ",".join(qualified_name(b) for b in obj.__bases__)
        members = ",".join(sorted(str(n) for n, v in vars(obj).items() if _members(n, v)))
        shape = f"{bases}|{qualified_name(type(obj))}|{members}"
        return qualified_name(obj), "class", obj.__qualname__, text_digest(shape)
    return qualified_name(obj), "code", obj.__qualname__, code_info(obj.__code__).digest


def _members(name: str, value: Any) -> list[Any]:
    """What of a class attribute counts: the functions of a method, the value of plain data;
    none of Python's own attributes (``__module__``, ``__firstlineno__``, ``__dict__``, ...)."""
    if isinstance(value, (staticmethod, classmethod)):
        return [value.__func__]
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if f is not None]
    if isinstance(value, functools.cached_property):
        return [value.func]
    if isinstance(value, _CALLABLES):
        return [value]
    if isinstance(name, str) and name.startswith("__") and name.endswith("__"):
        return []
    return [value]
