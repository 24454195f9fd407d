"""What a code object does, as a digest that leaves out how and where it was written.

A part of :mod:`nbflow._fingerprint`. The digest covers the instructions, the constants they use,
the names (of globals, attributes, arguments, locals, cells) and the flags that change what a call
does; nested code objects (inner functions, lambdas, comprehensions before 3.12) count by their
own digest, by the same rule. It leaves out:

- the file name, ``co_firstlineno``, the line table (``co_linetable``/``co_lnotab``), positions
  and ``co_qualname`` (where a nested ``def`` sits), and ``co_stacksize`` (derived);
- the docstring. On CPython 3.10 to 3.13 a function's ``co_consts[0]`` is its docstring, or None when
  it has none (3.14 flags it instead): so adding one shifts the index of every other constant.
  Constants are therefore hashed where the instructions use them (a ``LOAD_CONST`` counts by the
  constant's canonical bytes, not its index), and a docstring, which no instruction loads, never
  counts, whatever its version puts at ``co_consts[0]``;
- what the formatting changes: ``NOP`` (kept for line events), ``EXTENDED_ARG`` and ``CACHE``
  entries are dropped, a jump counts by the index of its target among the kept instructions (and
  so do the bounds of the exception table), 3.13's fused instructions (``LOAD_FAST_LOAD_FAST``
  and kin, made only when both halves are on one line) count as their two halves, and the jump
  optimizations the compiler makes only within a line are made everywhere (a jump to a jump goes
  to the end of the chain, a conditional jump over a jump becomes the inverse jump).

Constants are encoded by :func:`nbflow._canonical.canonical`: a ``frozenset`` constant (``x in
{"a", "b"}``) iterates in the order of the hash seed, its encoding does not.

Each code object's :class:`CodeInfo` is computed once (cached per code object, thread-safe).
"""

from __future__ import annotations

import dis
import hashlib
import types
import weakref
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, NamedTuple

from nbflow._canonical import canonical

__all__ = ["CodeInfo", "code_info"]

_CONSTS = frozenset(dis.hasconst)
_JUMPS = frozenset([*dis.hasjrel, *dis.hasjabs, *getattr(dis, "hasjump", ())])
_SKIPPED = frozenset({"NOP", "EXTENDED_ARG", "CACHE"})
_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_SUBSCRIPT_STORES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR"})
#: The methods of list, dict, set, bytearray and deque that change them in place.
_MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "add"}
    | {"discard", "update", "setdefault", "popitem", "appendleft", "extendleft", "popleft"}
    | {"difference_update", "intersection_update", "symmetric_difference_update"}
)
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
#: 3.13+ instructions made of two, fused only when both are on the same line: counted as the two.
_FUSED = {
    "LOAD_FAST_LOAD_FAST": ("LOAD_FAST", "LOAD_FAST"),
    "STORE_FAST_LOAD_FAST": ("STORE_FAST", "LOAD_FAST"),
    "STORE_FAST_STORE_FAST": ("STORE_FAST", "STORE_FAST"),
    "LOAD_FAST_BORROW_LOAD_FAST_BORROW": ("LOAD_FAST_BORROW", "LOAD_FAST_BORROW"),
}
_UNCONDITIONAL = frozenset(
    {"JUMP", "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_ABSOLUTE", "JUMP_NO_INTERRUPT"}
    | {"JUMP_BACKWARD_NO_INTERRUPT"}
)
_INVERSE = {
    "POP_JUMP_IF_TRUE": "POP_JUMP_IF_FALSE",
    "POP_JUMP_IF_FALSE": "POP_JUMP_IF_TRUE",
    "POP_JUMP_IF_NONE": "POP_JUMP_IF_NOT_NONE",
    "POP_JUMP_IF_NOT_NONE": "POP_JUMP_IF_NONE",
}
_OR_POP_INVERSE = {
    "JUMP_IF_TRUE_OR_POP": "JUMP_IF_FALSE_OR_POP",
    "JUMP_IF_FALSE_OR_POP": "JUMP_IF_TRUE_OR_POP",
}
_CONST_TAGS = {str: "s", int: "i", type(None): "N", bool: "B", bytes: "b"}
_EXITS = frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
_STORES = frozenset({"SWAP", "STORE_FAST", "STORE_FAST_MAYBE_NULL", "POP_TOP"})
_PASSES = 16  # normalization passes at most
_INLINED = 6  # the longest block that leaves copied where a jump to it is
_OR_POP = {"JUMP_IF_TRUE_OR_POP": "POP_JUMP_IF_TRUE", "JUMP_IF_FALSE_OR_POP": "POP_JUMP_IF_FALSE"}
#: The flags that change what a call does (optimized ... async generator); not 3.14's
#: CO_HAS_DOCSTRING (0x4000000) nor CO_METHOD.
_FLAGS = 0x3FF

