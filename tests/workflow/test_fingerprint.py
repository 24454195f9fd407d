"""Code fingerprints (:mod:`nbflow._fingerprint`): what counts and what does not, across
processes, and the sentences that say what changed.

Functions are made by exec'ing source in a fresh namespace whose ``__name__`` is a module that is
not imported (so its code is the user's own, as a notebook's ``__main__``); the cross-process
tests write the source to a module in a temporary directory and import it in subprocesses with
different hash seeds.
"""

from __future__ import annotations

import dis
import functools
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow._errors import InvalidValueError
from nbflow._fingerprint import CodeParts, Part, code_parts, describe_changes, fingerprint

BASE = """
THRESHOLD = 3

def strip_tags(s):
    # drop the angle brackets
    return s.replace("<", "").replace(">", "")

def clean(s):
    return strip_tags(s).strip()

def parse(text, n=2):
    words = [clean(w) for w in text.split() if len(w) > THRESHOLD]
    if words and words[0] in {"a", "b"}:
        return words[1:n]
    return words[:n]
"""


def load(source: str, module: str = "nbtest_cell") -> dict[str, Any]:
    """The namespace of ``source`` exec'd as the module ``module`` (not imported: user code)."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(compile(textwrap.dedent(source), f"<{module}>", "exec"), namespace)
    return namespace


def fp(source: str, name: str = "parse") -> str:
    return fingerprint(load(source)[name])


def edited(old: str, new: str, source: str = BASE) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


# -- what does not count -----------------------------------------------------------------------


def _reindented(source: str, width: int) -> str:
    lines = []
    for line in source.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 4
        lines.append(" " * (width * depth) + line.lstrip(" "))
    return "\n".join(lines)


SAME_CODE = {
    "comment edited": edited("# drop the angle brackets", "# no brackets\n    # (at all)"),
    "comment added": edited("def clean(s):\n", "def clean(s):  # the words\n    # a comment\n"),
    "docstring added": edited("def parse(text, n=2):\n", 'def parse(text, n=2):\n    """Doc."""\n'),
    "helper docstring added": edited(
        "def strip_tags(s):\n", 'def strip_tags(s):\n    """Strip.\n\n    Long.\n    """\n'
    ),
    "reindented by 2": _reindented(BASE, 2),
    "reindented by 8": _reindented(BASE, 8),
    "lines split": edited(
        "    words = [clean(w) for w in text.split() if len(w) > THRESHOLD]\n"
        '    if words and words[0] in {"a", "b"}:\n',
        "    words = [clean(w)\n             for w in text.split()\n"
        "             if len(w) > THRESHOLD]\n"
        '    if (words and\n            words[0] in {"b",\n                         "a"}):\n',
    ),
    "moved down": "\n\n\n\n" + BASE,
    "blank lines": BASE.replace("\n\n", "\n\n\n\n"),
}


@pytest.mark.parametrize("change", sorted(SAME_CODE))
def test_comments_docstrings_and_formatting_change_nothing(change: str) -> None:
    assert fp(SAME_CODE[change]) == fp(BASE)


ONE_LINE = """
def order(x, lo, hi):
    besti, bestj, size = lo, hi, 0
    while besti > lo and bestj > hi and not x(bestj - 1) and x(besti - 1) == x(bestj - 1):
        besti, bestj, size = besti - 1, bestj - 1, size + 1
    if size:
        pass
    return x(lo) or x(hi) and bool(x(besti) & 4) or x(bestj)
"""
SPLIT = """
def order(x, lo, hi):
    besti, bestj, size = (
        lo,
        hi,
        0,
    )
    while (
        besti > lo
        and bestj > hi
        and not x(bestj - 1)
        and x(besti - 1) == x(bestj - 1)
    ):
        besti, bestj, size = (
            besti - 1,
            bestj - 1,
            size + 1,
        )
    if size: pass
    return (x(lo) or
            x(hi) and
                bool(x(besti) & 4) or
            x(bestj))
