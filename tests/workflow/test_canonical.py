"""The canonical encoding of values (:mod:`nbflow._canonical`), and the durable-cell keys built on it.

Equal values give equal bytes in any process, whatever its hash seed (checked in subprocesses run
with different ``PYTHONHASHSEED`` values); different values give different bytes, where JSON or a
pickle would confuse them.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import math
import os
import pathlib
import struct
import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest

from nbflow._canonical import canonical, digest
from nbflow._errors import InvalidValueError

Point = collections.namedtuple("Point", "x y")
Pair = collections.namedtuple("Pair", "x y")


class Perm(enum.Flag):
    R = 4
    W = 2


class Color(enum.Enum):
    RED = 1
    CRIMSON = 1  # an alias: the same member
    BLUE = 2


@dataclasses.dataclass
class Item:
    name: str
    tags: set[str]
    cache: dict[str, int] = dataclasses.field(default_factory=dict, compare=False)


class Bag:
    """An object whose state holds a set."""

    def __init__(self, items: Any) -> None:
        self.items = set(items)


def module_function() -> None: ...


# -- different values differ ----------------------------------------------------------------------

DIFFERENT = [
    ({1: "x"}, {"1": "x"}),
    ((1, 2), [1, 2]),
    (1, 1.0),
    (1, True),
    (1.0, True),
    (0, False),
    (None, False),
    ("1", b"1"),
    (b"1", bytearray(b"1")),
    (0.0, -0.0),
    (set(), frozenset()),
    ((), []),
    ({}, set()),
    (Point(1, 2), (1, 2)),
    (Point(1, 2), Pair(1, 2)),
    (Color.RED, 1),
    (Color.RED, Color.BLUE),
    (Perm.R, Perm.R | Perm.W),
    (Perm(0), Perm.W),
    (dt.date(2024, 1, 2), dt.datetime(2024, 1, 2)),
    (dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)),
    (dt.timedelta(1), dt.timedelta(seconds=1)),
    (decimal.Decimal("1"), 1),
    (uuid.UUID(int=1), uuid.UUID(int=2)),
    (pathlib.PurePosixPath("a/b"), "a/b"),
    (pathlib.PurePosixPath("a/b"), pathlib.PurePosixPath("a/c")),
    (fractions.Fraction(1, 3), fractions.Fraction(1, 4)),
    (collections.OrderedDict(a=1, b=2), collections.OrderedDict(b=2, a=1)),
    (collections.Counter("ab"), {"a": 1, "b": 1}),
    (module_function, "tests.workflow.test_canonical:module_function"),
    (int, float),
    (Bag([1]), Bag([2])),
    (("ab", "c"), ("a", "bc")),
    (2**64, 2**64 + 1),
    (-1, 255),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT, ids=[f"pair-{i}" for i in range(len(DIFFERENT))])
def test_different_values_differ(a: Any, b: Any) -> None:
    assert canonical(a) != canonical(b)


def test_no_concatenation_of_encodings_equals_another() -> None:
    assert canonical("a") + canonical("bc") != canonical("ab") + canonical("c")
    assert canonical(["a", "b"]) != canonical(["a"]) + canonical("b")


# -- equal values are equal -----------------------------------------------------------------------


def test_equal_values_are_equal_however_they_were_built() -> None:
    words = [f"w{i}" for i in range(50)]
    assert canonical(set(words)) == canonical(set(reversed(words)))
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})
    assert canonical({w: {w} for w in words}) == canonical({w: {w} for w in reversed(words)})
    assert canonical(Bag(words)) == canonical(Bag(reversed(words)))
    assert canonical(Item("a", {"x", "y"}, {"c": 1})) == canonical(Item("a", {"y", "x"}))
    assert canonical(Color.CRIMSON) == canonical(Color.RED)
    assert canonical(collections.defaultdict(list, a=[1], b=[2])) == canonical(
        collections.defaultdict(list, b=[2], a=[1])
    )
    assert digest([1, (2, 3)]) == digest([1, (2, 3)]) and len(digest(1)) == 64


def test_every_nan_is_one_value() -> None:
    other_nan = struct_nan(0x7FF8_0000_0000_0001)
    assert math.isnan(other_nan)
    assert canonical(math.nan) == canonical(float("-nan")) == canonical(other_nan)
    assert canonical(complex(math.nan, 1)) == canonical(complex(float("-nan"), 1))
    assert canonical(math.nan) != canonical(math.inf)


def struct_nan(bits: int) -> float:
    """The float of these IEEE bits."""
    value: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    return value


def test_cycles_end_and_are_told_apart() -> None:
    a: list[Any] = [1]
    a.append(a)
    b: list[Any] = [2]
    b.append(b)
    d: dict[str, Any] = {}
    d["self"] = d
    bag = Bag([1])
    bag.me = bag  # type: ignore[attr-defined]
    assert canonical(a) != canonical(b)
    assert canonical(a) == canonical(a) and canonical(d) and canonical(bag)
    shared = [1, 2]
    assert canonical([shared, shared]) == canonical([[1, 2], [1, 2]])  # sharing is no cycle


def test_functions_and_classes_by_name() -> None:
    assert canonical(module_function) == canonical(module_function)
    assert canonical(len) != canonical(print)
    assert canonical("a".upper) != canonical("b".upper)  # bound: by its object and name
    assert canonical(Bag) != canonical(Item)


# -- refused --------------------------------------------------------------------------------------


def test_a_value_that_cannot_be_taken_apart_is_refused_with_its_type() -> None:
    with pytest.raises(InvalidValueError, match=r"builtins\.function.*<lambda>"):
        canonical([lambda: 1])

    def local() -> None: ...

    with pytest.raises(InvalidValueError, match=r"<locals>.*cannot be found by its name"):
        canonical(local)
    with pytest.raises(InvalidValueError, match=r"_thread\.lock.*cannot pickle"):
        canonical({"lock": threading.Lock()})
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidValueError, match="nested too deeply"):
        canonical(deep)


def test_a_hook_encodes_what_it_takes() -> None:
    def hook(v: Any) -> bytes | None:
        return b"any" if isinstance(v, threading.Lock().__class__) else None

    assert canonical([threading.Lock()], hook=hook) == canonical([threading.Lock()], hook=hook)
    assert canonical(["any"], hook=hook) != canonical([threading.Lock()], hook=hook)


# -- across processes ----------------------------------------------------------------------------

ACROSS = """\
import collections, dataclasses, importlib.util, sys
from nbflow._canonical import canonical