_Entry = tuple[
    int, int, int, int, int
]  # an exception table entry: start, end, target, depth, lasti
#: id() of a code object -> a weak reference to it and its info. (Looked up by id, not by the
#: code object: a code object's hash and == walk all its constants, nested code included.)
#: Reads and writes of a dict are atomic, so no lock is needed.
_cache: dict[int, tuple[weakref.ref[types.CodeType], CodeInfo]] = {}


class CodeInfo(NamedTuple):
    """What :mod:`nbflow._fingerprint` needs of a code object, nested code included."""

    digest: str
    """16 hex digits: what the code does (see the module's documentation)."""
    loads: tuple[str, ...]
    """The global names it reads (``LOAD_GLOBAL``, ``LOAD_NAME``), sorted."""
    attrs: tuple[str, ...]
    """Every name of ``co_names`` (attributes too), sorted: the attributes to follow on a module."""
    imports: tuple[str, ...]
    """The modules it imports by absolute name inside its body, sorted."""
    mutated: tuple[str, ...] = ()
    """The globals it changes in place (``CALLS.append(x)``, ``SEEN[k] = v``), sorted: state it
    keeps, not data it is given, so they count by type (a call log never changes the code)."""


def code_info(code: types.CodeType) -> CodeInfo:
    """The :class:`CodeInfo` of ``code``, computed once per code object (thread-safe)."""
    entry = _cache.get(id(code))  # (a dict read is atomic: no lock on the warm path)
    if entry is not None and entry[0]() is code:
        return entry[1]
    try:
        info = _compute(code)
    except Exception:  # (bytecode dis cannot read: its raw bytes, lines and all)
        raw = code.co_code + " ".join(code.co_names).encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(raw, digest_size=8).hexdigest()
        info = CodeInfo(digest, tuple(sorted(set(code.co_names))), (), (), ())
    key = id(code)

    def forget(ref: weakref.ref[types.CodeType]) -> None:
        if _cache.get(key, (None,))[0] is ref:  # (not a newer code object's, at the same id)
            _cache.pop(key, None)

    _cache[key] = (weakref.ref(code, forget), info)  # (two threads may both compute it: alike)
    return info


def _compute(code: types.CodeType) -> CodeInfo:
    bytecode = dis.Bytecode(code)
    found = _Found(code)
    ops, initial = _ops(list(bytecode), found)
    entries = [
        (initial(e.start), initial(e.end), initial(e.target), e.depth, int(e.lasti))
        for e in getattr(bytecode, "exception_entries", ())  # 3.11+
    ]
    ops, entries = _normalized(ops, entries)
    tokens = [
        f"args {code.co_argcount} {code.co_posonlyargcount} {code.co_kwonlyargcount}",
        f"flags {code.co_flags & _FLAGS}",
        f"name {code.co_name}",
        "names " + " ".join(code.co_names),
        "varnames " + " ".join(code.co_varnames),
        "freevars " + " ".join(code.co_freevars),
        "cellvars " + " ".join(code.co_cellvars),
    ]
    tokens += [f"{op.name} {op.arg} @{op.target}" for op in ops]
    tokens += [f"except {' '.join(map(str, entry))}" for entry in entries]
    text = "\n".join(tokens).encode("utf-8", "surrogatepass")
    return CodeInfo(
        hashlib.blake2b(text, digest_size=8).hexdigest(),
        tuple(sorted(found.loads)),
        tuple(sorted(found.attrs)),
        tuple(sorted(found.imports)),
        tuple(sorted(found.mutated)),
    )


