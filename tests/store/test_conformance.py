"""The store conformance suite: what a :class:`~nbflow.store._base.Store` must do, tested at its
interface, on every store.

The runtime never touches a database but through ``Store``: it commits batches of the typed
operations of :mod:`nbflow.store._ops` and reads back through a few queries. These tests drive a
store directly that way (no runtime, no threads of nbflow's own), one test per rule, each rule said
in its docstring. A store that passes them all is a store the runtime can use. The same contract,
through the whole runtime, is in the ``contract`` tests (``tests/conftest.py``).

What a new store implements
===========================

A store of its own (a subclass of ``nbflow.store._base.Store``) implements its 18 abstract
methods: ``commit``, ``claim``, ``dequeue``, ``append_record``, ``close``, and the reads
``get_workflow``, ``get_status``, ``load_replay``, ``read_stream``, ``read_stream_json``,
``next_message``, ``list_events``, ``get_event``, ``running_children``, ``pending_workflows``,
``list_workflows``, ``list_steps``, ``list_streams``. ``Store`` gives defaults for the rest:
``attach`` (does nothing), ``executor_alive`` (False), ``list_recorded`` and ``get_step_pickle``
(read through ``list_steps``), and the attributes ``single_process = True``, ``poll_interval =
None`` and ``json_pages = False`` (whether readers read pages with ``read_stream_json``). The
store sets ``url`` itself (where it is, for messages, password left out).

A SQL store (a subclass of ``nbflow.store._sql.SQLStore``, as DuckDB and PostgreSQL are) gets
from ``SQLStore`` every read above (the shared queries, with ``$1, $2, …`` placeholders; its
database must run them: ``left()``, ``count(*) FILTER (WHERE …)``, ``bool_or``,
``string_agg(… ORDER BY …)``, ``>>`` on integers, ``IS NOT DISTINCT FROM``, ``UPDATE …
RETURNING``, a quoted ``"offset"`` column), and
``dequeue`` and ``append_record`` too, and ``_plan``, which turns a batch of operations into
statements (consecutive inserts become one insert per table). It implements only:

- ``_fetchall(sql, params)``: run one query (``$n`` placeholders) on a connection of this
  thread's and return its rows;
- ``_insert(table, rows)``: the statement that inserts rows (named tuples) into a table, skipping
  a message whose id exists;
- ``_finish(statements, op)``: append the statements of a ``Finish`` (its status; and its
  ``markers``, or with ``markers=None`` an end marker after the last item of every open stream);
- ``_queue_transaction(name)``: a context manager, one transaction in which one caller at a time
  (per name) runs statements; ``dequeue`` and ``append_record`` run in it;
- ``commit(ops)``: run ``self._plan(ops)`` in one transaction and return the ids left out;
- ``claim(...)`` and ``close()``;
- the class attribute ``_name_in``: the SQL test that ``name`` is in the list ``$4``
  (``dequeue`` uses it; it has no default), and optionally ``_lock_taken`` (e.g.
  ``FOR UPDATE SKIP LOCKED``) and ``_consume`` (the statement that deletes a received message).

So ``dequeue`` is not for a SQL store to write (``SQLStore`` has it), but ``_queue_transaction``
and ``_name_in`` are. A SQL store also creates the tables by running the ordered ``MIGRATIONS``
of ``nbflow/store/_schema.py`` (its column types from ``TABLES``). A store shared by processes
sets ``single_process = False`` and ``poll_interval``, and overrides ``attach``,
``executor_alive`` and ``pending_workflows`` (``SQLStore``'s lists every PENDING workflow, right
only for one process), as ``PostgresStore`` does.

Running this suite on a store
=============================

Open the store from ``nbflow.store.open_store(location)``, then add its name to the ``STORES``
parameters and its location to :func:`location` below, and run::

    .venv/bin/python -m pytest tests/store/test_conformance.py -q

A few rules hold only for a store shared by processes (``single_process = False``: executors,
fencing, notifications); they say so and are skipped on a single-process store. Where the stores
differ on a rule and the interface does not say which is right, the test is marked
``xfail(strict=True)`` on the store that breaks it, with the reason (:func:`known_issue`).

What a store is given: texts (ids, names, keys, topics, JSON values, error texts) are valid
Unicode without NUL — nbflow refuses such names and escapes such values before they reach the
store (``nbflow._serialization``) — and bytes (pickles) of any kind.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbflow._errors import RuntimeClosedError
from nbflow._serialization import decode, encode, storable_text
from nbflow.store import Store, open_store
from nbflow.store._base import RecordedHead, Replay, ReplayRecord
from nbflow.store._history import StepStatsQuery, StepStatsRow, WorkflowQuery
from nbflow.store._ops import (
    CacheRow,
    Changes,
    Consume,
    Enqueue,
    Finish,
    Fork,
    MessageRow,
    Op,
    SetEvent,
    StepRow,
    StreamRow,
    WorkflowRow,
    event_step_name,
)
from nbflow.store._sqlpages import CHUNK, CHUNK_MARK
from nbflow.store._sqlqueues import QueueLimits

#: The stores the suite runs on (a new store: add its name here and its location in location()).
STORES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
#: The executor the ``store`` fixture attaches: the workflows of these tests run "here".
HERE = "executor-here"
#: The one other executor of the tests that need one (stores shared by processes only).
ANOTHER = "executor-another"
T = 1_700_000_000.0  # every time in the tests: fixed, never the clock's
QUEUED = "tests.store.queued"
#: What a schema refuses in any store: a step without a name (NOT NULL). A batch ending with it
#: fails, whatever the store (the error is the database's own: the interface names none).
REFUSED_MESSAGE = r"(?i)not.null|null value"


# -- the store -------------------------------------------------------------------------------


@pytest.fixture(params=STORES)
def store_name(request: pytest.FixtureRequest) -> str:
    """Which store the test runs on."""
    return str(request.param)


@pytest.fixture
def location(store_name: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of that store (the fixtures of ``tests/conftest.py``): a DuckDB
    file not created yet (``db_path``), or a PostgreSQL schema of its own on the throwaway
    server (``pg_url``, which skips the test where no server can be started)."""
    if store_name == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("db_path"))


@pytest.fixture
def heard() -> queue.Queue[Changes]:
    """What the store reported to the runtime it is attached to (other processes' changes)."""
    return queue.Queue()


@pytest.fixture
def store(location: str, heard: queue.Queue[Changes]) -> Iterator[Store]:
    """The store, opened by ``open_store`` and attached as the executor :data:`HERE` (as a runtime
    does right after opening it); closed after the test."""
    opened = open_store(location)
    try:
        opened.attach(HERE, heard.put)
        yield opened
    finally:
        opened.close()


@pytest.fixture
def another(store: Store, location: str) -> Iterator[Store]:
    """The same database opened again and attached as :data:`ANOTHER`: another process's
    runtime. Only a store shared by processes has one."""
    if store.single_process:
        pytest.skip("a single-process store has no other executor (one process per database)")
    opened = open_store(location)
    try:
        opened.attach(ANOTHER, lambda change: None)
        yield opened
    finally:
        opened.close()


def known_issue(request: pytest.FixtureRequest, reason: str) -> None:
    """Mark this run of a test as failing for a known reason (strict: when it passes, the
    reason is gone and the mark must go too)."""
    request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


# -- rows ------------------------------------------------------------------------------------


def workflow(
    workflow_id: str,
    *,
    name: str = "tests.store.wf",
    status: str = "PENDING",
    at: float = 0.0,
    **fields: Any,
) -> WorkflowRow:
    """A workflow row created at ``T + at``, run here unless ``executor_id`` says otherwise."""
    fields.setdefault("executor_id", HERE)
    return WorkflowRow(
        workflow_id, name, status, '["input"]', None, created_at=T + at, updated_at=T + at, **fields
    )


def queued(workflow_id: str, at: float, *, queue: str = "q", name: str = QUEUED) -> Enqueue:
    """An Enqueue of a workflow on ``queue``, created at ``T + at``."""
    row = workflow(workflow_id, name=name, status="ENQUEUED", at=at, queue_name=queue)
    return Enqueue(row._replace(executor_id=None))


def step(
    workflow_id: str,
    function_id: int,
    name: str | None = "tests.store.step",
    *,
    output_json: str | None = '"out"',
    output_pickle: bytes | None = None,
    error: str | None = None,
    error_pickle: bytes | None = None,
    attempts: int = 1,
) -> StepRow:
    """A step's checkpoint, started at ``T + function_id`` and ended half a second later."""
    return StepRow(
        workflow_id,
        function_id,
        name,  # type: ignore[arg-type]  # (None: the row the schema refuses)
        output_json,
        output_pickle,
        error,
        error_pickle,
        T + function_id,
        T + function_id + 0.5,
        attempts,
    )