"""


def test_splitting_conditions_and_assignments_over_lines_changes_nothing() -> None:
    """The compiler makes some jumps, swaps and line markers (NOP) only within a line."""
    assert fp(ONE_LINE, "order") == fp(SPLIT, "order")
    assert fp(ONE_LINE, "order") != fp(
        ONE_LINE.replace("besti - 1, bestj", "bestj - 1, besti"), "order"
    )
    assert fp(ONE_LINE, "order") != fp(ONE_LINE.replace("x(hi) and", "x(hi) or"), "order")


def test_editing_or_removing_a_docstring_changes_nothing() -> None:
    with_doc = edited("def parse(text, n=2):\n", 'def parse(text, n=2):\n    """One."""\n')
    other_doc = edited('"""One."""', '"""Another, longer."""', with_doc)
    assert fp(with_doc) == fp(other_doc) == fp(BASE)
    # a docstring of a function whose body uses None (which takes co_consts[0] when there is none)
    plain = "def f(x):\n    y = 1\n    return None if x else y\n"
    documented = 'def f(x):\n    """Doc."""\n    y = 1\n    return None if x else y\n'
    assert fp(plain, "f") == fp(documented, "f")


def test_a_string_equal_to_the_docstring_still_counts_where_it_is_used() -> None:
    one = 'def f():\n    """doc"""\n    return "doc"\n'
    assert fp(one, "f") != fp(one.replace('return "doc"', 'return "cod"'), "f")


# -- what counts -------------------------------------------------------------------------------

CHANGED_CODE = {
    "a helper two levels down": edited('.replace(">", "")', '.replace(">", " ")'),
    "a global constant": edited("THRESHOLD = 3", "THRESHOLD = 4"),
    "a default argument": edited("n=2", "n=3"),
    "an operator": edited("len(w) > THRESHOLD", "len(w) >= THRESHOLD"),
    "a constant in a set": edited('{"a", "b"}', '{"a", "c"}'),
    "which helper is called": edited(
        "    return strip_tags(s).strip()", "    return strip_tags(s).strip() + other(s)"
    )
    + "\ndef other(s):\n    return s\n",
}


@pytest.mark.parametrize("change", sorted(CHANGED_CODE))
def test_what_the_function_does_changes_it(change: str) -> None:
    assert fp(CHANGED_CODE[change]) != fp(BASE)


CLOSURE = """
def make(scale, *, offset=1):
    def apply(x):
        return x * scale + offset
    return apply
applied = make(SCALE, offset=OFFSET)
"""


def test_closed_over_values_count() -> None:
    base = fp("SCALE, OFFSET = 3, 1\n" + CLOSURE, "applied")
    assert fp("SCALE, OFFSET = 3, 1\n" + CLOSURE, "applied") == base
    assert fp("SCALE, OFFSET = 4, 1\n" + CLOSURE, "applied") != base
    assert fp("SCALE, OFFSET = 3, 2\n" + CLOSURE, "applied") != base


def test_keyword_defaults_and_class_attributes_count() -> None:
    kw = "def f(x, *, mode='fast'):\n    return x, mode\n"
    assert fp(kw, "f") != fp(kw.replace("'fast'", "'slow'"), "f")
    cls = "class Model:\n    scale = 2\n    def run(self, x):\n        return x * self.scale\n"
    assert fp(cls, "Model") != fp(cls.replace("scale = 2", "scale = 3"), "Model")
    assert fp(cls, "Model") != fp(cls.replace("x * self", "x + self"), "Model")


def test_plain_values_count_by_content_in_any_order() -> None:
    src = "CFG = {cfg}\ndef f():\n    return CFG\n"
    path = '__import__("pathlib").Path("/x")'
    first = fp(src.format(cfg=f'{{"b": [1, 2.0, None], "a": {{3, 4}}, "p": {path}}}'), "f")
    same = fp(src.format(cfg=f'{{"a": {{4, 3}}, "p": {path}, "b": [1, 2.0, None]}}'), "f")
    assert first == same
    assert fp(src.format(cfg="[1, 2]"), "f") != fp(src.format(cfg="(1, 2)"), "f")
    assert fp(src.format(cfg="1"), "f") != fp(src.format(cfg="1.0"), "f")
    assert fp(src.format(cfg="1"), "f") != fp(src.format(cfg="True"), "f")
    pattern = "import re\nP = re.compile({p!r})\ndef f(s):\n    return P.match(s)\n"
    assert fp(pattern.format(p=r"\d+"), "f") != fp(pattern.format(p=r"\w+"), "f")


def test_other_values_count_by_their_type_and_huge_ones_by_length() -> None:
    namespace = load("def f():\n    return LOCK, BIG\n")
    namespace.update(LOCK=threading.Lock(), BIG=list(range(200_000)))
    first = fingerprint(namespace["f"])
    namespace.update(LOCK=threading.Lock(), BIG=[*range(199_999), -1])  # same type, same length
    assert fingerprint(namespace["f"]) == first
    namespace["BIG"] = list(range(200_001))
    longer = fingerprint(namespace["f"])
    assert longer != first
    namespace["LOCK"] = threading.RLock()  # another type
    assert fingerprint(namespace["f"]) != longer


def test_a_value_that_cannot_be_taken_apart_counts_by_its_type() -> None:
    class Hostile:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("no")

        def __reduce_ex__(self, protocol: Any) -> Any:
            raise RuntimeError("no")

        def __call__(self) -> None:
            raise RuntimeError("no")

    namespace = load("def f():\n    return H\n")
    namespace["H"] = Hostile()
    first = fingerprint(namespace["f"])
    namespace["H"] = Hostile()
    assert fingerprint(namespace["f"]) == first
    assert re.fullmatch(r"[0-9a-f]{32}", fingerprint(Hostile()))


def test_a_user_module_counts_by_the_attributes_the_code_names() -> None:
    helpers = types.ModuleType("nbtest_helpers")  # (not imported: the user's own module)
    exec("def clean(s):\n    return s.strip()\nOTHER = 1\n", vars(helpers))
    namespace = load("def parse(s):\n    return helpers.clean(s)\n")
    namespace["helpers"] = helpers
    first = fingerprint(namespace["parse"])
    vars(helpers)["OTHER"] = 2  # not named by parse
    assert fingerprint(namespace["parse"]) == first
    exec("def clean(s):\n    return s.lower()\n", vars(helpers))
    assert fingerprint(namespace["parse"]) != first


# -- what it works on --------------------------------------------------------------------------

KINDS = """
import functools

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def even(n):
    return n == 0 or odd(n - 1)