class _Op:
    """One instruction: its name, its argument (a constant's digest), its target's index."""

    __slots__ = ("arg", "name", "target")

    def __init__(self, name: str, arg: Any, target: int | None = None) -> None:
        self.name = name
        self.arg = arg
        self.target = target


def _ops(
    instructions: list[dis.Instruction], found: _Found
) -> tuple[list[_Op], Callable[[int], int]]:
    """The kept instructions (fused ones split, jumps named by kind), with jump targets as
    indexes; and a function: an offset -> the index of the first kept instruction from it."""
    ops: list[_Op] = []
    offsets: list[int] = []
    firsts: list[int] = []
    for ins in instructions:
        offsets.append(ins.offset)
        firsts.append(len(ops))
        name = ins.opname
        if name in _SKIPPED:
            continue
        if name in _FUSED:
            first, second = _FUSED[name]
            ops += [_Op(first, (ins.arg or 0) >> 4), _Op(second, (ins.arg or 0) & 15)]
            continue
        found.instruction(name, ins.argval)
        if ins.opcode in _CONSTS:
            ops.append(_Op(name, found.constant(ins.argval)))
        elif ins.opcode in _JUMPS and isinstance(ins.argval, int):
            kind = "JUMP" if name in _UNCONDITIONAL else name.replace("_FORWARD_IF", "_IF")
            ops.append(_Op(kind.replace("_BACKWARD_IF", "_IF"), None, ins.argval))
        else:
            if ins.argval == "__firstlineno__" and ops:  # 3.13: a class body's first line
                ops[-1].arg = "firstlineno"
            ops.append(_Op(name, ins.arg))

    def initial(offset: int) -> int:
        i = bisect_left(offsets, offset)
        return firsts[i] if i < len(firsts) else len(ops)

    for op in ops:
        if op.target is not None:
            op.target = initial(op.target)
    return ops, initial


def _normalized(ops: list[_Op], entries: list[_Entry]) -> tuple[list[_Op], list[_Entry]]:
    """Make what the compiler makes only when lines allow (so that formatting changes nothing)
    everywhere: see :func:`_edits`. Returns the instructions and the exception table."""
    for _ in range(_PASSES):
        _thread(ops)
        edits = _edits(ops, entries)
        if not edits:
            break
        remap: list[int] = []
        new: list[_Op] = []
        for i, op in enumerate(ops):
            remap.append(len(new))
            new += edits.get(i, [op])
        remap.append(len(new))
        for op in new:
            if op.target is not None:
                op.target = remap[op.target]
        ops = new
        entries = [(remap[s], remap[e], remap[t], d, x) for s, e, t, d, x in entries]
    return ops, _table(ops, entries)


def _table(ops: list[_Op], entries: list[_Entry]) -> list[_Entry]:
    """The exception table with no jump at the ends of a range (a jump raises nothing: whether a
    range covers it is the compiler's choice), no empty range, ranges with one handler and only
    jumps between them joined."""
    merged: list[_Entry] = []
    for start, end, target, depth, lasti in entries:
        while start < end and ops[start].name == "JUMP":
            start += 1
        while start < end and ops[end - 1].name == "JUMP":
            end -= 1
        if start >= end:
            continue
        entry = (start, end, target, depth, lasti)
        if merged and merged[-1][2:] == entry[2:]:
            gap = range(merged[-1][1], start)
            if all(ops[i].name == "JUMP" for i in gap):
                entry = (merged.pop()[0], end, target, depth, lasti)
        merged.append(entry)
    return merged


