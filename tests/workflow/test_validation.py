"""One bad value never stops nbflow (issue 14): names are checked at the call, values stored whole.

Every name nbflow stores (workflow ids, stream keys, event keys, topics, queue names, workflow
names) follows the same rules on both stores: a non-empty str of valid Unicode, without NUL, of at
most 1,000 UTF-8 bytes. A name that breaks one raises InvalidValueError at the call and nothing is
lost: the workflow goes on, and the runtime keeps committing (on PostgreSQL a NUL reaching a commit
used to stop the committer for good).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import sql

pytestmark = pytest.mark.contract

BAD_NAMES: dict[str, object] = {
    "empty": "",
    "nul": "a\x00b",
    "surrogate": "half a pair: \ud800",
    "too-long": "x" * 1001,
    "too-long-in-utf8": "é" * 501,  # 501 characters, 1,002 bytes
    "not-a-str": 7,
    "unhashable": ["k"],
}

bad_names = pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))


@nbflow.workflow
def ok() -> str:
    """A workflow that just succeeds: the runtime still commits."""
    return "ok"


def runs_on(runtime: nbflow.Runtime) -> None:
    """The runtime still runs a workflow to SUCCESS (its committer did not stop)."""
    handle = nbflow.start(ok)
    assert handle.result(timeout=10) == "ok"
    assert handle.status() == Status.SUCCESS


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep: dicts and lists in turn, around a leaf."""
    value: Any = {"leaf": ["x", 1, 2.5, True, None]}
    for level in range(depth):
        value = [level, value] if level % 2 else {"level": level, "inner": value}
    return value


# -- names ---------------------------------------------------------------------------------------


def test_invalid_value_error_is_a_type_and_a_value_error() -> None:
    """InvalidValueError is an NbflowError, and code catching TypeError or ValueError catches it."""
    assert issubclass(nbflow.InvalidValueError, nbflow.NbflowError)
    assert issubclass(nbflow.InvalidValueError, TypeError)
    assert issubclass(nbflow.InvalidValueError, ValueError)
    assert "InvalidValueError" in nbflow.__all__


@bad_names
def test_a_bad_workflow_id_is_refused_at_set_workflow_id(rt: nbflow.Runtime, bad: Any) -> None:
    """set_workflow_id(bad) raises InvalidValueError; no workflow is started; the runtime goes on."""
    with pytest.raises(nbflow.InvalidValueError), nbflow.set_workflow_id(bad):
        nbflow.start(ok)
    assert list(nbflow.list_workflows()) == []
    runs_on(rt)


@bad_names
def test_bad_names_in_a_workflow_are_refused_at_the_call(rt: nbflow.Runtime, bad: Any) -> None:
    """write_stream, close_stream, set_event, recv with a bad name raise at the call; the workflow
    catches it, goes on and succeeds with everything else written; the runtime goes on too."""
    calls: dict[str, Callable[[], object]] = {
        "write_stream": lambda: nbflow.write_stream(bad, "lost"),
        "close_stream": lambda: nbflow.close_stream(bad),
        "set_event": lambda: nbflow.set_event(bad, "lost"),
        "recv": lambda: nbflow.recv(bad, timeout=0),
    }

    @nbflow.workflow
    def wf() -> list[str]:
        nbflow.write_stream("k", "before")
        refused = []
        for name, call in calls.items():
            try:
                call()
            except nbflow.InvalidValueError:
                refused.append(name)
        nbflow.write_stream("k", "after")
        nbflow.set_event("e", "set")
        return refused

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == list(calls)
    assert handle.status() == Status.SUCCESS
    assert list(nbflow.read_stream(handle.workflow_id, "k")) == ["before", "after"]
    assert [s.key for s in nbflow.list_streams(handle.workflow_id)] == ["k"]
    assert nbflow.get_event(handle.workflow_id, "e", timeout=0) == "set"
    runs_on(rt)


@bad_names
def test_bad_names_outside_a_workflow_are_refused_at_the_call(rt: nbflow.Runtime, bad: Any) -> None:
    """read_stream, get_event, send (id and topic), Queue and @workflow(name=) refuse a bad name."""
    wid = nbflow.start(ok).workflow_id
    nbflow.get_workflow(wid).result(timeout=10)

    def declare() -> object:
        return nbflow.workflow(name=bad)(lambda: None)

    calls: dict[str, Callable[[], object]] = {
        "read_stream": lambda: nbflow.read_stream(wid, bad),
        "get_event key": lambda: nbflow.get_event(wid, bad, timeout=0),
        "get_event id": lambda: nbflow.get_event(bad, "e", timeout=0),
        "send topic": lambda: nbflow.send(wid, "lost", topic=bad),
        "send id": lambda: nbflow.send(bad, "lost"),
        "Queue": lambda: nbflow.Queue(bad),
        "workflow name": declare,
    }
    for name, call in calls.items():
        with pytest.raises(nbflow.InvalidValueError):
            call()
            pytest.fail(f"{name} accepted {bad!r:.60}")
    assert [w.workflow_id for w in nbflow.list_workflows()] == [wid]
    runs_on(rt)