def odd(n):
    return n != 0 and even(n - 1)

class Node:
    limit = 10
    def __init__(self, children=()):
        self.children = list(children)
    def size(self):
        return 1 + sum(c.size() for c in self.children if isinstance(c, Node))
    @staticmethod
    def leaf():
        return Node()
    @classmethod
    def pair(cls):
        return cls([cls.leaf(), cls.leaf()])
    @property
    def empty(self):
        return not self.children

shout = lambda s: s.upper() + "!"
DISPATCH = {"shout": shout, "fact": fact}

def route(name, x):
    return DISPATCH[name](x)

def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)
    return wrapper

@logged
def double(x):
    return 2 * x

half = functools.partial(divmod, 2)
triple = functools.partial(lambda x, k: x * k, k=3)
"""


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("fact", ("n - 1", "n - 2")),
        ("even", ("n == 0 or", "n == 1 or")),  # through the other of two mutual functions
        ("odd", ("n == 0 or", "n == 1 or")),
        ("Node", ("limit = 10", "limit = 11")),
        ("Node", ("return Node()", "return Node([])")),  # a static method
        ("Node", ("return not self.children", "return self.children == []")),  # a property
        ("shout", ('"!"', '"?"')),
        ("route", ('"!"', '"?"')),  # a lambda in a dict it reads
        ("double", ("2 * x", "3 * x")),  # through functools.wraps
        ("double", ("return fn(*args)", "return fn(*args[:1])")),  # the wrapper's own code
        ("triple", ("k=3", "k=4")),
        ("triple", ("x * k", "x + k")),
    ],
)
def test_it_works_on_every_kind_of_callable(name: str, edit: tuple[str, str]) -> None:
    before, after = load(KINDS), load(KINDS.replace(*edit))
    assert fingerprint(before[name]) == fingerprint(load(KINDS)[name])
    assert fingerprint(before[name]) != fingerprint(after[name])


METHODS = """
class Counter:
    start = 0
    def count(self, items):
        return len(items)
    def __call__(self, items):
        return self.count(items) + 1
