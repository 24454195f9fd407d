"""Each step checkpoint keeps a short form of its call's arguments (``StepInfo.arguments``, the
steps table's ``argument`` column), and a name typed as the tables show it finds the notebook's
``__main__.`` functions."""

from __future__ import annotations

import contextlib

import pytest

import nbflow
from nbflow.text._calls import CALL_CHARS, STRING_CHARS, short_call, short_value


@nbflow.step(name="tests.args.fetch")
def fetch(url: str, api_key: str | None = None) -> int:
    return len(url)


@nbflow.step(name="tests.args.fail")
def fail(n: int) -> int:
    raise ValueError(f"bad {n}")


@nbflow.step(name="tests.args.cached", cache=True)
def cached(n: int) -> int:
    return n + 1


@nbflow.workflow(name="tests.args.pipe")
def pipe(url: str) -> list[int]:
    got = [fetch(url, api_key="sk-very-secret"), cached(7), cached(7)]
    got += nbflow.map(abs, [-1, -2])
    with contextlib.suppress(ValueError):
        fail(3)
    return got


@pytest.mark.contract
def test_each_step_keeps_a_short_form_of_its_arguments(database: str) -> None:
    url = "https://example.com/a/rather/long/path/page-12"
    with nbflow.configure(database):
        with nbflow.set_workflow_id("args-1"):
            pipe(url)
        steps = nbflow.list_steps("args-1")
    by_name = [(s.name, s.arguments) for s in steps]
    assert by_name == [
        ("tests.args.fetch", "'https://exa…path/page-12', api_key=***"),
        ("tests.args.cached", "7"),
        ("tests.args.cached", "7"),  # the second call took the first's result: still its argument
        ("builtins.abs", "-1"),
        ("builtins.abs", "-2"),
        ("tests.args.fail", "3"),  # a failed call keeps its argument too
    ], by_name
    assert steps[2].cached_from == "args-1"
    assert "sk-very-secret" not in repr(list(steps))


def test_short_forms_never_spell_out_a_value_in_full() -> None:
    numpy = pytest.importorskip("numpy")
    assert short_call((42,), {}) == "42"
    assert short_call((), {}) == ""
    assert short_value(1.0 / 3) == "0.333333"
    assert short_value(b"\0" * 2048) == "bytes(2,048)"
    assert short_value({"a": 1, "b": 2}) == "dict(2)"
    assert short_value(numpy.zeros((100, 3))) == "ndarray(100x3)"
    assert short_value(object()) == "<object>"
    long = "x" * 1000
    assert len(short_value(long)) == STRING_CHARS and "…" in short_value(long)
    many = short_call(tuple(range(10)), {f"k{i}": i for i in range(10)})
    assert many == "0, 1, 2, 3, …, k0=0, k1=1, k2=2, k3=3, …"
    assert len(short_call(("y" * 100,) * 4, {})) == CALL_CHARS
    for name in ("token", "API_KEY", "password", "client_secret", "auth"):
        assert short_call((), {name: "hunter2"}) == f"{name}=***"


@nbflow.workflow(name="__main__.nb_pipe")
def nb_pipe() -> int:
    return nb_step(1)


@nbflow.step(name="__main__.nb_step")
def nb_step(n: int) -> int:
    return n


@pytest.mark.contract
def test_a_name_as_the_tables_show_it_finds_the_notebook_s_functions(database: str) -> None:
    """The tables say `nb_pipe` for `__main__.nb_pipe`; the filters take either."""
    with nbflow.configure(database):
        nb_pipe()
        for name in ("nb_pipe", "__main__.nb_pipe"):
            assert [w.name for w in nbflow.list_workflows(name=name)] == ["__main__.nb_pipe"]
        for name in ("nb_step", "__main__.nb_step"):
            assert [s.name for s in nbflow.step_stats(name=name)] == ["__main__.nb_step"]
        assert nbflow.list_workflows(name="pipe") == []  # only the exact name, or __main__.'s
