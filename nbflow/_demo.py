"""The demo pipeline behind ``nbflow demo``: one checkpointed step per item, a results stream.

The workflow's inputs are deterministic (the number of items and the delay), so a resumed run
replays the recorded steps and runs only the rest. :data:`ran` counts the step bodies that really
ran in this process, which is how the demo proves that replayed steps did not run again.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import nbflow

__all__ = ["NAME", "STEP_NAME", "crash_after", "pipeline", "process", "ran"]

#: The registered name of the demo workflow.
NAME = "nbflow.demo"
#: The registered name of its step.
STEP_NAME = "nbflow.demo.process"

#: The items whose step body ran in this process (not replayed from a checkpoint), in order.
ran: list[int] = []
#: Kill this process with SIGKILL once this many step bodies ran in it (None: never). Not an input
#: of the workflow, so a resumed run does not inherit it.
crash_after: int | None = None


@nbflow.step(name=STEP_NAME)
def process(item: int, delay: float) -> dict[str, Any]:
    """Process one item: wait ``delay`` seconds and return a small record of the work.

    Args:
        item: The item's number.
        delay: Seconds of pretend work.

    Returns:
        ``{"item", "square", "pid"}``; ``pid`` is the process that ran the step.
    """
    time.sleep(delay)
    ran.append(item)
    return {"item": item, "square": item * item, "pid": os.getpid()}


@nbflow.workflow(name=NAME)
def pipeline(steps: int, delay: float) -> dict[str, Any]:
    """Process ``steps`` items, writing each result to ``"results"`` and progress to ``"progress"``.

    Args:
        steps: How many items to process.
        delay: Seconds each step takes.

    Returns:
        ``{"items": steps}``.
    """
    for i in range(steps):
        result = process(i, delay)
        nbflow.write_stream("results", result)
        nbflow.progress(i + 1, steps, message=f"item {i + 1}")  # (counted from 1, as the bar)
        if crash_after is not None and len(ran) >= crash_after:
            _crash()
    nbflow.close_stream("results")
    return {"items": steps}


def _crash() -> None:
    """Make every checkpoint durable, then kill this process as hard as a power cut would."""
    nbflow.runtime().flush()
    print(
        f"\ncrash: {len(ran)} step(s) ran and their checkpoints are durable; killing this "
        "process with SIGKILL. Run `nbflow demo` again to resume.",
        flush=True,
    )
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
