"""A workflow whose every run kills its own process (a poison input), for the recovery-limit tests.

Usage: ``python poisonapp.py DATABASE MODE WORKFLOW_ID LOG``, where MODE is

- ``start``: start :func:`poison` with the id WORKFLOW_ID (its body kills this process);
- ``recover``: call ``nbflow.recover()`` until it resumes WORKFLOW_ID (its body kills this
  process) or names it as skipped; then print ``{"skipped": {id: reason}}`` as the last line.

Each start of the body appends ``start <pid>`` to LOG. While the file ``LOG.fixed`` exists (the
cause was fixed), the body returns ``"done"`` instead of killing its process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import nbflow

#: The limit of :func:`poison`: two recoveries, so its body starts at most three times.
LIMIT = 2


@nbflow.step(name="tests.apps.poisonapp.crash")
def crash(log: str) -> str:
    """Kill this process, unless the cause was fixed (the run's row is durable by now: a step
    runs only after it is)."""
    if Path(log + ".fixed").exists():
        return "done"
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


@nbflow.workflow(name="tests.apps.poisonapp.poison", max_recovery_attempts=LIMIT)
def poison(log: str) -> str:
    with open(log, "a", encoding="utf-8") as file:  # each start of the body, once
        file.write(f"start {os.getpid()}\n")
    return crash(log)


def _recover_until_taken(workflow_id: str, timeout: float = 60.0) -> dict[str, str]:
    """Recover until ``workflow_id`` is resumed here (its body kills this process) or skipped.

    On PostgreSQL the process killed last counts as alive until the server has ended its
    sessions: a recover before that leaves the workflow alone, so it is called again.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recovered = nbflow.recover()
        for handle in recovered:
            if handle.workflow_id == workflow_id:
                handle.result()  # its body kills this process
        skipped = {s.workflow_id: s.reason for s in recovered.skipped}
        if workflow_id in skipped:
            return skipped
        time.sleep(0.05)
    raise SystemExit(f"workflow {workflow_id} was never recovered")


def main() -> None:
    database, mode, workflow_id, log = sys.argv[1:5]
    with nbflow.configure(database):
        if mode == "start":
            with nbflow.set_workflow_id(workflow_id):
                nbflow.start(poison, log).result()
        elif mode == "recover":
            print(json.dumps({"skipped": _recover_until_taken(workflow_id)}), flush=True)
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