def _later(op: _Op, jump: _Op) -> bool:
    """Whether ``if c: goto X; goto Y`` has Y before X (then written ``if not c: goto Y;
    goto X``: the compiler writes either, as lines fall)."""
    return op.target is not None and jump.target is not None and jump.target < op.target


def _thread(ops: list[_Op]) -> None:
    """A jump to an unconditional jump goes where that one goes; 3.10-3.11's ``JUMP_IF_X_OR_POP``
    to another conditional jump goes where that one takes the value it keeps (``a and b or c``)."""
    for op in ops:
        hops = 0
        while op.target is not None and op.target < len(ops) and hops < len(ops):
            target = ops[op.target]
            want = _OR_POP.get(op.name)
            if target.name == "JUMP" and target.target is not None:
                op.target = target.target
            elif want is not None and target.name == want:
                op.name, op.target = want, target.target
            elif want is not None and target.name == op.name and target.target is not None:
                op.target = target.target  # the value is kept, and the next one jumps too
            elif want is not None and target.name in (_INVERSE[want], _OR_POP_INVERSE[op.name]):
                op.name, op.target = want, op.target + 1
            else:
                break
            hops += 1


def _edits(ops: list[_Op], entries: list[_Entry]) -> dict[int, list[_Op]]:
    """One pass: index -> what replaces the instruction there. Unreachable code goes, and so
    does a jump to the next instruction; a conditional jump over a jump becomes the inverse
    jump, and ``if c: goto X; goto Y`` jumps to the earlier first; the first of two stores to one local becomes a ``POP_TOP``; ``SWAP`` before stores
    becomes stores in another order; a jump to a short block that leaves (return, raise) becomes
    a copy of it."""
    targeted = {op.target for op in ops if op.target is not None} | {e[2] for e in entries}
    covered = {i for s, e, *_ in entries for i in range(s, e)}
    reached = _reachable(ops, entries)
    edits: dict[int, list[_Op]] = {i: [] for i in range(len(ops)) if i not in reached}
    i = 0
    while i < len(ops):
        op, after = ops[i], (ops[i + 1] if i + 1 < len(ops) else _Op("", None))
        free = i + 1 not in targeted and i + 1 not in edits  # (the next can be changed)
        if i in edits:
            pass
        elif op.name == "JUMP" and op.target == i + 1:
            edits[i] = []
        elif op.name in _INVERSE and op.target == i + 2 and after.name == "JUMP" and free:
            op.name, op.target = _INVERSE[op.name], after.target
            edits[i + 1] = []
        elif op.name in _INVERSE and after.name == "JUMP" and free and _later(op, after):
            op.name, op.target, after.target = _INVERSE[op.name], after.target, op.target
            edits[i] = [op]
        elif op.name == "STORE_FAST" == after.name and op.arg == after.arg and free:
            edits[i] = [_Op("POP_TOP", None)]
        elif op.name == "SWAP":
            i = _unswap(ops, i, targeted, edits)
        elif op.name == "JUMP" and i not in covered and op.target is not None:
            block = _exit_block(ops, op.target, covered)
            if block is not None:
                edits[i] = block
        i += 1
    return edits


def _reachable(ops: list[_Op], entries: list[_Entry]) -> set[int]:
    seen: set[int] = set()
    todo = [0, *(e[2] for e in entries)]
    while todo:
        i = todo.pop()
        while i < len(ops) and i not in seen:
            seen.add(i)
            op = ops[i]
            if op.target is not None:
                todo.append(op.target)
            if op.name == "JUMP" or op.name in _EXITS:
                break
            i += 1
    return seen


