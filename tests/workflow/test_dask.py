"""nbflow.map on a real Dask cluster: items run in worker processes, checkpoints are kept here.

One ``distributed.LocalCluster`` of two single-threaded worker processes, on 127.0.0.1 only and
without a dashboard, serves the whole module and is closed at its end. The step functions live
in tests/dask_items.py, which the workers import by name. Runs on both stores.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import dask_items
from tests.support.helpers import nbflow_threads, wait_until

distributed = pytest.importorskip(
    "distributed", reason="Dask's distributed is not installed (pip install -e '.[dask]')"
)
psutil = pytest.importorskip("psutil", reason="psutil (a dependency of distributed) is missing")

pytestmark = pytest.mark.contract

_client: list[Any] = []  # the module's Dask client, for the workflow bodies


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes; gone, with all their children, after the module."""
    with pytest.MonkeyPatch.context() as patch:  # (the spawnable_main fixture, for the module)
        patch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
        local = _start_cluster()
    processes: list[Any] = []
    try:
        workers = [psutil.Process(w.process.process.pid) for w in local.workers.values()]
        processes = workers + [c for w in workers for c in w.children(recursive=True)]
        yield local
    finally:
        local.close()
        wait_until(lambda: not any(p.is_running() for p in processes), timeout=30)


def _start_cluster() -> Any:
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,  # no dashboard: the scheduler's HTTP server keeps only its
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # plain routes, on a free port
    )


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    """A Dask client of the module's cluster (what the workflow bodies submit to)."""
    with distributed.Client(cluster) as dask_client:
        _client.append(dask_client)
        try:
            yield dask_client
        finally:
            _client.clear()


@nbflow.workflow(name="tests.dask.crunch_all")
def crunch_all(n: int, log: str, gate: str | None = None, hold: int | None = None) -> list[Any]:
    items = [{"i": i, "log": log, "gate": gate, "hold": hold} for i in range(n)]
    executor = _client[0].get_executor()
    return nbflow.map(dask_items.crunch, items, concurrency=2, executor=executor)


@nbflow.workflow(name="tests.dask.remote_writer")
def remote_writer() -> list[int]:
    return nbflow.map(dask_items.writes_a_stream, [1], executor=_client[0].get_executor())


@nbflow.workflow(name="tests.dask.retry_all")
def retry_all(n: int, marker: str, pure: bool) -> list[int]:
    executor = _client[0].get_executor(pure=pure)
    return nbflow.map(
        dask_items.flaky, [{"i": i, "marker": marker} for i in range(n)], executor=executor
    )


def item_steps(workflow_id: str) -> list[nbflow.StepInfo]:
    return [s for s in nbflow.list_steps(workflow_id) if s.name == "tests.dask.crunch"]


def logged(log: Path) -> list[int]:
    """The items that started, in the order they appended to ``log``."""
    if not log.exists():
        return []
    return [int(line.split()[0]) for line in log.read_text().splitlines()]


def idle(client: Any) -> bool:
    """No task processing on the scheduler, and none still executing in a worker."""
    if any(client.processing().values()):
        return False
    busy = client.run(lambda dask_worker: len(dask_worker.state.executing))
    return not any(busy.values())


