"""The command line against a database shared with a running process (PostgreSQL): send, show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import nbflow
from tests.support.processes import ROOT

pytestmark = pytest.mark.postgres


def nbflow_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "nbflow", "--db", url, *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip


@nbflow.workflow(name="tests.cli_shared.waiter")
def waiter() -> Any:
    nbflow.set_event("state", "waiting")
    got = nbflow.recv(timeout=30)
    nbflow.set_event("state", {"got": got})
    return got


def test_send_and_show_from_another_process(pg_url: str) -> None:
    with nbflow.configure(pg_url):
        handle = nbflow.start(waiter)
        assert nbflow.get_event(handle.workflow_id, "state", timeout=10) == "waiting"
        sent = nbflow_cli(pg_url, "send", handle.workflow_id, '{"n": 1}')
        assert sent.returncode == 0, sent.stderr
        assert handle.result(timeout=10) == {"n": 1}
        shown = nbflow_cli(pg_url, "show", handle.workflow_id, "--json")
        assert shown.returncode == 0, shown.stderr
        fields = json.loads(shown.stdout)
        assert fields["events"] == {"state": {"got": {"n": 1}}}
        assert fields["queue"] is None and fields["deadline"] is None
        missing = nbflow_cli(pg_url, "send", "nobody", "hi")
        assert missing.returncode == 1 and "nobody" in missing.stderr


def test_worker_refuses_an_undeclared_queue(pg_url: str) -> None:
    done = nbflow_cli(pg_url, "worker", "--queue", "nowhere", "--import", "tests.apps.queueapp")
    assert done.returncode == 1
    assert "nowhere" in done.stderr and "--import" in done.stderr
    bad = nbflow_cli(pg_url, "worker", "--queue", "q", "--import", "no_such_module_here")
    assert bad.returncode == 1 and "no_such_module_here" in bad.stderr
