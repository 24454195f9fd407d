"""Debounce calls in child processes (see ``tests/workflow/test_debounce.py``).

``python debounceapp.py DATABASE PERIOD burst``: three calls for the key ``slider`` (arguments
0, 1, 2), then one JSON line with the ids of the workflow and of its debouncer, then it waits to
be killed.

``python debounceapp.py DATABASE PERIOD call:VALUE``: once told to (a line on stdin), one call
for ``slider`` with VALUE, then the same JSON line, and it ends (so several processes call at
the same moment).
"""

from __future__ import annotations

import json
import os
import sys
import time

import nbflow


@nbflow.workflow(name="tests.apps.debounceapp.analyse")
def analyse(threshold: int) -> dict[str, int]:
    """The analysis a slider re-runs: its argument, and the process that ran it."""
    return {"threshold": threshold, "pid": os.getpid()}


def main() -> None:
    database, period, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    debouncer = nbflow.Debouncer(analyse)
    nbflow.configure(database)  # closed at exit
    if mode == "burst":
        handles = [debouncer.debounce("slider", period, i) for i in range(3)]
    else:
        sys.stdin.readline()
        handles = [debouncer.debounce("slider", period, int(mode.split(":")[1]))]
    ids = {"target": handles[0].workflow_id, "debouncer": handles[0].debouncer_id}
    print(json.dumps(ids), flush=True)
    if mode == "burst":
        time.sleep(600)  # killed here, before the period is over


if __name__ == "__main__":
    main()
