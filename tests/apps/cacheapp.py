"""A child-process app for the crash tests of the step cache (tests/crash/test_cache_crash.py).

Usage::

    python tests/apps/cacheapp.py MODE DB COMPUTED USED [options]

It calls a cached step over ``--keys`` (``"0:12"``, ``"40:20"`` counting down, or parts joined by
commas), in one of the MODEs:

- ``plain``: one call after the other, outside any workflow;
- ``workflow``: the same calls in the body of the workflow ``cacheapp.calls``;
- ``map``: in the body of the workflow ``cacheapp.mapped``, one :func:`nbflow.map` on nbflow's
  threads (concurrency :data:`CONCURRENCY`) per ``--chunk`` keys;
- ``plain-map``: the same maps outside any workflow.

The step is ``cacheapp.square`` (``--step square``, the default: returns :func:`value`) or
``cacheapp.flaky`` (``--step flaky``: raises :class:`Flaky` the first time a key is computed, over
every process, then returns :func:`value`). Its body sleeps ``--work`` milliseconds and appends
``computed <step> <key> pid=<pid>`` to COMPUTED. Right after a call returns (for a map: after the
map returns, for each of its keys), the caller appends ``used <key> <value> pid=<pid>`` to USED
(``raised`` for a value when the step raised). Each line is one ``O_APPEND`` write: a SIGKILL does
not lose it.

Options: ``--twice`` calls each key twice at once (two threads; in a map, the key twice in a row);
``--repeat N`` calls each key N times, one after the other; ``--stop-after N --stop hold|kill``:
right after the N-th ``used`` line, wait to be killed (in the body, for a workflow) or SIGKILL
itself; ``--workflow-id``: the workflow's id (default: a new one); ``--recover``: first resume the
interrupted workflows (:func:`nbflow.recover`) and wait for them; ``--hold``: at the end, wait to be
killed.

A process prints ``ready``, waits for a line on stdin (so that its start-up is not part of a run,
and a DuckDB file is opened by one process at a time), runs, prints a JSON summary and exits. The
step and the workflows have names of their own, so they are found again however this module is run;
their code reads where to log from the environment, so its fingerprint is the same in every
process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: run the module tests.apps.cacheapp
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.apps import cacheapp

    sys.exit(cacheapp.main())

import nbflow

MODES = ("plain", "workflow", "map", "plain-map")
CONCURRENCY = 8
_COMPUTED = "CACHEAPP_COMPUTED"
_USED = "CACHEAPP_USED"
_WORK = "CACHEAPP_WORK_MS"


class Flaky(Exception):
    """What ``cacheapp.flaky`` raises the first time a key is computed."""


def value(key: int) -> int:
    """The result of a call with ``key``."""
    return key * key + 1


def parse_keys(spec: str) -> list[int]:
    """``"0:3,7:5"`` -> ``[0, 1, 2, 6, 5]``: ``a:b`` counts from a up to b, or down from a - 1."""
    keys: list[int] = []
    for part in spec.split(","):
        a, b = (int(x) for x in part.split(":"))
        keys += range(a, b) if a <= b else range(a - 1, b - 1, -1)
    return keys


def append_line(variable: str, text: str) -> None:
    """Append ``<text> pid=<pid>`` to the file the environment variable names (one write)."""
    fd = os.open(os.environ[variable], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text} pid={os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _computed_before(step: str, key: int) -> int:
    try:
        with open(os.environ[_COMPUTED]) as log:
            return sum(1 for line in log if line.startswith(f"computed {step} {key} "))
    except FileNotFoundError:
        return 0


def _work() -> None:
    time.sleep(float(os.environ.get(_WORK, "0")) / 1000)  # simulated work


@nbflow.step(name="cacheapp.square", cache=True)
def square(key: int) -> int:
    """A cached step: some work, a line in COMPUTED."""
    _work()
    append_line(_COMPUTED, f"computed square {key}")
    return value(key)


@nbflow.step(name="cacheapp.flaky", cache=True)
def flaky(key: int) -> int:
    """A cached step that raises the first time ``key`` is computed (over every process)."""
    first = _computed_before("flaky", key) == 0
    _work()
    append_line(_COMPUTED, f"computed flaky {key}")
    if first:
        raise Flaky(f"key {key} fails its first computation")
    return value(key)


STEPS = {"square": square, "flaky": flaky}


class Plan:
    """What the process does around its calls: where to stop, what it got."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.step = STEPS[args.step]
        self.twice, self.repeat, self.chunk = args.twice, args.repeat, args.chunk
        self.stop_after, self.stop = args.stop_after, args.stop
        self.used = 0
        self.results: list[tuple[int, Any]] = []
        self.lock = threading.Lock()

    def use(self, key: int, got: Any) -> None:
        """Note that the call with ``key`` returned ``got``; stop there if told to."""
        append_line(_USED, f"used {key} {got}")
        with self.lock:
            self.results.append((key, got))
            self.used += 1
            stop = self.used == self.stop_after
        if stop and self.stop == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if stop and self.stop == "hold":
            threading.Event().wait()  # wait to be killed, right after the call was used

    def call(self, key: int) -> Any:
        try:
            return self.step(key)
        except Flaky:
            return "raised"

    def calls(self, keys: list[int]) -> None:
        """One call after the other (``--twice``: each key from two threads at once)."""
        pool = concurrent.futures.ThreadPoolExecutor(2) if self.twice else None
        for key in keys:
            for _ in range(self.repeat):
                if pool is None:
                    self.use(key, self.call(key))
                else:
                    for future in [pool.submit(self.call, key) for _ in range(2)]:
                        self.use(key, future.result())
        if pool is not None:
            pool.shutdown()

    def maps(self, keys: list[int]) -> None:
        """A map per chunk of keys (``--twice``: each key twice in a row)."""
        for start in range(0, len(keys), self.chunk):
            part = keys[start : start + self.chunk]
            items = [k for k in part for _ in range(2)] if self.twice else part
            for key, got in zip(
                items, nbflow.map(self.step, items, concurrency=CONCURRENCY), strict=True
            ):
                self.use(key, got)


