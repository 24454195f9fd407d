"""A launch's identity (issue 18, defects 2, 3 and 9): which calls are the same call.

- Different arguments are different calls, even where JSON would make them equal: ``{1: x}`` and
  ``{"1": x}``, ``(1, 2)`` and ``[1, 2]``.
- Equal arguments are the same call in every kernel, whatever its hash seed: a launch whose
  arguments hold a set, run again after a restart in a kernel with another ``PYTHONHASHSEED``,
  finds its finished run.
- Two threads launching the same call at once both get a handle to the one run; the workflow
  runs once and neither launch raises.

The first two run in real kernels (:mod:`tests.support.kernels`, as :mod:`tests.notebook.test_launch`) and
in-process; all of them on both stores.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbflow
from nbflow.notebook._launch import LaunchedHandle, launch
from tests.notebook.test_launch import Kernel, kernels, ok, start

pytestmark = pytest.mark.contract

__all__ = ["finished", "kernels"]  # (kernels: the fixture, imported from test_launch)

_ran: collections.Counter[Any] = collections.Counter()
_ran_lock = threading.Lock()


@nbflow.workflow(name="identity.echo")
def echo(value: Any) -> Any:
    """Return ``value``; count the run."""
    with _ran_lock:
        _ran[repr(value)] += 1
    return value


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    """A real IPython shell (no kernel: views show as display handles); counts reset."""
    _ran.clear()
    yield InteractiveShell.instance()
    _ran.clear()


def finished(handle: LaunchedHandle) -> Any:
    """The handle's result, once its view has shown everything; the view closed."""
    try:
        result = handle.result(timeout=30)
        assert handle.view.wait(30), "the view never finished"
        return result
    finally:
        handle.view.close()


# -- in-process ----------------------------------------------------------------------------------


def test_arguments_json_would_confuse_are_different_calls(
    rt: nbflow.Runtime, shell: InteractiveShell
) -> None:
    pairs = [({1: "one"}, {"1": "one"}), ((1, 2), [1, 2]), (1, 1.0), ("1", b"1")]
    for first, second in pairs:
        with capture_output() as captured:
            a = launch(echo, first, watch=None)
            a_result = finished(a)
            b = launch(echo, second, watch=None)
            b_result = finished(b)
        said = captured.stdout + "".join(str(o.data) for o in captured.outputs)
        assert "already" not in said, (first, second, said)
        assert b.previous.state == "new" and a.workflow_id != b.workflow_id, (first, second)
        assert (a_result, b_result) == (first, second)
        assert type(a_result) is type(first) and type(b_result) is type(second)
    assert _ran == {repr(v): 1 for pair in pairs for v in pair}


def test_equal_arguments_are_one_call(rt: nbflow.Runtime, shell: InteractiveShell) -> None:
    with capture_output():
        a = launch(echo, {"b": 2, "a": {3, 1, 2}}, watch=None)
        finished(a)
        b = launch(echo, {"a": {1, 2, 3}, "b": 2}, watch=None)
        finished(b)
    assert a.workflow_id == b.workflow_id and b.previous.state == "finished"
    assert sum(_ran.values()) == 1


def _race(value: Any) -> tuple[list[LaunchedHandle], list[BaseException]]:
    """Two threads launch ``echo(value)`` at the same moment; their handles and errors."""
    barrier = threading.Barrier(2)
    handles: list[LaunchedHandle] = []
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait(10)
        try:
            handles.append(launch(echo, value, watch=None))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, name=f"test-launch-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return handles, errors


def test_two_threads_launching_the_same_call_get_the_one_run(
    rt: nbflow.Runtime, shell: InteractiveShell
) -> None:
    rounds = 60
    for i in range(rounds):
        with capture_output():
            handles, errors = _race(i)
            results = [finished(h) for h in handles]
        assert errors == [], f"round {i}: {errors!r}"
        assert [h.workflow_id for h in handles] == [handles[0].workflow_id] * 2
        assert results == [i, i]
    assert _ran == {repr(i): 1 for i in range(rounds)}  # each call ran once