"""


def test_methods_and_objects_count_with_their_class() -> None:
    namespace, edited_class = load(METHODS), load(METHODS.replace("start = 0", "start = 1"))
    counter = namespace["Counter"]()
    assert fingerprint(counter.count) != fingerprint(namespace["Counter"].count)
    assert fingerprint(counter.count) != fingerprint(edited_class["Counter"]().count)
    assert fingerprint(counter) == fingerprint(namespace["Counter"])  # a callable object
    assert fingerprint(counter) != fingerprint(edited_class["Counter"]())
    namespace = load(KINDS)
    assert fingerprint(namespace["Node"].pair) == fingerprint(load(KINDS)["Node"].pair)
    assert fingerprint(namespace["half"]) != fingerprint(functools.partial(divmod, 3))


def test_builtins_and_stdlib_count_by_name_and_python_version() -> None:
    parts = code_parts(len).parts
    assert parts == code_parts(len).parts and fingerprint(len) != fingerprint(abs)
    label = "python=={}.{}".format(*sys.version_info[:2])
    assert [p.name for p in parts if p.kind == "package"] == [label]
    assert fingerprint(json.dumps) != fingerprint(json.loads)


def test_nbflow_steps_and_workflows_count_as_their_function() -> None:
    namespace = load("def work(x):\n    return x + 1\n")
    step = nbflow.step(name="tests.fingerprint.work")(namespace["work"])
    assert fingerprint(step) == fingerprint(namespace["work"])
    calling = load("def flow(x):\n    return work(x)\n")
    calling["work"] = step
    other = load("def flow(x):\n    return work(x)\n")
    other["work"] = nbflow.step(name="tests.fingerprint.work2")(
        load("def work(x):\n    return x + 2\n")["work"]
    )
    assert fingerprint(calling["flow"]) != fingerprint(other["flow"])


def test_what_is_not_callable_is_refused_with_what_to_pass() -> None:
    with pytest.raises(InvalidValueError, match=r"not a builtins\.int.*Pass the function itself"):
        fingerprint(42)  # type: ignore[arg-type]


def test_a_warm_fingerprint_uses_the_code_it_analysed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each code object is analysed once: a second fingerprint reads no bytecode."""
    namespace = load(KINDS + "\nMOVED = 1\n")
    first = fingerprint(namespace["route"])

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the bytecode was read again")

    monkeypatch.setattr(dis, "Bytecode", refuse)
    assert fingerprint(namespace["route"]) == first