def test_the_cluster_listens_on_localhost_only_and_serves_no_dashboard(
    cluster: Any, client: Any
) -> None:
    info = client.scheduler_info()
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert all(address.startswith("tcp://127.0.0.1:") for address in info["workers"])
    for worker in cluster.workers.values():  # every socket a worker process listens on
        process = psutil.Process(worker.process.process.pid)
        sockets = getattr(process, "net_connections", None) or process.connections  # psutil < 6
        listening = [c.laddr for c in sockets("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(host == "127.0.0.1" for host, _ in listening), listening
    port = info["services"]["dashboard"]  # the scheduler's HTTP server (health, metrics)
    assert port != 8787
    with pytest.raises(urllib.error.HTTPError) as no_page:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10)
    assert no_page.value.code == 404  # no dashboard behind it


def test_map_on_dask_runs_items_in_worker_processes_and_checkpoints_them_here(
    rt: nbflow.Runtime, client: Any, tmp_path: Path
) -> None:
    log = tmp_path / "items.log"
    handle = nbflow.start(crunch_all, 20, str(log))
    results = handle.result(timeout=120)
    assert [r["i"] for r in results] == list(range(20))  # in input order
    assert [r["value"] for r in results] == [dask_items.expected(i) for i in range(20)]
    worker_pids = set(client.run(os.getpid).values())
    assert {r["pid"] for r in results} <= worker_pids
    assert os.getpid() not in {r["pid"] for r in results}  # none ran in the test's process
    steps = item_steps(handle.workflow_id)
    assert len(steps) == 20 and all(s.status == "SUCCESS" for s in steps)
    assert sorted(logged(log)) == list(range(20))  # each item ran once
    progress = list(nbflow.read_stream(handle.workflow_id, "progress"))
    assert progress[0]["done"] == 0 and progress[-1]["done"] == progress[-1]["total"] == 20


def test_a_recovered_map_on_dask_runs_only_the_items_without_a_checkpoint(
    rt: nbflow.Runtime, database: str, client: Any, tmp_path: Path
) -> None:
    log, gate = tmp_path / "items.log", tmp_path / "gate"
    handle = nbflow.start(crunch_all, 20, str(log), str(gate), 5)  # item 5 waits for the gate
    wait_until(lambda: len(item_steps(handle.workflow_id)) >= 6, timeout=60)
    rt.close(timeout=0)  # a crash, as far as the workflow can tell: it stays PENDING
    gate.touch()  # item 5 ends after the close: its checkpoint is refused
    wait_until(lambda: not [t for t in nbflow_threads() if t.name.startswith("nbflow-workflow")])
    wait_until(lambda: idle(client), timeout=30)  # nothing of the first run still to start
    first_run = logged(log)
    assert 5 in first_run
    with nbflow.configure(database) as again:
        checkpointed = {s.function_id for s in item_steps(handle.workflow_id)}
        assert 6 <= len(checkpointed) < 20
        [resumed] = again.recover()
        results = resumed.result(timeout=120)
        assert [r["value"] for r in results] == [dask_items.expected(i) for i in range(20)]
        steps = item_steps(handle.workflow_id)
        assert len(steps) == 20
        first_id = min(s.function_id for s in steps)
        without_checkpoint = {s.function_id - first_id for s in steps} - {
            function_id - first_id for function_id in checkpointed
        }
        ran_again = logged(log)[len(first_run) :]
        assert sorted(ran_again) == sorted(without_checkpoint)  # only those, each once
        assert 5 in ran_again


def test_a_stream_write_on_a_dask_worker_is_a_clear_error(rt: nbflow.Runtime, client: Any) -> None:
    with pytest.raises(nbflow.NotInWorkflowError, match="another process"):
        nbflow.start(remote_writer).result(timeout=120)


def attempts(marker: Path, n: int) -> list[int]:
    """How many times each of items 0..n-1 of :func:`tests.apps.dask_items.flaky` ran."""
    return [len(Path(f"{marker}.{i}").read_text().splitlines()) for i in range(n)]


def test_an_item_that_fails_on_a_dask_worker_is_retried_with_impure_tasks(
    rt: nbflow.Runtime, client: Any, tmp_path: Path
) -> None:
    handle = nbflow.start(retry_all, 3, str(tmp_path / "attempts"), False)
    assert handle.result(timeout=120) == [0, 1, 2]
    assert attempts(tmp_path / "attempts", 3) == [2, 2, 2]  # each failed once, then succeeded
    steps = [s for s in nbflow.list_steps(handle.workflow_id) if s.name == "tests.dask.flaky"]
    assert len(steps) == 3 and all(s.status == "SUCCESS" for s in steps)


def test_an_item_that_fails_on_a_dask_worker_is_retried_with_the_default_executor(
    rt: nbflow.Runtime, client: Any, tmp_path: Path
) -> None:
    handle = nbflow.start(retry_all, 3, str(tmp_path / "attempts"), True)
    assert handle.result(timeout=120) == [0, 1, 2]  # each retry is a Dask task of its own
    assert attempts(tmp_path / "attempts", 3) == [2, 2, 2]
