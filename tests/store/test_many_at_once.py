"""What a store does for many workflows at once, on every store: the ends of many workflows in
one batch (one statement on DuckDB), the claim of many interrupted workflows in one transaction
(``claim_many``) and their replays in one query (``load_replays``). The fixtures and rows are
those of :mod:`tests.store.test_conformance`."""

from __future__ import annotations

from nbflow.store import Store
from nbflow.store._ops import Finish
from tests.store import test_conformance as conformance
from tests.store.test_conformance import ANOTHER, HERE, T, end, item, items_of, step, workflow

# The fixtures of the conformance tests: each store in turn, and another process's.
store_name = conformance.store_name
location = conformance.location
heard = conformance.heard
store = conformance.store
another = conformance.another


def test_many_ends_in_one_batch(store: Store) -> None:
    """The runners' own ends of several workflows in one batch each set what they are given
    (output, error and its pickle and step, end markers); a second end of one of them in the
    batch, and an end of a workflow that ended before, change nothing; a workflow's later writes
    in the batch are kept."""
    store.commit([workflow(w) for w in ("a", "b", "c", "d")] + [item("b", "k", 0)])
    store.commit([Finish("d", "CANCELLED", T + 1, markers=None)])
    store.commit(
        [
            Finish("a", "SUCCESS", T + 5, output_json='"done"', markers=()),
            Finish("b", "ERROR", T + 6, None, None, "E: x", b"\x80e", 2, (end("b", "k", 1),)),
            Finish("d", "SUCCESS", T + 7, output_json="1", markers=()),
            Finish("a", "CANCELLED", T + 8, markers=()),
            step("c", 1),
            Finish("c", "SUCCESS", T + 9, output_pickle=b"\x80p", markers=()),
        ]
    )
    a, b, c, d = (store.get_workflow(w) for w in ("a", "b", "c", "d"))
    assert a == workflow("a")._replace(
        status="SUCCESS", output_json='"done"', ended_at=T + 5, updated_at=T + 5
    )
    assert b == workflow("b")._replace(
        status="ERROR",
        error="E: x",
        error_pickle=b"\x80e",
        error_step=2,
        ended_at=T + 6,
        updated_at=T + 6,
    )
    assert items_of(store, "b", "k") == [(0, '"v"', None, False), (1, None, None, True)]
    assert c == workflow("c")._replace(
        status="SUCCESS", output_pickle=b"\x80p", ended_at=T + 9, updated_at=T + 9
    )
    assert [s.function_id for s in store.list_steps("c")] == [1]
    assert d is not None and d.status == "CANCELLED"


def test_claim_many_takes_the_interrupted_ones_in_one_go(store: Store) -> None:
    """claim_many takes the PENDING workflows among those named (here, or of no executor),
    counts each recovery, makes this executor their runner, and returns their rows; it leaves
    ended and unknown ones alone."""
    store.commit(
        [
            workflow("p1", executor_id=None),
            workflow("p2", recovery_attempts=2),
            workflow("done", status="SUCCESS"),
            workflow("queued", status="ENQUEUED", executor_id=None),
        ]
    )
    rows = store.claim_many(["p1", "p2", "done", "queued", "unknown", "p1"], HERE, T + 3)
    assert sorted((r.workflow_id, r.recovery_attempts, r.executor_id) for r in rows) == [
        ("p1", 1, HERE),
        ("p2", 3, HERE),
    ]
    assert all(r.status == "PENDING" and r.updated_at == T + 3 for r in rows)
    assert store.get_workflow("done") == workflow("done", status="SUCCESS")
    assert store.claim_many([], HERE, T) == []


def test_claim_many_leaves_what_a_live_process_runs(store: Store, another: Store) -> None:
    """Shared stores: a workflow whose runner is a live process is not taken by claim_many;
    one of this executor's own is (the caller knows it does not run it)."""
    store.commit([workflow("theirs", executor_id=ANOTHER), workflow("mine")])
    rows = store.claim_many(["theirs", "mine"], HERE, T + 1)
    assert [r.workflow_id for r in rows] == ["mine"]
    theirs = store.get_workflow("theirs")
    assert theirs is not None and theirs.executor_id == ANOTHER and not theirs.recovery_attempts


def test_load_replays_is_load_replay_of_each(store: Store) -> None:
    """load_replays gives each workflow named the replay load_replay gives it (an empty one for
    a workflow with nothing recorded)."""
    store.commit(
        [
            workflow("w"),
            workflow("v"),
            step("w", 1),
            step("w", 3, output_json=None, error="E: x"),
            item("w", "k", 0, fid=2),
            end("w", "k", 1, fid=4),
            item("v", "out", 0, attempt=1, fid=1),
            item("v", "log", 0),
        ]
    )
    replays = store.load_replays(["w", "v", "none"])
    assert set(replays) == {"w", "v", "none"}
    for workflow_id, replay in replays.items():
        assert tuple(replay) == tuple(store.load_replay(workflow_id)), workflow_id
    assert replays["w"].records and replays["w"].streams == {"k": (2, True)}
    assert store.load_replays([]) == {}