def test_threads_fingerprinting_new_code_at_once_agree() -> None:
    source = KINDS + "\n" * 7  # (code objects not met before)
    expected = fp(source, "route")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def run(i: int) -> None:
        namespace = load("\n" * (100 + i) + source)
        barrier.wait(timeout=10)
        results.append(fingerprint(namespace["route"]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [expected] * 8


# -- across processes --------------------------------------------------------------------------

PRINT_ALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
import nbcode
from nbflow._fingerprint import code_parts
names = ["parse", "Node", "fact", "even", "shout", "route", "double", "half", "triple", "applied"]
print(json.dumps({n: code_parts(getattr(nbcode, n)).to_json() for n in names}))
print(hash("nbflow"))
"""


def run_python(script: str, *argv: str, seed: str = "0") -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_same_in_another_process_under_any_hash_seed(tmp_path: Path) -> None:
    source = BASE + KINDS + "SCALE, OFFSET = 3, {1, 2, 3, 'x', 'y'}\n" + CLOSURE
    source += "LABELS = {'spam', 'ham', 'eggs', 'bacon', 'x', 'y'}\n"
    source += "def tagged(w):\n    return w in LABELS and w not in {'p', 'q', 'r', 's'}\n"
    (tmp_path / "nbcode.py").write_text(source)
    outputs = [run_python(PRINT_ALL, str(tmp_path), seed=seed) for seed in ("1", "2", "3")]
    hashes = {out.splitlines()[1] for out in outputs}
    assert len(hashes) == 3  # the seeds differ
    parts = [json.loads(out.splitlines()[0]) for out in outputs]
    assert parts[0] == parts[1] == parts[2]
    # and the same as here (the module exec'd under its name)
    here = load(source, "nbcode")
    for name, stored in parts[0].items():
        assert CodeParts.from_json(stored).digest == fingerprint(here[name]), name


PACKAGE_USER = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import usermod
from nbflow._fingerprint import code_parts
print(json.dumps(code_parts(usermod.main).to_json()))
"""


def write_package(root: Path, version: str, body: str) -> None:
    """A tiny installed package ``tinypkg`` with its ``.dist-info``, at ``version``."""
    (root / "tinypkg").mkdir(parents=True, exist_ok=True)
    (root / "tinypkg" / "__init__.py").write_text(body)
    for old in root.glob("tinypkg-*.dist-info"):
        for item in old.iterdir():
            item.unlink()
        old.rmdir()
    info = root / f"tinypkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tinypkg\nVersion: {version}\n")
    (info / "top_level.txt").write_text("tinypkg\n")


def test_a_package_counts_by_its_version_not_its_code(tmp_path: Path) -> None:
    site, user = tmp_path / "site", tmp_path / "user"
    user.mkdir()
    (user / "usermod.py").write_text(
        "import tinypkg\nfrom tinypkg import helper\n\n"
        "def main(x):\n    return helper(x) + tinypkg.helper(x)\n"
    )

    def parts(version: str, body: str) -> CodeParts:
        write_package(site, version, body)
        out = run_python(PACKAGE_USER, str(site), str(user))
        return CodeParts.from_json(json.loads(out))

    v10 = parts("1.0", "def helper(x):\n    return x + 1\n")
    v11 = parts("1.1", "def helper(x):\n    return x + 1\n")
    assert v10.digest != v11.digest
    assert "tinypkg==1.0" in [p.name for p in v10.parts if p.kind == "package"]
    assert describe_changes(v10, v11) == ["package `tinypkg` changed version (1.0 → 1.1)"]
    v11_edited = parts("1.1", "def helper(x):\n    return x + 2\n")  # its code is not looked at
    assert v11_edited.digest == v11.digest


# -- parts and sentences -----------------------------------------------------------------------


def test_parts_name_what_they_cover_and_round_trip_through_json() -> None:
    parts = code_parts(load(BASE)["parse"])
    assert parts.digest == fp(BASE)
    assert list(parts.parts) == sorted(parts.parts)
    module = "nbtest_cell"
    assert Part((f"{module}.parse",), "code", "parse", parts.parts[0].digest) in parts.parts
    kinds = {(p.path, p.kind, p.name) for p in parts.parts}
    assert ((f"{module}.parse",), "global", "THRESHOLD") in kinds
    assert ((f"{module}.parse",), "default", "n") in kinds
    chain = (f"{module}.parse", f"{module}.clean", f"{module}.strip_tags")
    assert (chain, "code", "strip_tags") in kinds
    stored = json.loads(json.dumps(parts.to_json()))
    assert CodeParts.from_json(stored) == parts
    with pytest.raises(InvalidValueError, match="to_json"):
        CodeParts.from_json([["not", "a", "part"]])


def changes(old: str, new: str, name: str = "parse", **kwargs: Any) -> list[str]:
    return describe_changes(code_parts(load(old)[name]), code_parts(load(new)[name]), **kwargs)


def test_sentences_say_what_changed_shallowest_first() -> None:
    assert changes(BASE, BASE) == []
    assert changes(BASE, edited("len(w) > THRESHOLD", "len(w) >= THRESHOLD")) == [
        "the code of `parse` changed"
    ]
    assert changes(BASE, CHANGED_CODE["a helper two levels down"]) == [
        "the code of `strip_tags` changed (called by `parse` through `clean`, two levels down)"
    ]
    assert changes(BASE, CHANGED_CODE["a global constant"]) == [
        "the global `THRESHOLD` used by `parse` changed"
    ]
    assert changes(BASE, CHANGED_CODE["a default argument"]) == [
        "the default of argument `n` of `parse` changed"
    ]
    both = edited("THRESHOLD = 3", "THRESHOLD = 4", CHANGED_CODE["a helper two levels down"])
    assert changes(BASE, both) == [
        "the global `THRESHOLD` used by `parse` changed",
        "the code of `strip_tags` changed (called by `parse` through `clean`, two levels down)",
    ]


def test_sentences_for_closures_calls_and_too_many_changes() -> None:
    closure = "SCALE, OFFSET = 3, 1\n" + CLOSURE
    assert changes(closure, closure.replace("3, 1", "4, 1"), "applied") == [
        "the value `scale` closed over by `make.<locals>.apply` changed"
    ]
    calls = "def normalize(s):\n    return s\ndef old_helper(s):\n    return s\n"
    before = calls + "def parse(s):\n    return old_helper(s)\n"
    after = calls + "def parse(s):\n    return normalize(s)\n"
    assert changes(before, after) == [
        "the code of `parse` changed",
        "`parse` now calls `normalize`",
        "`parse` no longer calls `old_helper`",
    ]
    assert changes(before, after, limit=1) == ["the code of `parse` changed", "and 2 more changes"]


def test_the_same_code_under_another_module_name_says_so() -> None:
    """A module run as a script (``__main__``), then imported (``ingest``): the names differ."""
    old, new = (
        code_parts(load(BASE, "__main__")["parse"]),
        code_parts(load(BASE, "ingest")["parse"]),
    )
    assert old.digest != new.digest
    assert describe_changes(old, new) == ["it is now `ingest.parse` (it was `__main__.parse`)"]