def test_a_nul_key_on_a_running_workflow_does_not_stop_the_runtime(rt: nbflow.Runtime) -> None:
    """A NUL stream key is refused at the write, not at the commit: on PostgreSQL the committer
    used to stop for good; now the same runtime runs the workflow and another one to SUCCESS."""

    @nbflow.workflow
    def wf() -> str:
        try:
            nbflow.write_stream("rows\x00", 1)
        except nbflow.InvalidValueError as exc:
            return str(exc)
        return "accepted"

    handle = nbflow.start(wf)
    message = handle.result(timeout=10)
    assert handle.status() == Status.SUCCESS
    assert "NUL" in message and "'rows\\x00'" in message
    runs_on(rt)


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("", "empty"),
        ("a\x00b", "NUL"),
        ("half a pair: \ud800", "surrogate"),
        ("x" * 100_000, "1,000"),
        (7, "int"),
    ],
    ids=["empty", "nul", "surrogate", "too-long", "not-a-str"],
)
def test_the_error_says_what_was_wrong_the_value_and_what_to_do(
    rt: nbflow.Runtime, bad: Any, said: str
) -> None:
    """The message names the name's role, what was wrong, the value (shortened) and what to do."""
    with pytest.raises(nbflow.InvalidValueError) as info:
        nbflow.Queue(bad)
    message = str(info.value)
    assert message.startswith("A queue name ")
    assert said in message
    assert repr(bad)[:40] in message
    assert len(message) < 600  # a 100,000-character id is shortened
    assert "Use " in message
    assert info.value.what == "A queue name"
    assert info.value.value is bad


def test_a_name_of_1000_utf8_bytes_is_stored_and_one_more_byte_is_refused(
    rt: nbflow.Runtime,
) -> None:
    """The limit is 1,000 UTF-8 bytes on both stores: such a workflow id and stream key work."""
    longest = "é" * 499 + "xy"  # 1,000 bytes
    assert len(longest.encode()) == 1000

    @nbflow.workflow
    def wf() -> str:
        nbflow.write_stream(longest, "item")
        nbflow.set_event(longest, "event")
        return "done"

    with nbflow.set_workflow_id(longest):
        handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "done"
    assert list(nbflow.read_stream(longest, longest)) == ["item"]
    assert nbflow.get_event(longest, longest, timeout=0) == "event"
    with (
        pytest.raises(nbflow.InvalidValueError, match="1,001 bytes"),
        nbflow.set_workflow_id(longest + "z"),
    ):
        nbflow.start(wf)
    runs_on(rt)


# -- values --------------------------------------------------------------------------------------


def test_nul_and_surrogates_inside_values_and_error_messages_round_trip(
    rt: nbflow.Runtime,
) -> None:
    """A NUL in a value is JSON-escaped (\\u0000) and comes back; an exception whose message holds
    a NUL or a lone surrogate is recorded (on PostgreSQL it used to stop the committer)."""
    values = ["a\x00b", {"k\x00": ["\x00", "tail"]}]

    @nbflow.workflow
    def wf() -> str:
        for value in values:
            nbflow.write_stream("k", value)
        nbflow.set_event("e", "v\x00")
        return "r\x00"

    @nbflow.workflow
    def fails(message: str) -> None:
        raise ValueError(message)

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "r\x00"
    assert list(nbflow.read_stream(handle.workflow_id, "k")) == values
    assert nbflow.get_event(handle.workflow_id, "e", timeout=0) == "v\x00"
    stored = sql(rt, "select value_json from streams where workflow_id = ?", handle.workflow_id)
    assert ('"a\\u0000b"',) in stored

    for message in ["boom \x00 here", "boom \ud800 here"]:
        failed = nbflow.start(fails, message)
        with pytest.raises(ValueError, match="boom") as info:
            failed.result(timeout=10)
        assert str(info.value) == message  # rebuilt from its pickle, as it was
        assert failed.status() == Status.ERROR
    runs_on(rt)


def test_a_400_level_json_value_is_stored_as_json(rt: nbflow.Runtime) -> None:
    """A plain JSON value 400 levels deep (json.dumps handles it) is stored as JSON, not pickled."""
    deep = nested(400)

    @nbflow.workflow
    def wf() -> str:
        nbflow.write_stream("deep", deep)
        return "done"

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "done"
    assert list(nbflow.read_stream(handle.workflow_id, "deep")) == [deep]
    stored = sql(
        rt,
        "select value_json is not null, value_pickle is null from streams where workflow_id = ? "
        'and key = ? order by "offset"',
        handle.workflow_id,
        "deep",
    )
    assert stored[0] == (True, True)