WORDS = [f"word{i}" for i in range(40)]

class Bag:
    def __init__(self, items):
        self.items = set(items)

@dataclasses.dataclass
class Tagged:
    tags: frozenset

def keep(word):
    return word in {"word1", "word3", "word5", "word7", "word11", "word13"}

values = {
    "set": set(WORDS),
    "frozenset": frozenset(WORDS),
    "dict of sets": {w: {w, w + "!"} for w in WORDS},
    "dict built from a set": {w: len(w) for w in set(WORDS)},
    "object with a set": Bag(WORDS),
    "dataclass with a frozenset": Tagged(frozenset(WORDS)),
    "set of tuples": {(w, i) for i, w in enumerate(WORDS)},
}
for name, value in values.items():
    print(name, "=", canonical(value).hex())
if importlib.util.find_spec("IPython") is not None:  # (durable cells: the notebook extra)
    from nbflow.notebook._analysis import cell_key

    ns = {"keep": keep, "words": WORDS}
    print("key of a cell reading keep =", cell_key("clean", "[w for w in words if keep(w)]", set(ns), ns, {}))
    ns = {"counts": values["dict built from a set"]}
    print("key of a cell reading counts =", cell_key("total", "sum(counts.values())", set(ns), ns, {}))
print("hash =", hash("nbflow"))
"""


def across_seeds(script: str, seeds: tuple[int, ...] = (1, 2, 3)) -> list[dict[str, str]]:
    """Run ``script`` under each hash seed; the ``name = value`` lines it printed, by seed."""
    outputs = []
    for seed in seeds:
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        lines = [line.split(" = ", 1) for line in done.stdout.splitlines()]
        outputs.append({name: value for name, value in lines})
    return outputs


def test_sets_and_their_holders_encode_alike_under_any_hash_seed() -> None:
    first, *others = across_seeds(ACROSS)
    assert len({out.pop("hash") for out in [first, *others]}) == 3  # the seeds differ
    for other in others:
        differ = sorted(name for name in first if first[name] != other[name])
        assert differ == [], differ


def test_a_durable_cell_reading_a_function_with_a_set_literal_keeps_its_key() -> None:
    """``x in {"a", "b"}`` compiles to a frozenset constant, whose repr follows the hash seed:
    the key of a cell that reads such a notebook function must not (it re-ran after every
    restart); nor a dict built from a set (its insertion order follows the seed too)."""
    pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[notebook]')")
    from nbflow.notebook._analysis import cell_key as key

    first, *others = across_seeds(ACROSS)
    for name in ("key of a cell reading keep", "key of a cell reading counts"):
        assert {out[name] for out in others} == {first[name]}, name
    ns = {"limit": {"b": 2, "a": 1}}
    assert key("c", "x = limit", {"limit"}, ns, {}) == key(
        "c", "x = limit", {"limit"}, {"limit": {"a": 1, "b": 2}}, {}
    )
    assert key("c", "x = limit", {"limit"}, ns, {}) != key(
        "c", "x = limit", {"limit"}, {"limit": {"a": 1, "b": 3}}, {}
    )


NUMPY = """\
import numpy as np
from nbflow._canonical import canonical
values = {
    "floats": np.arange(12, dtype="float64").reshape(3, 4),
    "objects": np.array([{"a", "b", "c"}, frozenset("xyz"), "s"], dtype=object),
    "scalar": np.float32(1.5),
}
try:
    import pandas as pd
    values["frame"] = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=["r1", "r2"])