def item(
    workflow_id: str,
    key: str,
    offset: int,
    value_json: str | None = '"v"',
    *,
    pickle: bytes | None = None,
    fid: int | None = None,
    attempt: int | None = None,
    at: float = 0.0,
) -> StreamRow:
    """A stream item: written by the body at ``fid`` (attempt None), inside step ``fid`` (an
    attempt), or a printed line of the body (neither)."""
    value = None if pickle is not None else value_json
    return StreamRow(workflow_id, key, offset, value, pickle, False, fid, attempt, T + at)


def end(
    workflow_id: str, key: str, offset: int, *, fid: int | None = None, at: float = 0.0
) -> StreamRow:
    """An end marker: a close by the body at ``fid``, or (None) one the workflow's end wrote."""
    return StreamRow(workflow_id, key, offset, None, None, True, fid, None, T + at)


def message(
    message_id: str,
    destination: str,
    topic: str | None = None,
    value: str = '"hi"',
    at: float = 0.0,
) -> MessageRow:
    """A message to ``destination``, sent at ``T + at``."""
    return MessageRow(message_id, destination, topic, value, None, T + at)


def refused(workflow_id: str) -> StepRow:
    """An operation every store refuses (a step without a name): a batch that ends with it fails."""
    return step(workflow_id, 999, None)


def ids(rows: list[WorkflowRow]) -> list[str]:
    return [row.workflow_id for row in rows]


def take(
    store: Store, names: list[str], limit: int, concurrency: int | None, now: float
) -> list[WorkflowRow]:
    """The rows ``store.dequeue`` takes from queue ``q`` for this executor (with only a
    concurrency limit)."""
    return store.dequeue("q", HERE, names, limit, QueueLimits(concurrency), now).rows


def listed(store: Store, status: str | None, name: str | None, limit: int) -> list[WorkflowRow]:
    """``store.list_workflows`` with a status (or None), a name (or None) and a limit."""
    statuses = () if status is None else (status,)
    return store.list_workflows(WorkflowQuery(statuses=statuses, name=name, limit=limit))


def items_of(store: Store, workflow_id: str, key: str) -> list[tuple[Any, ...]]:
    """The whole stream as ``(offset, value_json, value_pickle, is_end)`` tuples."""
    return [tuple(row) for row in store.read_stream(workflow_id, key, 0, 1_000_000)]


def fail_commit(store: Store, ops: list[Op]) -> None:
    """Commit a batch that must fail (it ends with :func:`refused`)."""
    with pytest.raises(Exception, match=REFUSED_MESSAGE):
        store.commit(ops)


# -- commit: one transaction, in order -------------------------------------------------------


def test_commit_applies_a_batch_in_order(store: Store) -> None:
    """A batch applies in the order of its operations: each sees what those before it in the
    same batch wrote (a Fork copies steps inserted just before it; a Finish closes the stream
    items written just before it)."""
    store.commit(
        [
            workflow("a"),
            step("a", 1),
            step("a", 2),
            item("a", "k", 0, fid=1, attempt=1),
            Fork("a", "b", from_step=2, now=T + 5, executor_id=HERE),
            step("b", 2, "b's own"),
            item("b", "k", 1, '"b"', fid=2, attempt=1),
            Finish("b", "SUCCESS", T + 6, output_json="2", markers=None),
        ]
    )
    assert [(s.function_id, s.name) for s in store.list_steps("b")] == [
        (1, "tests.store.step"),
        (2, "b's own"),
    ]
    assert items_of(store, "b", "k") == [
        (0, '"v"', None, False),
        (1, '"b"', None, False),
        (2, None, None, True),
    ]
    assert store.get_status("b") == "SUCCESS"


def test_a_failed_commit_writes_nothing(store: Store) -> None:
    """A batch is one transaction: when an operation of it fails (here its last one, a row the
    schema refuses), nothing of the whole batch is written, and the store goes on working.
    (That nothing is visible *before* commit returns cannot be seen from one thread.)"""
    store.commit([workflow("old")])
    fail_commit(
        store,
        [
            workflow("new"),
            step("new", 1),
            item("new", "k", 0, fid=1, attempt=1),
            message("m", "old"),
            SetEvent(step("old", 1, event_step_name("e")), "e"),
            Finish("new", "SUCCESS", T + 1, markers=None),
            Finish("old", "CANCELLED", T + 1, markers=None),
            Enqueue(workflow("queued", status="ENQUEUED", queue_name="q")),
            refused("new"),
        ],
    )
    assert store.get_workflow("new") is None
    assert store.get_workflow("queued") is None
    assert store.list_steps("new") == [] and store.list_steps("old") == []
    assert items_of(store, "new", "k") == []
    assert store.next_message("old", None) is None
    assert store.get_status("old") == "PENDING"
    assert store.commit([step("old", 1)]) == set()  # the store goes on
    assert [s.function_id for s in store.list_steps("old")] == [1]


def test_commit_of_a_batch_run_here_leaves_nothing_out(store: Store) -> None:
    """``commit`` returns the ids of the workflows whose writes it left out: none when every
    workflow of the batch is run here and not cancelled, whichever operations the batch holds."""
    e = event_step_name("e")
    assert store.commit([workflow("w"), workflow("src"), message("m", "w")]) == set()
    batch: list[Op] = [
        step("w", 1),
        item("w", "k", 0, fid=2),
        SetEvent(step("w", 3, e), "e"),
        Consume("m", step("w", 4, "nbflow.recv")),
        MessageRow("m2", "src", None, "1", None, T),
        Fork("src", "fork", 1, T, HERE),
        queued("child", 0),
        workflow("record", status="SUCCESS"),
        Finish("w", "SUCCESS", T + 1, markers=(end("w", "k", 1),)),
    ]
    assert store.commit(batch) == set()


# -- workflows -------------------------------------------------------------------------------


def test_a_workflow_row_reads_back_as_written(store: Store) -> None:
    """A WorkflowRow (or an Enqueue's row) is inserted with every field as given: get_workflow
    returns it equal, get_status its status; both return None for an unknown id."""
    pending = WorkflowRow(
        "w1", "pkg.mod.fn", "PENDING", None, b"\x80\x05inputs", None, None, None, None,
        T, T + 1, None, HERE, "parent", None, None, T + 60,
    )  # fmt: skip
    ended = WorkflowRow(
        "w2", "pkg.mod.fn", "ERROR", "[1]", None, None, None, "ValueError: x", b"\x80err",
        T, T + 2, T + 2, "gone", None, 3, "q", None,
    )  # fmt: skip
    enqueued = WorkflowRow(
        "w3", "pkg.other", "ENQUEUED", "{}", None, created_at=T + 3, updated_at=T + 3,
        queue_name="q", parent_id="w1",
    )  # fmt: skip
    assert store.commit([pending, ended, Enqueue(enqueued)]) == set()
    assert store.get_workflow("w1") == pending
    assert store.get_workflow("w2") == ended
    assert store.get_workflow("w3") == enqueued
    assert [store.get_status(w) for w in ("w1", "w2", "w3")] == ["PENDING", "ERROR", "ENQUEUED"]
    assert store.get_workflow("unknown") is None
    assert store.get_status("unknown") is None


def test_list_workflows_is_newest_first_with_a_limit(store: Store) -> None:
    """list_workflows returns workflows newest first (by created_at), at most ``limit``."""
    store.commit([workflow(f"w{i}", at=i) for i in (3, 1, 4, 0, 2)])
    assert ids(listed(store, None, None, 100)) == ["w4", "w3", "w2", "w1", "w0"]
    assert ids(listed(store, None, None, 2)) == ["w4", "w3"]
    assert listed(store, None, None, 100)[0] == workflow("w4", at=4)


def test_list_workflows_filters_by_status_and_name(store: Store) -> None:
    """list_workflows keeps only the given status and the given name (both when both are given);
    a name matches exactly (no pattern)."""
    store.commit(
        [
            workflow("a1", name="a_b%", at=1),
            workflow("a2", name="a_b%", status="SUCCESS", at=2),
            workflow("b1", name="axbyy", at=3),
            queued("a3", 4, name="a_b%"),
        ]
    )
    assert ids(listed(store, "PENDING", None, 100)) == ["b1", "a1"]
    assert ids(listed(store, None, "a_b%", 100)) == ["a3", "a2", "a1"]
    assert ids(listed(store, "PENDING", "a_b%", 100)) == ["a1"]
    assert ids(listed(store, "ENQUEUED", None, 100)) == ["a3"]
    assert ids(listed(store, "ERROR", None, 100)) == []
    assert ids(listed(store, None, "a_b%", 1)) == ["a3"]


