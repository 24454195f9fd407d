"""A child-process app for the crash test of compaction (tests/crash/test_compaction_crash.py).

Usage::

    python tests/apps/compactapp.py fill DB KEEP DROP     # make a file (KEEP + DROP workflows)
    python tests/apps/compactapp.py prune DB              # prune DROP ones, then close (compacts)

``fill`` runs KEEP workflows ``compactapp.keep`` and DROP workflows ``compactapp.drop``, each with
a step returning :data:`SIZE` random bytes and a stream of three items, then makes the DROP ones
look 40 days old. ``prune`` prints ``ready``, waits for a line on stdin, opens the file, prunes
every workflow older than a day, prints ``pruned N``, closes the runtime (which compacts the file)
and prints a JSON summary: the file's size before and after.
"""

from __future__ import annotations

import json
import os
import sys

import nbflow
from nbflow.store._duckcompact import file_size

SIZE = 200_000


@nbflow.step(name="compactapp.payload")
def payload(i: int) -> bytes:
    return os.urandom(SIZE)


@nbflow.workflow(name="compactapp.keep")
def keep(i: int) -> int:
    payload(i)
    for j in range(3):
        nbflow.write_stream("items", [i, j])
    return i


@nbflow.workflow(name="compactapp.drop")
def drop(i: int) -> int:
    payload(i)
    nbflow.write_stream("items", i)
    return -i


def fill(path: str, kept: int, dropped: int) -> None:
    with nbflow.Runtime(path) as rt:
        for i in range(kept):
            with nbflow.set_workflow_id(f"keep-{i}"):
                rt.start(keep, i).result()
        for i in range(dropped):
            rt.start(drop, i).result()
        rt.flush()
        rt.store.sql(  # type: ignore[attr-defined]
            "UPDATE workflows SET created_at = created_at - 40 * 86400 "
            "WHERE name = 'compactapp.drop'"
        )


def prune(path: str) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    before = file_size(path)
    rt = nbflow.Runtime(path)
    pruned = rt.prune(older_than=86400)
    print(f"pruned {pruned}", flush=True)
    rt.close()
    print(json.dumps({"before": before, "after": file_size(path), "pruned": pruned}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        prune(sys.argv[2])
