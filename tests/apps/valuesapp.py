"""A child-process app for the crash test of values stored as Arrow (tests/crash/test_values_crash.py).

Usage::

    python tests/apps/valuesapp.py DB WORKFLOW_ID ROWS FOLDER (run|recover)

``run`` starts the workflow ``valuesapp.pipeline`` with the id WORKFLOW_ID: its first step makes a
DataFrame of ROWS rows (:func:`frame`: a time zone, a categorical, nullable ints and strings; past
about 700,000 rows it is over 8 MB encoded) and appends ``made pid=<pid>`` to ``FOLDER/made``; its
second step waits until everything is durable, writes ``FOLDER/durable`` and, unless
``FOLDER/release`` exists, waits to be killed. ``recover`` resumes the interrupted workflow and
waits for its result. A process prints ``ready``, waits for a line on stdin, runs, prints a JSON
summary and exits.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

if __name__ == "__main__":  # run as a script: run the module tests.apps.valuesapp
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.apps import valuesapp

    sys.exit(valuesapp.main())

import numpy as np
import pandas as pd

import nbflow


def frame(rows: int) -> pd.DataFrame:
    """The same frame in every process, with the dtypes the issue names."""
    rng = np.random.default_rng(7)
    counts = pd.array(rng.integers(0, 100, rows), dtype="Int64")
    counts[::7] = pd.NA
    return pd.DataFrame(
        {
            "when": pd.date_range("2024-03-31", periods=rows, freq="s", tz="Europe/Paris"),
            "kind": pd.Categorical(rng.choice(["a", "b", "c"], rows)),
            "count": counts,
            "label": pd.array(np.where(rng.random(rows) < 0.1, None, "x"), dtype="string"),
            "score": rng.random(rows),
        },
        index=pd.Index(np.arange(rows) * 2, name="id"),
    )


def _folder() -> Path:
    return Path(os.environ["VALUESAPP_FOLDER"])


@nbflow.step(name="valuesapp.make")
def make(rows: int) -> pd.DataFrame:
    with open(_folder() / "made", "a") as log:
        log.write(f"made pid={os.getpid()}\n")
    return frame(rows)


@nbflow.step(name="valuesapp.hold")
def hold() -> None:
    nbflow.runtime().flush()  # the frame's checkpoint is durable before the test kills us
    (_folder() / "durable").write_text("yes")
    if not (_folder() / "release").exists():
        threading.Event().wait()


@nbflow.workflow(name="valuesapp.pipeline")
def pipeline(rows: int) -> pd.DataFrame:
    made = make(rows)
    hold()
    return made


def main() -> int:
    database, workflow_id, rows, folder, mode = sys.argv[1:6]
    os.environ["VALUESAPP_FOLDER"] = folder
    print("ready", flush=True)
    sys.stdin.readline()
    rt = nbflow.configure(database)
    if mode == "run":
        with nbflow.set_workflow_id(workflow_id):
            handle = nbflow.start(pipeline, int(rows))
    else:
        [handle] = [h for h in nbflow.recover() if h.workflow_id == workflow_id]
    result = handle.result(timeout=120)
    rt.close()
    print(json.dumps({"pid": os.getpid(), "rows": len(result)}), flush=True)
    return 0