def _unswap(ops: list[_Op], start: int, targeted: set[int], edits: dict[int, list[_Op]]) -> int:
    """``SWAP``s among a run of stores (the compiler removes them only within a line): the
    stores in the order of the stack items they take, no ``SWAP``. Returns the run's last index."""
    end = start
    while end + 1 < len(ops) and ops[end + 1].name in _STORES and end + 1 not in targeted:
        end += 1
    stores = [i for i in range(start, end + 1) if ops[i].name != "SWAP"]
    names = [ops[i].arg for i in stores if ops[i].name != "POP_TOP"]
    if not stores or len(set(names)) != len(names):
        return end
    stack = list(range(len(stores) - 1, -1, -1))  # the items the stores take, top last
    taken: dict[int, _Op] = {}
    for i in range(start, end + 1):
        if ops[i].name != "SWAP":
            taken[stack.pop()] = ops[i]
        elif not isinstance(ops[i].arg, int) or not 1 < ops[i].arg <= len(stack):
            return end  # (it reaches below the run: left as it is)
        else:
            k = ops[i].arg
            stack[-1], stack[-k] = stack[-k], stack[-1]
    for i in range(start, end + 1):
        edits[i] = []
    for i, item in zip(stores, range(len(stores)), strict=True):
        edits[i] = [taken[item]]
    return end


def _exit_block(ops: list[_Op], start: int, covered: set[int]) -> list[_Op] | None:
    """A copy of the short block at ``start`` if it leaves the function and has no jump."""
    for j in range(start, min(start + _INLINED, len(ops))):
        if j in covered or ops[j].target is not None:
            return None
        if ops[j].name in _EXITS:
            return [_Op(op.name, op.arg) for op in ops[start : j + 1]]
    return None


class _Found:
    """The names a code object reads, nested code's included, met while walking it."""

    def __init__(self, code: types.CodeType) -> None:
        self.loads: set[str] = set()
        self.attrs: set[str] = set(code.co_names)
        self.imports: set[str] = set()
        self.mutated: set[str] = set()
        self.recent: list[Any] = []  # the last two constants loaded: an import's level
        self.previous: list[tuple[str, Any]] = []  # the last two instructions met

    def constant(self, value: Any) -> str:
        """How a constant an instruction loads counts: by content, nested code by its digest."""
        self.recent = [*self.recent[-1:], value]
        if isinstance(value, types.CodeType):
            nested = code_info(value)
            self.loads.update(nested.loads)
            self.attrs.update(nested.attrs)
            self.imports.update(nested.imports)
            self.mutated.update(nested.mutated)
            return f"code:{nested.digest}"
        tag = _CONST_TAGS.get(type(value))
        if tag is not None:  # the common constants, fast (repr is exact for these)
            return "=" + tag + hashlib.blake2b(repr(value).encode(), digest_size=8).hexdigest()
        try:
            data = canonical(value)
        except Exception:  # (a constant canonical cannot take apart: its type and repr)
            data = f"{type(value).__qualname__}:{value!r}".encode("utf-8", "surrogatepass")
        return "=" + hashlib.blake2b(data, digest_size=8).hexdigest()

    def instruction(self, name: str, argval: Any) -> None:
        previous = self.previous
        changes = name in _ATTRIBUTE_LOADS and argval in _MUTATORS  # GLOBAL.append(...)
        if changes and previous and previous[-1][0] in _GLOBAL_LOADS:
            self.mutated.add(previous[-1][1])
        stores = name in _SUBSCRIPT_STORES and len(previous) == 2  # GLOBAL[key] = value
        if stores and previous[0][0] in _GLOBAL_LOADS:
            self.mutated.add(previous[0][1])
        self.previous = [*previous[-1:], (name, argval)]
        if name in _GLOBAL_LOADS and isinstance(argval, str):
            self.loads.add(argval)
        elif name == "IMPORT_NAME" and isinstance(argval, str) and argval:
            level = self.recent[0] if len(self.recent) == 2 else None
            if level == 0:  # (a relative import names no installed package)
                self.imports.add(argval)