def test_list_workflows_takes_every_filter_in_one_query(store: Store) -> None:
    """A WorkflowQuery's filters all hold at once: statuses, an id prefix taken literally (``_``
    and ``%`` are characters), created in [since, until), queue, parent, names left out, and
    pages by offset, oldest first when asked."""
    store.commit(
        [
            workflow("a_%1", at=1),
            workflow("a_%2", status="SUCCESS", at=2, parent_id="p"),
            workflow("ab%3", at=3),
            workflow("a_x4", at=4),
            workflow("a\\5", name="nbflow.record", at=5),
            queued("a_%6", 6, queue="q2"),
        ]
    )

    def q(**given: Any) -> list[str]:
        return ids(store.list_workflows(WorkflowQuery(**given)))

    assert q(id_prefix="a_%") == ["a_%6", "a_%2", "a_%1"]
    assert q(id_prefix="a\\") == ["a\\5"]
    assert q(id_prefix="a_%", statuses=("SUCCESS", "ENQUEUED")) == ["a_%6", "a_%2"]
    assert q(since=T + 2, until=T + 4) == ["ab%3", "a_%2"]
    assert q(queue="q2") == ["a_%6"]
    assert q(parent_id="p") == ["a_%2"]
    assert q(exclude_names=("nbflow.record",), since=T + 5) == ["a_%6"]
    assert q(offset=1, limit=2) == ["a\\5", "a_x4"]
    assert q(offset=1, limit=2, newest_first=False) == ["a_%2", "ab%3"]
    assert q(offset=10) == []


def test_step_stats_counts_each_name_in_one_query(store: Store) -> None:
    """step_stats gives per name: step records, errors, retries (attempts - 1), percentiles of
    the durations, their max and sum; nbflow's own operations only when named; since/until on
    the start."""
    store.commit(
        [
            workflow("w"),
            step("w", 1, "a", attempts=3),
            step("w", 2, "a", error="ValueError: x", output_json=None),
            step("w", 3, "b"),
            step("w", 4, "nbflow.sleep"),
        ]
    )
    a, b = store.step_stats(StepStatsQuery())
    assert a == StepStatsRow("a", 2, 1, 2, 0.5, 0.5, 0.5, 1.0)
    assert b.name == "b" and b.records == 1
    assert [r.name for r in store.step_stats(StepStatsQuery(name="nbflow.sleep"))] == [
        "nbflow.sleep"
    ]
    assert [r.name for r in store.step_stats(StepStatsQuery(since=T + 2, until=T + 4))] == [
        "a",
        "b",
    ]
    assert store.step_stats(StepStatsQuery(since=T + 2, until=T + 3))[0].records == 1
    assert store.get_step_output("w", 3) == ('"out"', None)
    assert store.get_step_output("w", 9) is None


def test_pending_workflows_are_the_interrupted_ones_oldest_first(store: Store) -> None:
    """pending_workflows lists the PENDING workflows no other live executor runs — this store's
    own and those of executors that are gone — oldest first, and no workflow of another status."""
    store.commit(
        [
            workflow("mine-2", at=2),
            workflow("gone-1", at=1, executor_id="gone"),
            workflow("nobody-3", at=3, executor_id=None),
            workflow("done", status="SUCCESS"),
            workflow("failed", status="ERROR"),
            workflow("cancelled", status="CANCELLED"),
            queued("queued", 0),
        ]
    )
    assert ids(store.pending_workflows()) == ["gone-1", "mine-2", "nobody-3"]


def test_pending_workflows_leave_out_what_a_live_executor_runs(
    store: Store, another: Store
) -> None:
    """(Shared stores.) A workflow that another live executor runs is not pending for this one:
    each store lists its own and those of gone executors, not the other's."""
    store.commit([workflow("theirs", executor_id=ANOTHER), workflow("mine", at=1)])
    store.commit([workflow("orphan", at=2, executor_id="gone")])
    assert ids(store.pending_workflows()) == ["mine", "orphan"]
    assert ids(another.pending_workflows()) == ["theirs", "orphan"]


def test_executor_alive_while_its_store_is_open(store: Store, location: str) -> None:
    """(attach / executor_alive.) A shared store says an executor is alive while the store that
    attached it is open (never for None or an id never attached); a single-process store has no
    other executor: always False."""
    assert not store.executor_alive(None)
    assert not store.executor_alive("never-attached")
    if store.single_process:
        assert not store.executor_alive(ANOTHER)
        return
    other = open_store(location)
    try:
        other.attach(ANOTHER, lambda change: None)
        assert store.executor_alive(ANOTHER)
        assert other.executor_alive(HERE)
    finally:
        other.close()


def test_attach_reports_what_other_processes_changed(
    store: Store, another: Store, heard: queue.Queue[Changes]
) -> None:
    """(Shared stores.) The ``on_change`` given to attach hears, from a background thread, what
    batches of other processes changed (:func:`~nbflow.store._ops.changes`): the workflows whose
    readers must look again, the queues whose dispatchers must; not its own batches."""
    store.commit([workflow("mine"), item("mine", "k", 0)])
    another.commit([workflow("theirs", executor_id=ANOTHER), item("theirs", "k", 0)])
    another.commit([queued("job", 0, queue="jobs")])
    seen = Changes(set(), set())
    while not ({"theirs"} <= seen.workflows and {"jobs"} <= seen.queues):
        change = heard.get(timeout=30)  # (a wait for the notification, not a timing)
        seen = Changes(seen.workflows | change.workflows, seen.queues | change.queues)
    assert "mine" not in seen.workflows  # (notified before theirs, had it been reported)


# -- steps -----------------------------------------------------------------------------------


def _steps(workflow_id: str) -> list[StepRow]:
    """Checkpoints of every kind: JSON output, pickled output, error with and without pickle."""
    return [
        step(workflow_id, 1, output_json='{"a":[1,2.5,null]}'),
        step(workflow_id, 2, output_json=None, output_pickle=b"\x80\x05pickle\x00bytes"),
        step(workflow_id, 3, output_json=None, error="ValueError: bad", error_pickle=b"\x80e"),
        step(workflow_id, 4, output_json=None, error="RecordedError: x", attempts=3),
        step(workflow_id, 6, "other", output_json="null", attempts=2),
    ]


def test_steps_round_trip(store: Store) -> None:
    """A StepRow is stored as given — output as JSON or pickle, error text and pickle, times,
    attempts — and list_steps returns a workflow's steps by function id, whatever order they
    were committed in (none for an unknown workflow)."""
    rows = _steps("w")
    store.commit([workflow("w")])
    store.commit(rows[:1])
    store.commit(rows[:0:-1])
    assert store.list_steps("w") == rows
    assert store.list_steps("unknown") == []


def test_list_steps_without_outputs(store: Store) -> None:
    """list_steps(outputs=False) returns the same steps without their values: output JSON,
    output pickle and error pickle are None; the rest (the error text too) is kept."""
    rows = _steps("w")
    store.commit([workflow("w"), *rows])
    assert store.list_steps("w", outputs=False) == [
        r._replace(output_json=None, output_pickle=None, error_pickle=None) for r in rows
    ]


def _history(store: Store) -> None:
    """A workflow "w" that did a bit of everything, then ended with an error at step 5.

    Function ids: 1 a step; 2 a body write to "out"; 3 a step that wrote to "log" in two
    attempts; 4 a body close of "out"; 5 a step that failed. "stdout" holds printed lines. Its
    end closed "log" and "stdout".
    """
    store.commit([workflow("w")])
    store.commit(
        [
            step("w", 1, output_json='"one"'),
            item("w", "out", 0, fid=2),
            item("w", "stdout", 0, '"line 1\\n"'),
            item("w", "log", 0, fid=3, attempt=1),
            item("w", "log", 1, fid=3, attempt=2),
            item("w", "log", 2, fid=3, attempt=2),
            step("w", 3, output_json=None, output_pickle=b"p", attempts=2),
            end("w", "out", 1, fid=4),
            item("w", "stdout", 1, '"line 2\\n"'),
            item("w", "stdout", 2, '"line 3\\n"'),
            step("w", 5, output_json=None, error="E: x", error_pickle=b"e"),
        ]
    )
    store.commit([Finish("w", "ERROR", T + 9, error="E: x", error_step=5, markers=None)])


def test_load_replay_returns_the_records_by_function_id(store: Store) -> None:
    """load_replay's records are the body's recorded operations by function id: its steps (with
    their values and errors), its stream writes ("write") and closes ("close"); not the items
    steps wrote, the printed lines, nor the end markers the workflow's end wrote."""
    _history(store)
    assert store.load_replay("w").records == [
        ReplayRecord(1, "step", "tests.store.step", '"one"', None, None, None),
        ReplayRecord(2, "write", "out", None, None, None, None),
        ReplayRecord(3, "step", "tests.store.step", None, b"p", None, None),
        ReplayRecord(4, "close", "out", None, None, None, None),
        ReplayRecord(5, "step", "tests.store.step", None, None, "E: x", b"e"),
    ]
    assert tuple(store.load_replay("unknown")) == tuple(Replay([], {}, {}, {}))