except ImportError:
    pass
for name, value in values.items():
    print(name, "=", canonical(value).hex())
print("hash =", hash("nbflow"))
"""


def test_numpy_arrays_and_pandas_frames_encode_alike_across_processes() -> None:
    np = pytest.importorskip("numpy")
    first, *others = across_seeds(NUMPY, seeds=(1, 2))
    assert len({out.pop("hash") for out in [first, *others]}) == 2
    assert others == [first]
    assert canonical(np.arange(3)) != canonical(np.arange(3).astype("float64"))
    assert canonical(np.arange(3)) != canonical([0, 1, 2])


def test_the_module_is_a_leaf() -> None:
    source = pathlib.Path(canonical.__code__.co_filename).read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    nbflow_imports = [line for line in imports if "nbflow" in line]
    assert nbflow_imports == ["from nbflow._errors import InvalidValueError"]


def test_args_digest_tells_calls_apart_as_canonical_does() -> None:
    """A checkpoint's argument digest: its short paths give what the canonical encoding gives,
    values that canonical tells apart differ, and a string argument is never kept readable."""
    import hashlib
    import threading

    from nbflow._canonical import args_digest

    def slow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return hashlib.blake2b(canonical((args, kwargs)), digest_size=16).hexdigest()

    for args in [("x", 1.5), (None, True, b"b"), ("a", "b", 3), ()]:
        assert args_digest(args, {}) == slow(args, {}), args
    assert args_digest((1, "x"), {"k": [1]}) == slow((1, "x"), {"k": [1]})
    calls = [
        ((1,), {}),
        (("1",), {}),
        ((1.0,), {}),
        ((True,), {}),
        (((1, 2),), {}),
        (([1, 2],), {}),
        (({1: "x"},), {}),
        (({"1": "x"},), {}),
        ((), {"x": 1}),
        ((1, 2), {}),
        ((12,), {}),
    ]
    digests = [args_digest(a, k) for a, k in calls]
    assert len(set(digests)) == len(calls), digests
    assert "secret" not in (args_digest(("secret-token",), {}) or "")
    assert args_digest((threading.Lock(),), {}) is None  # cannot be compared: never matched