@pytest.mark.contract
def test_values_json_reads_exactly_as_json_wrote_them(database: str) -> None:
    """The values orjson refuses or would change (an int past 64 bits, which it reads as a
    float; a lone surrogate; 600 levels; a float it spells differently) round-trip exactly
    through a stream, as JSON, on both stores; so do 19-digit strings and a large page."""
    numbers: list[Any] = [
        2**70,
        -(2**64),
        {"n": 12345678901234567890123, "s": "1234567890123456789012"},
        1e-07,
        [0.1, 1e16, -0.0, 5e-324],
        9_223_372_036_854_775_807,
    ]
    others: list[Any] = ["lone \ud800 surrogate", nested(600)]

    @nbflow.workflow(name="tests.validation.exact")
    def exact() -> None:
        for value in numbers:  # (read back in one page: a lone surrogate would send it to json)
            nbflow.write_stream("numbers", value)
        for value in others:
            nbflow.write_stream("others", value)

    with nbflow.configure(database) as rt:
        with nbflow.set_workflow_id("exact-1"):
            exact()
        for key, values in (("numbers", numbers), ("others", others)):
            back = list(rt.read_stream("exact-1", key))
            assert back == values
            assert [type(v) for v in back] == [type(v) for v in values]
            one_by_one = [rt.read_stream("exact-1", key, start=i).__next__() for i in range(2)]
            assert one_by_one == values[:2]
        assert math.copysign(1.0, list(rt.read_stream("exact-1", "numbers"))[4][2]) == -1.0
        query = "select count(*) from streams where workflow_id = ? and value_json is null"
        stored = sql(rt, query + " and not is_end", "exact-1")
        assert stored == [(0,)]  # every one stored as JSON


def test_shared_and_cyclic_values() -> None:
    """A value that holds the same list twice is JSON; a cyclic one is not, and does not hang."""
    from nbflow._serialization import encode, is_json_native

    shared = ["s"]
    assert is_json_native({"a": shared, "b": [shared, shared]})
    text, blob = encode({"a": shared, "b": [shared, shared]}, what="test")
    assert text == '{"a":["s"],"b":[["s"],["s"]]}' and blob is None
    cyclic: dict[str, Any] = {"a": [1]}
    cyclic["a"].append(cyclic)
    assert not is_json_native(cyclic)
    text, blob = encode(cyclic, what="test")
    assert text is None and blob is not None
    assert is_json_native(nested(600))  # deeper than the old recursive check could go
    too_deep: list[Any] = []
    inner = too_deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(nbflow.SerializationError):
        encode(too_deep, what="test")


def test_the_hot_paths_json_is_what_encode_gives_or_nothing() -> None:
    """``plain_json`` (a step's output, a stream item) gives the JSON text ``encode`` gives, or
    None for a value ``encode`` must decide: a tuple, inf or NaN, a str or dict subclass, an int
    past 64 bits, a lone surrogate, a shared or cyclic container, a non-str key."""
    from nbflow._serialization import encode, plain_json

    class Text(str):
        pass

    shared = ["s"]
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    plain: list[Any] = [1, "é", None, True, 0.5, -0.0, [1, {"a": [2.5, None]}], {"k": "v"}, {}]
    others: list[Any] = [
        (1, 2),
        float("inf"),
        [float("nan")],
        Text("x"),
        {"a": Text("x")},
        2**70,
        "lone \ud800",
        {"a": shared, "b": shared},
        cyclic,
        {1: "a"},
        nested(600),
    ]
    for value in plain:
        assert plain_json(value) == encode(value, what="test")[0] is not None
    for value in others:
        assert plain_json(value) is None, value


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@localhost:notaport/db",
        "postgresql://u:secret@localhost:99999/db",
        "postgresql://u:secret@[::1/db",
    ],
    ids=["bad-port", "port-out-of-range", "unbalanced-bracket"],
)
def test_a_postgres_url_nbflow_cannot_use_raises_configuration_error(url: str) -> None:
    """A bad port or an unparsable URL raises ConfigurationError, without the password."""
    pytest.importorskip("psycopg")
    with pytest.raises(nbflow.ConfigurationError) as info:
        nbflow.Runtime(url)
    message = str(info.value)
    assert "secret" not in message
    assert "postgresql://u" in message and "postgresql://user:password@host:5432/dbname" in message


@bad_names
def test_a_bad_step_name_is_refused_at_the_declaration(bad: Any) -> None:
    with pytest.raises(nbflow.InvalidValueError, match="A step name"):
        nbflow.step(name=bad)(lambda: None)


@bad_names
def test_lookups_by_a_bad_id_are_refused_the_same_on_both_stores(
    rt: nbflow.Runtime, bad: Any
) -> None:
    lookups = {
        "get_workflow": lambda: nbflow.get_workflow(bad),
        "cancel": lambda: nbflow.cancel(bad),
        "resume": lambda: nbflow.resume(bad),
        "fork": lambda: nbflow.fork(bad, 1),
        "list_steps": lambda: nbflow.list_steps(bad),
        "list_streams": lambda: nbflow.list_streams(bad),
        "read_stream": lambda: nbflow.read_stream(bad, "k"),
    }
    for name, lookup in lookups.items():
        with pytest.raises(nbflow.InvalidValueError, match="A workflow id"):
            lookup()
            pytest.fail(f"{name} accepted {bad!r}")
    runs_on(rt)