_plan: list[Plan] = []


@nbflow.workflow(name="cacheapp.calls")
def calls_workflow(keys: list[int]) -> int:
    """The calls of ``plain`` in a workflow's body."""
    _plan[0].calls(keys)
    return len(keys)


@nbflow.workflow(name="cacheapp.mapped")
def mapped_workflow(keys: list[int]) -> int:
    """The maps of ``plain-map`` in a workflow's body."""
    _plan[0].maps(keys)
    return len(keys)


WORKFLOWS = {"workflow": calls_workflow, "map": mapped_workflow}


def _run(mode: str, keys: list[int], args: argparse.Namespace) -> dict[str, Any]:
    plan = _plan[0]
    interrupted = sorted(nbflow.runtime().interrupted)
    recovered = {}
    if args.recover:
        recovered = {h.workflow_id: h.result(timeout=120) for h in nbflow.recover()}
    workflow_id = None
    if mode == "plain":
        plan.calls(keys)
    elif mode == "plain-map":
        plan.maps(keys)
    else:
        with nbflow.set_workflow_id(args.workflow_id or f"cacheapp-{uuid.uuid4().hex}"):
            handle = nbflow.start(WORKFLOWS[mode], keys)
        workflow_id = handle.workflow_id
        handle.result(timeout=120)
    return {
        "pid": os.getpid(),
        "interrupted": interrupted,
        "recovered": recovered,
        "workflow_id": workflow_id,
        "results": plan.results,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, wait for the go-ahead on stdin, make the calls."""
    parser = argparse.ArgumentParser(prog="cacheapp")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("db")
    parser.add_argument("computed")
    parser.add_argument("used")
    parser.add_argument("--keys", default="0:10")
    parser.add_argument("--step", choices=sorted(STEPS), default="square")
    parser.add_argument("--chunk", type=int, default=25)
    parser.add_argument("--twice", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=float, default=0.0, help="milliseconds per computation")
    parser.add_argument("--stop-after", type=int, default=0)
    parser.add_argument("--stop", choices=("hold", "kill"), default="hold")
    parser.add_argument("--workflow-id", default=None)
    parser.add_argument("--recover", action="store_true")
    parser.add_argument("--hold", action="store_true", help="wait to be killed at the end")
    args = parser.parse_args(argv)
    os.environ[_COMPUTED] = str(Path(args.computed).resolve())
    os.environ[_USED] = str(Path(args.used).resolve())
    os.environ[_WORK] = str(args.work)
    _plan.append(Plan(args))
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says when to start
    with nbflow.configure(args.db):
        summary = _run(args.mode, parse_keys(args.keys), args)
        print(json.dumps(summary), flush=True)
        if args.hold:
            threading.Event().wait()  # wait to be killed: the parent's kill must always land
    return 0
