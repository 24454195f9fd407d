"""A debounce burst in a child process that is killed before its period is over (see
``tests/workflow/test_debounce.py``).

``python debounceapp.py DATABASE PERIOD``: three calls for the key ``slider`` (arguments 0, 1,
2), then one JSON line with the ids of the workflow and of its debouncer, then it waits to be
killed.
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
    database, period = sys.argv[1], float(sys.argv[2])
    nbflow.configure(database)
    debouncer = nbflow.Debouncer(analyse)
    handles = [debouncer.debounce("slider", period, i) for i in range(3)]
    ids = {"target": handles[0].workflow_id, "debouncer": handles[0].debouncer_id}
    print(json.dumps(ids), flush=True)
    time.sleep(600)  # killed here, before the period is over


if __name__ == "__main__":
    main()