def test_load_replay_gives_each_stream_its_next_offset_and_closed_flag(store: Store) -> None:
    """load_replay's streams give, for each key, the next free offset (after every item and end
    marker) and whether the body closed it (an end marker the workflow's end wrote does not
    count: a reopened workflow may write on)."""
    _history(store)
    assert store.load_replay("w").streams == {
        "out": (2, True),
        "log": (4, False),
        "stdout": (4, False),
    }


def test_load_replay_gives_the_last_attempt_of_each_step_that_wrote(store: Store) -> None:
    """load_replay's attempts give, for each step that wrote stream items, the highest attempt
    number among its items."""
    _history(store)
    store.commit([workflow("v"), item("v", "a", 0, fid=7, attempt=1), item("v", "b", 0, fid=8)])
    assert store.load_replay("w").attempts == {3: 2}
    assert store.load_replay("v").attempts == {7: 1}


def test_load_replay_counts_the_printed_lines(store: Store) -> None:
    """load_replay's outputs give, for each key, how many printed lines of the body it holds
    (items with neither function id nor attempt; end markers do not count)."""
    _history(store)
    assert store.load_replay("w").outputs == {"stdout": 3}


def test_append_record_takes_the_next_function_id(store: Store) -> None:
    """append_record inserts a step at the next function id of its workflow (one more than the
    highest, 1 for the first; the row's own function id is ignored) and returns that id."""
    store.commit([workflow("rec", status="SUCCESS")])
    assert store.append_record(step("rec", 99, "cell a")) == 1
    assert store.append_record(step("rec", 0, "cell b")) == 2
    store.commit([step("rec", 7, "by a batch")])
    assert store.append_record(step("rec", 1, "cell c", output_json=None, output_pickle=b"p")) == 8
    assert store.list_steps("rec") == [
        step("rec", 99, "cell a")._replace(function_id=1),
        step("rec", 0, "cell b")._replace(function_id=2),
        step("rec", 7, "by a batch"),
        step("rec", 1, "cell c", output_json=None, output_pickle=b"p")._replace(function_id=8),
    ]


def test_list_recorded_leaves_the_pickles_out(store: Store) -> None:
    """list_recorded lists a workflow's successful steps (only those of a name, when given) in
    order, saying whether each has a pickle instead of returning it; get_step_pickle returns
    one step's pickle (None when it has none, or does not exist)."""
    store.commit(
        [
            workflow("w"),
            step("w", 1, "a", output_json="1"),
            step("w", 2, "b", output_json=None, output_pickle=b"\x80big"),
            step("w", 3, "a", output_json=None, error="E: x", error_pickle=b"\x80e"),
            step("w", 4, "a", output_json=None, output_pickle=b"\x80four"),
        ]
    )
    heads = {
        fid: RecordedHead(fid, name, out, has, T + fid, T + fid + 0.5)
        for fid, name, out, has in [
            (1, "a", "1", False),
            (2, "b", None, True),
            (4, "a", None, True),
        ]
    }
    assert store.list_recorded("w", None) == [heads[1], heads[2], heads[4]]
    assert store.list_recorded("w", "a") == [heads[1], heads[4]]
    assert store.list_recorded("unknown", None) == []
    assert store.get_step_pickle("w", 2) == b"\x80big"
    assert store.get_step_pickle("w", 1) is None
    assert store.get_step_pickle("w", 9) is None
    assert store.get_step_pickle("unknown", 2) is None


# -- streams ---------------------------------------------------------------------------------


def test_stream_items_come_back_in_offset_order(store: Store) -> None:
    """A stream, identified by (workflow, key), holds its items at the offsets they were written
    at, 0 first, whatever batches wrote them; other keys and other workflows are apart."""
    store.commit([workflow("w"), workflow("v")])
    store.commit([item("w", "k", 0, "0"), item("w", "j", 0, '"j"'), item("v", "k", 0, '"v"')])
    store.commit([item("w", "k", i, str(i)) for i in range(1, 8)])  # (a bulk insert)
    store.commit([item("w", "k", 8, pickle=b"\x80p")])
    assert items_of(store, "w", "k") == [
        *((i, str(i), None, False) for i in range(8)),
        (8, None, b"\x80p", False),
    ]
    assert items_of(store, "w", "j") == [(0, '"j"', None, False)]
    assert items_of(store, "v", "k") == [(0, '"v"', None, False)]
    assert items_of(store, "w", "none") == [] and items_of(store, "unknown", "k") == []


def test_read_stream_pages_from_an_offset_with_a_limit(store: Store) -> None:
    """read_stream returns at most ``limit`` rows, from offset ``start`` on, in offset order."""
    store.commit(
        [workflow("w"), *(item("w", "k", i, str(i)) for i in range(10)), end("w", "k", 10)]
    )
    page = store.read_stream
    assert [r[0] for r in page("w", "k", 3, 4)] == [3, 4, 5, 6]
    assert [tuple(r) for r in page("w", "k", 8, 100)] == [
        (8, "8", None, False),
        (9, "9", None, False),
        (10, None, None, True),
    ]
    assert [r[0] for r in page("w", "k", 0, 1)] == [0]
    assert page("w", "k", 11, 5) == []


def test_read_stream_json_gives_the_rows_of_read_stream_as_one_json_text(store: Store) -> None:
    """read_stream_json reads the rows read_stream would (``limit`` rows from ``start``, however
    their offsets follow, were some missing): how many, the first and last offsets, whether the
    last is the end marker, how many items are pickled, and the others' JSON texts exactly as
    stored, in offset order, joined by commas, ``CHUNK_MARK`` before each whose offset is a
    multiple of ``CHUNK``."""
    n = 2 * CHUNK + 5
    texts = [f'{{"i":{i},"big":{2**70 + i},"s":"\\ud800 {i}"}}' for i in range(n)]
    store.commit(
        [workflow("w"), *(item("w", "k", i, texts[i]) for i in range(n)), end("w", "k", n)]
    )
    store.commit([workflow("p"), item("p", "k", 0, "1"), item("p", "k", 1, pickle=b"\x80p")])
    missing = [0, 1, 5, CHUNK, CHUNK + 3]  # (offsets never missing in a stream nbflow wrote)
    store.commit(
        [workflow("g"), *(item("g", "k", i, str(i)) for i in missing), end("g", "k", CHUNK + 4)]
    )

    def page(workflow_id: str, start: int, limit: int) -> tuple[Any, ...]:
        return tuple(store.read_stream_json(workflow_id, "k", start, limit))

    def joined(first: int, last: int) -> str:
        return ",".join(CHUNK_MARK * (i % CHUNK == 0) + texts[i] for i in range(first, last + 1))

    assert page("w", 1, 3) == (3, 1, 3, False, 0, joined(1, 3))
    assert page("w", 0, 3) == (3, 0, 2, False, 0, CHUNK_MARK + ",".join(texts[:3]))
    assert page("w", CHUNK - 2, 4) == (
        4,
        CHUNK - 2,
        CHUNK + 1,
        False,
        0,
        joined(CHUNK - 2, CHUNK + 1),
    )
    assert page("w", 1, n + 10) == (n, 1, n, True, 0, joined(1, n - 1))
    assert page("w", n, 5) == (1, n, n, True, 0, None)
    nothing = (0, None, None, False, 0, None)
    assert page("w", n + 1, 5) == nothing and page("unknown", 0, 5) == nothing
    assert page("p", 0, 5) == (2, 0, 1, False, 1, CHUNK_MARK + "1")
    assert page("g", 1, 3) == (3, 1, CHUNK, False, 0, f"1,5,{CHUNK_MARK}{CHUNK}")
    assert page("g", 6, 10) == (3, CHUNK, CHUNK + 4, True, 0, f"{CHUNK_MARK}{CHUNK},{CHUNK + 3}")
    assert [r[0] for r in store.read_stream("g", "k", 1, 3)] == [1, 5, CHUNK]
    assert [r[0] for r in store.read_stream("g", "k", 2, 10)] == [5, CHUNK, CHUNK + 3, CHUNK + 4]