# -- real kernels --------------------------------------------------------------------------------

DEFINE = """\
import nbflow
from nbflow.notebook import launch

SIDE = {side!r}

@nbflow.workflow(name="echo")
def echo(value):
    with open(SIDE, "a") as f:
        f.write(type(value).__name__ + "\\n")
    return value

class Bag:
    def __init__(self, items):
        self.items = set(items)
"""

WORDS = [f"word{i}" for i in range(12)]

#: Launches whose arguments hold sets: their pickle follows the kernel's hash seed.
SET_CALLS = [
    f"launch(echo, {set(WORDS)!r})",
    f"launch(echo, frozenset({WORDS!r}))",
    f"launch(echo, {{'tags': {set(WORDS)!r}, 'n': 3}})",
    f"launch(echo, Bag({WORDS!r}))",
]


def _kernel(kernels: list[Kernel], cwd: Path, database: str, seed: int) -> Kernel:
    """A kernel on ``database`` with the hash seed ``seed``."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NBFLOW_DATABASE", database)
        env.setenv("PYTHONHASHSEED", str(seed))
        return start(kernels, cwd)


def _launch_all(kernel: Kernel, side: Path, calls: list[str]) -> list[list[str]]:
    """Run the calls in one kernel; each launch's id and what it found."""
    ok(kernel.run(DEFINE.format(side=str(side))))
    found = []
    for call in calls:
        code = f"h = {call}\nh.result(timeout=30)\nh.view.wait(30)\nprint(h.workflow_id, h.previous.state)"
        found.append(ok(kernel.run(code))["stdout"].split()[-2:])
    return found


def _hash(kernel: Kernel) -> str:
    return str(ok(kernel.run("print(hash('nbflow'))"))["stdout"].strip())


@pytest.mark.slow
@pytest.mark.kernel
def test_in_a_kernel_json_lookalikes_are_two_runs(
    kernels: list[Kernel], tmp_path: Path, database: str
) -> None:
    side = tmp_path / "side.txt"
    kernel = _kernel(kernels, tmp_path, database, seed=1)
    calls = ['launch(echo, {1: "one"})', 'launch(echo, {"1": "one"})']
    calls += ["launch(echo, (1, 2))", "launch(echo, [1, 2])"]
    found = _launch_all(kernel, side, calls)
    results = ok(
        kernel.run(
            "print([launch(echo, v).result(timeout=30) for v in "
            "[{1: 'one'}, {'1': 'one'}, (1, 2), [1, 2]]])"
        )
    )
    kernel.stop()

    assert [state for _, state in found] == ["new"] * 4, found
    assert len({workflow_id for workflow_id, _ in found}) == 4, found
    printed = results["stdout"].strip()
    notes = results["said"].strip().splitlines()  # what each launch said it found
    assert printed == "[{1: 'one'}, {'1': 'one'}, (1, 2), [1, 2]]", results  # each its own
    assert [note.split()[1] for note in notes] == [workflow_id for workflow_id, _ in found]
    assert side.read_text().split() == ["dict", "dict", "tuple", "list"]


@pytest.mark.slow
@pytest.mark.kernel
def test_a_set_argument_finds_its_run_after_a_restart_with_another_hash_seed(
    kernels: list[Kernel], tmp_path: Path, database: str
) -> None:
    side = tmp_path / "side.txt"
    first = _kernel(kernels, tmp_path, database, seed=1)
    before = _launch_all(first, side, SET_CALLS)
    first_hash = _hash(first)
    first.stop()

    second = _kernel(kernels, tmp_path, database, seed=2)
    after = _launch_all(second, side, SET_CALLS)
    second_hash = _hash(second)
    second.stop()

    assert first_hash != second_hash  # the two kernels hash strings differently
    assert [state for _, state in before] == ["new"] * len(SET_CALLS), before
    assert [state for _, state in after] == ["finished"] * len(SET_CALLS), after
    assert [i for i, _ in after] == [i for i, _ in before]
    assert side.read_text().split() == ["set", "frozenset", "dict", "Bag"]  # each ran once
