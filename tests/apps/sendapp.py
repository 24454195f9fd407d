"""``python sendapp.py DATABASE WORKFLOW_ID KEY MESSAGE``: send MESSAGE to the workflow with the
idempotency key KEY, once told to (a line on stdin), so that several of these processes send
at the same moment (see ``tests/workflow/test_sends.py``)."""

from __future__ import annotations

import sys

import nbflow


def main() -> None:
    database, workflow_id, key, message = sys.argv[1:5]
    with nbflow.Runtime(database) as rt:
        sys.stdin.readline()
        rt.send(workflow_id, message, idempotency_key=key)
    print("sent", flush=True)


if __name__ == "__main__":
    main()