def test_finish_closes_the_open_streams_with_its_status(store: Store) -> None:
    """A Finish without markers (a cancel, or an end decided elsewhere) sets the final status
    and writes an end marker after the last item of each stream still open, at the end's time;
    a stream already closed gets no second one: the end marker is always last."""
    store.commit(
        [
            workflow("w"),
            item("w", "open", 0),
            item("w", "open", 1, at=1),
            item("w", "closed", 0),
            end("w", "closed", 1, fid=2),
        ]
    )
    store.commit([Finish("w", "CANCELLED", T + 9, markers=None)])
    assert store.get_status("w") == "CANCELLED"
    assert items_of(store, "w", "open")[2:] == [(2, None, None, True)]
    assert items_of(store, "w", "closed") == [(0, '"v"', None, False), (1, None, None, True)]
    assert [tuple(s) for s in store.list_streams("w")] == [
        ("closed", 1, True, T, T),
        ("open", 2, True, T, T + 9),
    ]


def test_finish_and_its_markers_are_one_transaction(store: Store) -> None:
    """A Finish's status and the end markers it writes are one: when its batch fails, the
    workflow is still PENDING and its streams still open."""
    store.commit([workflow("w"), item("w", "k", 0)])
    fail_commit(store, [Finish("w", "CANCELLED", T + 9, markers=None), refused("w")])
    assert store.get_status("w") == "PENDING"
    assert items_of(store, "w", "k") == [(0, '"v"', None, False)]


def test_finish_writes_the_end_it_is_given(store: Store) -> None:
    """A Finish with markers (the runner's own end) sets status, output or error, end time and
    error step, and writes exactly those markers; a workflow inserted and finished in one batch
    (a short one) ends up the same."""
    store.commit([workflow("w"), item("w", "k", 0), item("w", "j", 0)])
    store.commit([Finish("w", "SUCCESS", T + 5, output_json='"done"', markers=(end("w", "k", 1),))])
    row = store.get_workflow("w")
    assert row is not None
    assert (row.status, row.output_json, row.ended_at, row.updated_at) == (
        "SUCCESS",
        '"done"',
        T + 5,
        T + 5,
    )
    assert items_of(store, "w", "k")[-1] == (1, None, None, True)
    assert items_of(store, "w", "j") == [(0, '"v"', None, False)]  # not given: left open
    store.commit(
        [
            workflow("s"),
            item("s", "k", 0),
            Finish("s", "ERROR", T + 1, None, None, "E: x", b"\x80e", 1, (end("s", "k", 1),)),
        ]
    )
    assert store.get_workflow("s") == workflow("s")._replace(
        status="ERROR", error="E: x", error_pickle=b"\x80e", error_step=1,
        ended_at=T + 1, updated_at=T + 1,
    )  # fmt: skip
    assert items_of(store, "s", "k") == [(0, '"v"', None, False), (1, None, None, True)]


def test_list_streams_summarizes_each_stream(store: Store) -> None:
    """list_streams gives each of a workflow's streams by key: its item count (end marker not
    counted), whether it is closed, and the times of its first and last rows."""
    store.commit(
        [
            workflow("w"),
            item("w", "b", 0, at=1),
            item("w", "b", 1, at=2),
            item("w", "b", 2, at=3),
            item("w", "a", 0, at=5),
            end("w", "a", 1, fid=3, at=6),
        ]
    )
    assert [tuple(s) for s in store.list_streams("w")] == [
        ("a", 1, True, T + 5, T + 6),
        ("b", 3, False, T + 1, T + 3),
    ]
    assert store.list_streams("unknown") == []


# -- events and messages ---------------------------------------------------------------------


def test_the_last_value_of_an_event_wins(store: Store) -> None:
    """A SetEvent records an event as a step named ``event_step_name(key)``: get_event returns
    the value of the last successful one of that name; list_events lists every event of the
    workflow, oldest first (and no other step)."""
    phase, key = event_step_name("phase"), event_step_name("ключ 'k' 🔑")
    store.commit([workflow("w")])
    store.commit(
        [
            SetEvent(step("w", 1, phase, output_json='"one"'), "phase"),
            step("w", 2, "an ordinary step"),
            SetEvent(step("w", 3, key, output_json=None, output_pickle=b"\x80p"), "ключ 'k' 🔑"),
        ]
    )
    store.commit([SetEvent(step("w", 4, phase, output_json='"two"'), "phase")])
    store.commit([step("w", 5, phase, output_json=None, error="E: not a value")])
    assert store.get_event("w", phase) == ('"two"', None)
    assert store.get_event("w", key) == (None, b"\x80p")
    assert store.get_event("w", event_step_name("unset")) is None
    assert store.get_event("other", phase) is None
    assert [tuple(e) for e in store.list_events("w")] == [
        (phase, '"one"', None),
        (key, None, b"\x80p"),
        (phase, '"two"', None),
    ]
    assert store.list_events("other") == []


def test_next_message_is_the_oldest_on_its_topic(store: Store) -> None:
    """next_message returns the oldest message waiting for a destination on a topic (None: the
    messages sent without one), or None when there is none."""
    store.commit([workflow("dest")])
    store.commit(
        [
            message("m3", "dest", "t", "3", at=3),
            message("m1", "dest", "t", "1", at=1),
            message("m0", "dest", None, "0", at=0),
            message("m2", "dest", "u", "2", at=2),
            message("x", "other", "t", '"x"', at=0),
        ]
    )
    assert store.next_message("dest", "t") == MessageRow("m1", "dest", "t", "1", None, T + 1)
    assert store.next_message("dest", None) == message("m0", "dest", None, "0")
    assert store.next_message("dest", "u") == message("m2", "dest", "u", "2", at=2)
    assert store.next_message("dest", "v") is None
    assert store.next_message("nobody", "t") is None


def test_a_message_is_inserted_once(store: Store) -> None:
    """A MessageRow whose message id exists is skipped (a send replayed after a crash): the
    first one stays, and the rest of the batch is written."""
    store.commit([message("m", "d", None, '"first"')])
    store.commit([message("m", "d", None, '"again"'), message("n", "e", None, '"n"')])
    assert store.next_message("d", None) == message("m", "d", None, '"first"')
    assert store.next_message("e", None) == message("n", "e", None, '"n"')


def test_consume_deletes_the_message_with_the_step_that_records_it(store: Store) -> None:
    """A Consume deletes the message a workflow received and inserts the step that records it,
    in one transaction: after it the message is gone and the step is there; when its batch
    fails, neither happened. So a message is received once."""
    store.commit(
        [
            workflow("w"),
            message("m1", "w", "t", '"one"', at=1),
            message("m2", "w", "t", '"two"', at=2),
        ]
    )
    received = step("w", 1, "nbflow.recv", output_json='"one"')
    fail_commit(store, [Consume("m1", received), refused("w")])
    assert store.next_message("w", "t") == message("m1", "w", "t", '"one"', at=1)
    assert store.list_steps("w") == []
    store.commit([Consume("m1", received)])
    assert store.next_message("w", "t") == message("m2", "w", "t", '"two"', at=2)
    assert store.list_steps("w") == [received]


def test_a_kept_consume_marks_the_message_so_its_id_never_delivers_again(store: Store) -> None:
    """A Consume with ``keep`` (a message sent with an idempotency key) marks the message
    consumed instead of deleting it: no recv finds it again, and a message with its id sent
    again is still skipped."""
    store.commit([workflow("w"), message("key:k", "w", "t", '"one"', at=1)])
    received = step("w", 1, "nbflow.recv", output_json='"one"')
    store.commit([Consume("key:k", received, keep=True)])
    assert store.next_message("w", "t") is None
    store.commit([message("key:k", "w", "t", '"again"', at=2), message("m", "w", "t", '"m"')])
    assert store.next_message("w", "t") == message("m", "w", "t", '"m"')
    assert store.list_steps("w") == [received]


# -- queues ----------------------------------------------------------------------------------


def test_dequeue_takes_the_oldest_up_to_the_limit(store: Store) -> None:
    """dequeue takes up to ``limit`` of a queue's oldest ENQUEUED workflows, in one transaction:
    they become PENDING, run by the calling executor, updated at ``now``, and it returns their
    rows oldest first; the next call takes the next ones."""
    store.commit([queued(f"q{i}", i) for i in (3, 0, 4, 1, 2)])
    taken = take(store, [QUEUED], 2, None, T + 10)
    assert ids(taken) == ["q0", "q1"]
    assert taken[0] == queued("q0", 0).row._replace(
        status="PENDING", executor_id=HERE, updated_at=T + 10, started_at=T + 10
    )
    assert store.get_workflow("q1") == taken[1]
    assert store.get_status("q2") == "ENQUEUED"
    assert ids(take(store, [QUEUED], 10, None, T + 11)) == ["q2", "q3", "q4"]
    assert take(store, [QUEUED], 10, None, T + 12) == []


def test_dequeue_keeps_the_queue_within_its_concurrency(store: Store) -> None:
    """With a concurrency, dequeue takes only as many as keep the queue's PENDING workflows
    (whichever executor runs them) at most that many; one that ends frees its place."""
    store.commit([queued(f"q{i}", i) for i in range(5)])
    store.commit([workflow("elsewhere", at=-1, queue_name="q", executor_id=ANOTHER)])
    assert ids(take(store, [QUEUED], 10, 3, T)) == ["q0", "q1"]
    assert take(store, [QUEUED], 10, 3, T) == []
    store.commit([Finish("q0", "SUCCESS", T + 1, output_json="0", markers=())])
    assert ids(take(store, [QUEUED], 10, 3, T + 2)) == ["q2"]
    assert ids(take(store, [QUEUED], 1, None, T + 3)) == ["q3"]  # no concurrency


def test_dequeue_takes_only_its_queue_and_the_functions_named(store: Store) -> None:
    """dequeue takes only workflows of its queue called one of ``names`` (those declared in the
    calling process); none with no names."""
    store.commit([queued("f", 0, name="f"), queued("g", 1, name="g"), queued("o", 2, queue="o")])
    assert take(store, [], 10, None, T) == []
    assert ids(take(store, ["f", "h", QUEUED], 10, None, T)) == ["f"]
    assert [store.get_status(w) for w in ("g", "o")] == ["ENQUEUED", "ENQUEUED"]


def test_running_children_are_the_pending_and_enqueued_ones(store: Store) -> None:
    """running_children lists the PENDING and ENQUEUED workflows a parent started (its
    ``parent_id``), and no ended one or another parent's."""
    store.commit(
        [
            workflow("p"),
            workflow("c1", parent_id="p", at=1),
            workflow("c0", parent_id="p", executor_id="gone"),
            Enqueue(queued("c2", 2).row._replace(parent_id="p")),
            workflow("c3", parent_id="p", status="SUCCESS", at=3),
            workflow("c4", parent_id="p", status="CANCELLED", at=4),
            workflow("x", parent_id="other"),
        ]
    )
    assert sorted(store.running_children("p")) == ["c0", "c1", "c2"]
    assert store.running_children("c1") == []


# -- claim and fork --------------------------------------------------------------------------


def test_claim_takes_an_interrupted_workflow(store: Store) -> None:
    """claim returns the row of a PENDING workflow no live executor runs (to run it here), and
    leaves it PENDING; None for an unknown id."""
    store.commit([workflow("w", executor_id="gone", deadline=T + 60)])
    row = store.claim("w", HERE, T + 5)
    assert row is not None
    assert (row.workflow_id, row.status, row.deadline) == ("w", "PENDING", T + 60)
    assert store.get_status("w") == "PENDING"
    assert store.claim("unknown", HERE, T) is None
    if not store.single_process:  # (one process: the executor column is not read)
        assert row.executor_id == HERE and store.get_workflow("w") == row


def test_claim_leaves_a_workflow_a_live_executor_runs(store: Store, another: Store) -> None:
    """(Shared stores.) claim returns None for a PENDING workflow that another live executor
    runs, and changes nothing; its own executor may claim it."""
    store.commit([workflow("w")])
    assert another.claim("w", ANOTHER, T + 1) is None
    assert store.get_workflow("w") == workflow("w")
    assert store.claim("w", HERE, T + 2) is not None


def test_claim_reopens_an_error_only_when_asked(store: Store) -> None:
    """An ERROR workflow is claimed only with ``reopen``: it is PENDING again, without output,
    error, error step, end time or deadline; the checkpoint of the step whose error ended it
    and the end markers its end wrote are deleted (the body's own close stays)."""
    _history(store)  # ended with an error at step 5; "out" closed by the body at 4
    assert store.claim("w", HERE, T + 10) is None
    assert store.get_status("w") == "ERROR"
    row = store.claim("w", HERE, T + 10, reopen=True)
    assert row is not None
    assert row == store.get_workflow("w")
    assert (row.status, row.output_json, row.output_pickle, row.error, row.error_pickle) == (
        "PENDING",
        None,
        None,
        None,
        None,
    )
    assert (row.ended_at, row.error_step, row.deadline, row.updated_at) == (
        None,
        None,
        None,
        T + 10,
    )
    assert [s.function_id for s in store.list_steps("w")] == [1, 3]
    assert items_of(store, "w", "out")[-1] == (1, None, None, True)
    assert [r[3] for r in items_of(store, "w", "log")] == [False, False, False]
    assert store.load_replay("w").streams == {
        "out": (2, True),
        "log": (3, False),
        "stdout": (3, False),
    }


def test_claim_reopens_a_cancelled_workflow_never_a_successful_one(store: Store) -> None:
    """A CANCELLED workflow is claimed only with ``reopen`` (then PENDING); a SUCCESS one never."""
    store.commit([workflow("c", deadline=T + 1), workflow("s")])
    store.commit([Finish("c", "CANCELLED", T + 1, markers=None)])
    store.commit([Finish("s", "SUCCESS", T + 1, output_json='"r"', markers=())])
    assert store.claim("c", HERE, T + 2) is None
    reopened = store.claim("c", HERE, T + 2, reopen=True)
    assert reopened is not None and reopened.status == "PENDING" and reopened.deadline is None
    assert store.claim("s", HERE, T + 2) is None
    assert store.claim("s", HERE, T + 2, reopen=True) is None
    assert store.get_status("s") == "SUCCESS"


def test_fork_copies_the_operations_before_from_step(store: Store) -> None:
    """A Fork creates ``new_id``: PENDING, with the source's name and inputs, run by
    ``executor_id``, created at ``now``, with the deadline given and no result; it holds the
    source's steps before ``from_step`` and the stream items their operations wrote (not printed
    lines, nor end markers the source's end wrote). The source is unchanged."""
    store.commit(
        [
            WorkflowRow("src", "pkg.fn", "PENDING", None, b"\x80in", created_at=T, updated_at=T,
                        executor_id="gone", parent_id="p"),
            step("src", 1, output_json='"a"'),
            item("src", "k", 0, fid=2),
            item("src", "k", 1, fid=3, attempt=1),
            step("src", 3),
            item("src", "k", 2, fid=4),
            step("src", 5),
            item("src", "stdout", 0, '"printed"'),
            Finish("src", "SUCCESS", T + 9, output_json='"r"',
                   markers=(end("src", "k", 3), end("src", "stdout", 1))),
        ]
    )  # fmt: skip
    before = (store.get_workflow("src"), store.list_steps("src"), store.load_replay("src"))
    store.commit([Fork("src", "copy", from_step=4, now=T + 20, executor_id=HERE, deadline=T + 60)])
    copy = store.get_workflow("copy")
    assert copy is not None
    assert copy[1:5] == ("pkg.fn", "PENDING", None, b"\x80in")
    assert (copy.created_at, copy.executor_id, copy.deadline) == (T + 20, HERE, T + 60)
    assert (copy.output_json, copy.error, copy.ended_at) == (None, None, None)
    assert store.list_steps("copy") == [step("copy", 1, output_json='"a"'), step("copy", 3)]
    assert items_of(store, "copy", "k") == [(0, '"v"', None, False), (1, '"v"', None, False)]
    assert items_of(store, "copy", "stdout") == []
    assert (store.get_workflow("src"), store.list_steps("src"), store.load_replay("src")) == before


# -- what commit leaves out (cancelled, taken over) ------------------------------------------


def test_commit_leaves_out_writes_to_a_cancelled_workflow(
    store: Store, request: pytest.FixtureRequest
) -> None:
    """Once a workflow is CANCELLED (by another process, or by a cancel of a workflow not
    running), a later batch of its runner's stream items and final status is left out — its
    streams end at the cancel's end markers and it stays CANCELLED — and commit returns its id,
    so that the runtime stops it."""
    if store.single_process:
        pytest.skip(
            "the rule of shared stores: a single-process store has one writer, whose executions "
            "write nothing for a workflow once its end is appended (Execution's state machine), "
            "so Store.commit returns an empty set there"
        )
    store.commit([workflow("w"), item("w", "k", 0)])
    store.commit([Finish("w", "CANCELLED", T + 5, markers=None)])
    runner = [
        item("w", "k", 1, '"late"', fid=3),
        Finish("w", "SUCCESS", T + 6, output_json='"r"', markers=(end("w", "k", 2),)),
    ]
    assert store.commit(runner) == {"w"}
    assert store.get_status("w") == "CANCELLED"
    assert items_of(store, "w", "k") == [(0, '"v"', None, False), (1, None, None, True)]


def test_a_final_status_is_not_overwritten(store: Store, request: pytest.FixtureRequest) -> None:
    """Only a PENDING or ENQUEUED workflow ends: a Finish of a workflow that has ended already
    (a cancel that raced its end) changes neither its status nor its result."""
    store.commit([workflow("w"), Finish("w", "SUCCESS", T + 1, output_json='"r"', markers=())])
    store.commit([Finish("w", "CANCELLED", T + 2, markers=None)])
    row = store.get_workflow("w")
    assert row is not None
    assert (row.status, row.output_json, row.ended_at) == ("SUCCESS", '"r"', T + 1)


def test_commit_leaves_out_writes_to_a_workflow_another_executor_took_over(store: Store) -> None:
    """(Shared stores: fencing.) Nothing this executor writes as the runner of a workflow that
    another executor now runs (it was judged dead and the workflow claimed) is written — steps,
    stream items, events, messages received, its end — and commit returns the workflow's id."""
    if store.single_process:
        pytest.skip("a single-process store has no other executor to take a workflow over")
    e = event_step_name("e")
    store.commit([workflow("w", executor_id=ANOTHER), item("w", "k", 0), message("m", "w")])
    runner: list[Op] = [
        step("w", 1),
        item("w", "k", 1, fid=2),
        SetEvent(step("w", 3, e), "e"),
        Consume("m", step("w", 4, "nbflow.recv")),
        Finish("w", "SUCCESS", T + 5, output_json='"r"', markers=(end("w", "k", 2),)),
    ]
    assert store.commit(runner) == {"w"}
    assert store.list_steps("w") == []
    assert items_of(store, "w", "k") == [(0, '"v"', None, False)]
    assert store.get_event("w", e) is None
    assert store.next_message("w", None) == message("m", "w")
    assert store.get_workflow("w") == workflow("w", executor_id=ANOTHER)


def test_a_row_that_exists_is_not_written_again(
    store: Store, request: pytest.FixtureRequest
) -> None:
    """An insert of a row whose key exists (a workflow id, a step's function id, a stream
    offset) keeps the first and writes the rest of the batch: a batch may be committed again
    after a lost connection, not knowing whether it went through."""
    if store.single_process:
        pytest.skip(
            "the rule of stores that run a batch again after a lost connection (PostgreSQL); a "
            "single-process store never does, and may refuse the batch instead (DuckDB raises)"
        )
    store.commit([workflow("w"), step("w", 1), item("w", "k", 0, '"first"')])
    store.commit(
        [
            workflow("w", name="again"),
            step("w", 1, "again"),
            item("w", "k", 0, '"again"'),
            item("w", "k", 1, '"new"'),
        ]
    )
    assert store.get_workflow("w") == workflow("w")
    assert store.list_steps("w") == [step("w", 1)]
    assert items_of(store, "w", "k") == [(0, '"first"', None, False), (1, '"new"', None, False)]


# -- close -----------------------------------------------------------------------------------

CALLS: dict[str, Callable[[Store], object]] = {
    "commit": lambda s: s.commit([workflow("late")]),
    "claim": lambda s: s.claim("w", HERE, T),
    "dequeue": lambda s: s.dequeue("q", HERE, [QUEUED], 1, QueueLimits(), T),
    "enqueue_once": lambda s: s.enqueue_once(queued("d", 0).row._replace(deduplication_id="d")),
    "append_record": lambda s: s.append_record(step("w", 1)),
    "get_workflow": lambda s: s.get_workflow("w"),
    "get_status": lambda s: s.get_status("w"),
    "load_replay": lambda s: s.load_replay("w"),
    "read_stream": lambda s: s.read_stream("w", "k", 0, 10),
    "next_message": lambda s: s.next_message("w", None),
    "list_events": lambda s: s.list_events("w"),
    "get_event": lambda s: s.get_event("w", event_step_name("e")),
    "running_children": lambda s: s.running_children("w"),
    "pending_workflows": lambda s: s.pending_workflows(),
    "list_workflows": lambda s: s.list_workflows(WorkflowQuery()),
    "step_stats": lambda s: s.step_stats(StepStatsQuery()),
    "get_step_output": lambda s: s.get_step_output("w", 1),
    "list_steps": lambda s: s.list_steps("w"),
    "list_streams": lambda s: s.list_streams("w"),
    "list_recorded": lambda s: s.list_recorded("w", None),
    "get_step_pickle": lambda s: s.get_step_pickle("w", 1),
}


@pytest.mark.parametrize("call", CALLS)
def test_a_closed_store_refuses_every_call(
    store: Store, store_name: str, call: str, request: pytest.FixtureRequest
) -> None:
    """After close (which is safe to call twice), every call of the store raises
    RuntimeClosedError: nothing is read or written any more."""
    store.commit([workflow("w")])
    store.close()
    store.close()
    with pytest.raises(RuntimeClosedError):
        CALLS[call](store)


# -- values ----------------------------------------------------------------------------------

#: Text that nbflow's encoder must escape for a store: NUL, and lone surrogates.
NUL_TEXT = 'nul:\x00: ключ 🔑 "quoted" \\ back\n'
SURROGATE_TEXT = "lone:\ud800: and \udfff 🔑"
ANY_BYTES = bytes(range(256)) * 2  # a pickle may hold any byte, NUL included


def test_text_values_keep_escaped_nul_and_surrogates(store: Store) -> None:
    """Text a store is given — JSON of values holding NUL or lone surrogates (escaped by nbflow's
    encode), non-ASCII characters, error texts made storable — comes back exactly, in every
    text column of every table, in small batches and in bulk ones."""
    nul = encode({"v": NUL_TEXT}, what="a test")[0]
    surrogate = encode([SURROGATE_TEXT], what="a test")[0]
    assert nul is not None and surrogate is not None and "\x00" not in nul
    error = storable_text(f"ValueError: {NUL_TEXT}{SURROGATE_TEXT}")
    event = event_step_name("e")
    store.commit(
        [
            WorkflowRow(
                "w", "f", "PENDING", nul, None, created_at=T, updated_at=T, executor_id=HERE
            ),
            step("w", 1, output_json=nul),
            step("w", 2, output_json=None, error=error),
            SetEvent(step("w", 3, event, output_json=surrogate), "e"),
            item("w", "small", 0, nul),
            *(item("w", "bulk", i, surrogate if i % 2 else nul) for i in range(6)),
            message("m", "w", "t", surrogate),
        ]
    )
    store.commit([Finish("w", "ERROR", T + 1, output_json=None, error=error, markers=None)])
    row = store.get_workflow("w")
    assert row is not None and (row.inputs_json, row.error) == (nul, error)
    assert [(s.output_json, s.error) for s in store.list_steps("w")] == [
        (nul, None),
        (None, error),
        (surrogate, None),
    ]
    assert store.get_event("w", event) == (surrogate, None)
    assert items_of(store, "w", "small")[0] == (0, nul, None, False)
    assert [r[1] for r in items_of(store, "w", "bulk")][:6] == [nul, surrogate] * 3
    msg = store.next_message("w", "t")
    assert msg is not None and msg.value_json == surrogate
    assert decode(msg.value_json, None, what="a test") == [SURROGATE_TEXT]
    assert decode(items_of(store, "w", "small")[0][1], None, what="a test") == {"v": NUL_TEXT}


def test_bytes_values_keep_every_byte(store: Store) -> None:
    """Bytes (pickles) of any value, NUL included, come back exactly in every bytes column."""
    store.commit(
        [
            WorkflowRow("w", "f", "PENDING", None, ANY_BYTES, created_at=T, updated_at=T,
                        executor_id=HERE),
            step("w", 1, output_json=None, output_pickle=ANY_BYTES),
            step("w", 2, output_json=None, error="E: x", error_pickle=ANY_BYTES),
            item("w", "k", 0, pickle=ANY_BYTES),
            MessageRow("m", "w", None, None, ANY_BYTES, T),
        ]
    )  # fmt: skip
    store.commit([Finish("w", "ERROR", T + 1, output_pickle=ANY_BYTES, error_pickle=ANY_BYTES,
                         markers=())])  # fmt: skip
    row = store.get_workflow("w")
    assert row is not None
    assert (row.inputs_pickle, row.output_pickle, row.error_pickle) == (ANY_BYTES,) * 3
    steps = store.list_steps("w")
    assert (steps[0].output_pickle, steps[1].error_pickle) == (ANY_BYTES, ANY_BYTES)
    assert store.get_step_pickle("w", 1) == ANY_BYTES
    assert items_of(store, "w", "k") == [(0, None, ANY_BYTES, False)]
    msg = store.next_message("w", None)
    assert msg is not None and msg.value_pickle == ANY_BYTES


def test_large_values_round_trip(store: Store) -> None:
    """Values of several megabytes (a pickle, a JSON text) are stored and read back whole; the
    listings that leave values out (list_steps without outputs, list_recorded) do."""
    blob = bytes(range(256)) * (4 << 12)  # 4 MiB
    text = encode("ab€ключ🔑" * (1 << 18), what="a test")[0]  # about 5 MB of UTF-8
    assert text is not None
    store.commit(
        [
            workflow("w"),
            step("w", 1, output_json=None, output_pickle=blob),
            step("w", 2, output_json=text),
            item("w", "k", 0, pickle=blob),
            item("w", "k", 1, text),
        ]
    )
    assert [(s.output_json, s.output_pickle) for s in store.list_steps("w")] == [
        (None, blob),
        (text, None),
    ]
    assert items_of(store, "w", "k") == [(0, None, blob, False), (1, text, None, False)]
    assert store.get_step_pickle("w", 1) == blob
    assert [(s.output_json, s.output_pickle) for s in store.list_steps("w", outputs=False)] == [
        (None, None),
        (None, None),
    ]
    assert [h.has_pickle for h in store.list_recorded("w", None)] == [True, False]


def test_unicode_names_round_trip_and_match(store: Store) -> None:
    """Names — workflow ids and names, stream keys, event keys, topics, queue names — may be any
    Unicode text without NUL: they are stored as given and every lookup matches them exactly."""
    wid, name, key = "wörk 🔑 'q' \"d\"; --", "módulo.función", "ключ 🗝"
    topic, queue_name, event = "тема 📨", "очередь 🧵", event_step_name("事件 'x'")
    store.commit(
        [
            workflow(wid, name=name, at=1),
            workflow("upper", name=name.upper()),
            queued("job ✓", 0, queue=queue_name, name=name),
            item(wid, key, 0, '"ü"'),
            SetEvent(step(wid, 1, event, output_json='"e"'), "事件 'x'"),
            message("msg ✉", wid, topic, '"m"'),
        ]
    )
    assert store.get_workflow(wid) == workflow(wid, name=name, at=1)
    assert ids(listed(store, None, name, 10)) == [wid, "job ✓"]
    assert items_of(store, wid, key) == [(0, '"ü"', None, False)]
    assert [tuple(s)[:3] for s in store.list_streams(wid)] == [(key, 1, False)]
    assert store.get_event(wid, event) == ('"e"', None)
    assert [e[0] for e in store.list_events(wid)] == [event]
    assert store.next_message(wid, topic) == message("msg ✉", wid, topic, '"m"')
    assert ids(store.dequeue(queue_name, HERE, [name], 10, QueueLimits(1), T).rows) == ["job ✓"]


# -- the step cache --------------------------------------------------------------------------------


def kept(
    entry: str, *, name: str = "s", code: str = "c1", at: float = 1.0, value: str = "1"
) -> CacheRow:
    """A step cache row."""
    return CacheRow(entry, name, code, f"args-{entry}", value, None, "wf", at, '{"reason": "r"}')


def test_cache_rows_read_back_by_entry_and_by_step(store: Store) -> None:
    store.commit(
        [kept("e1"), kept("e2", at=2.0), kept("e3", code="c2", at=3.0), kept("x", name="t")]
    )
    assert sorted(store.find_cached(["e1", "e3", "nope"])) == ["e1", "e3"]
    assert store.find_cached(["e1"])["e1"] == kept("e1")
    assert store.find_cached([]) == {}
    assert sorted(r.entry for r in store.cached_rows("s", "c1", 10) or []) == ["e1", "e2"]
    assert store.cached_rows("s", "c1", 1) is None  # more than the limit: each call looks itself up
    last = store.last_cached("s")
    assert last is not None and last.entry == "e3"
    same_args = store.last_cached("s", "args-e1")  # the row with these arguments first
    assert same_args is not None and same_args.entry == "e1"
    assert store.last_cached("nobody") is None


def test_a_cache_row_with_an_entry_kept_replaces_it(store: Store) -> None:
    """A refreshed or expired entry is kept again: the new row replaces the old one whole (a
    value once pickled, now JSON, leaves no pickle behind)."""
    store.commit([kept("e1")._replace(output_json=None, output_pickle=b"old")])
    store.commit([kept("e1", value='"new"', at=5.0), kept("e1", value='"newer"', at=6.0)])
    row = store.find_cached(["e1"])["e1"]
    assert (row.output_json, row.output_pickle, row.created_at) == ('"newer"', None, 6.0)


def test_clear_cache_by_step_and_age(store: Store) -> None:
    store.commit([kept("e1", at=1.0), kept("e2", at=5.0), kept("x", name="t", at=1.0)])
    assert store.clear_cache("s", 2.0) == 1
    assert store.clear_cache("nobody", None) == 0
    assert store.clear_cache(None, None) == 2
    assert store.find_cached(["e1", "e2", "x"]) == {}


def test_a_checkpoint_keeps_its_code_arguments_and_source(store: Store) -> None:
    """A step's fingerprint, argument digest and where its result came from read back, with
    the outputs and without them, and a replay has the fingerprint; NULLs too (a bulk insert
    may leave out a column NULL in every row)."""
    rows = [
        step("w", n)._replace(
            code=f"code{n}", args_hash=f"#i{n}", cached_from="old" if n % 2 else None
        )
        for n in range(1, 8)
    ]
    store.commit([workflow("w"), *rows, step("w", 8)])
    assert store.list_steps("w") == [*rows, step("w", 8)]
    heads = store.list_steps("w", outputs=False)
    assert [(r.code, r.args_hash, r.cached_from) for r in heads] == [
        *((r.code, r.args_hash, r.cached_from) for r in rows),
        (None, None, None),
    ]
    assert [r.code for r in store.load_replay("w").records] == [*(r.code for r in rows), None]


def test_a_bulk_batch_keeps_every_value_exactly(store: Store) -> None:
    """A batch of many rows of every kind (a store may insert them by another path than a few:
    DuckDB, from 200 rows, as one JSON text) keeps every value exactly: doubles to the last bit
    (-0.0, the smallest and largest; an infinite deadline, which JSON cannot hold), ints to 32 bits, texts with quotes,
    backslashes, escaped NUL, line separators and astral characters, pickles mixed with JSON in
    one column, NULLs where a column holds values in other rows."""
    doubles = [T + 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, 0.1, T, None] * 40

    texts = ['"q" \\ b', "é\u2028\u2029", "\U0001f600 astral", "\\u0000 escaped", "x" * 5000]
    rows = [
        workflow(f"w{i}", deadline=d, priority=2**31 - 1 - i if i % 2 else None)
        for i, d in enumerate(doubles)
    ]
    infinite = [workflow(f"inf{i}", deadline=float("inf") if i == 7 else T) for i in range(300)]
    store.commit(rows)
    store.commit(infinite)  # (DuckDB: JSON has no inf: by lists)
    assert [store.get_workflow(f"w{i}") for i in range(len(doubles))] == rows
    assert [store.get_workflow(f"inf{i}") for i in range(300)] == infinite
    steps = [
        step(
            "w0",
            i + 1,
            output_json=None if i % 3 == 0 else f'"{i}"',
            output_pickle=b"\x80\x00" + bytes([i % 256]) if i % 3 == 0 else None,
        )._replace(
            started_at=d if d is not None and d == d and d < 1e300 else T,
            args_text=texts[i % len(texts)],
            code=texts[(i + 1) % len(texts)],
        )
        for i, d in enumerate(doubles)
    ]
    store.commit(steps)
    assert store.list_steps("w0") == steps
    items = [
        item("w1", "k", i, None if i % 2 else f'"{t}"', pickle=b"\x00" * i if i % 2 else None)
        for i, t in enumerate(texts * 50)
    ]
    store.commit(items)
    assert items_of(store, "w1", "k") == [
        (r.offset, r.value_json, r.value_pickle, r.is_end) for r in items
    ]


@pytest.mark.parametrize("count", [50, 250])
def test_a_column_of_one_value_in_a_batch_is_kept_in_every_row(store: Store, count: int) -> None:
    """A batch whose rows share a value (one workflow's steps, one stream's items: DuckDB sends
    such a column once) keeps each row's own value: a column equal at both ends but not in the
    middle is not taken for one value; in lists (50 rows) and in one JSON text (250)."""
    store.commit([workflow("w")])
    names = ["same"] + ["other"] * (count - 2) + ["same"]
    steps = [
        step("w", i + 1, names[i], attempts=1 if 0 < i < count - 1 else 2) for i in range(count)
    ]
    items = [item("w", "k", i, f'"{name}"', fid=3) for i, name in enumerate(names)]
    store.commit([*steps, *items])
    assert store.list_steps("w") == steps
    assert items_of(store, "w", "k") == [
        (r.offset, r.value_json, r.value_pickle, r.is_end) for r in items
    ]
    store.commit([workflow("w2")])
    store.commit([step("w2", i + 1) for i in range(count)])  # most columns: one value
    assert [s.function_id for s in store.list_steps("w2")] == list(range(1, count + 1))
