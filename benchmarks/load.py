"""nbflow under load: memory while writing a lot, and many workflows started at once.

``python -m benchmarks.load`` runs each measure in a fresh child process (so that one's memory
does not count in another's) on a fresh DuckDB file, and prints a table:

  write    one workflow writes ``--megabytes`` MB as items of ``--item-kb`` KB to a stream, as
           fast as it can: the time, and how much the process's resident memory grew at its peak
           (sampled every 20 ms) over what it was before. The write log holds about 16 MB at
           most, so a writer that outruns the disk waits instead of queueing everything.
  serial   ``--serial`` workflows of three trivial steps, each started and waited for before the
           next: milliseconds per workflow.
  at once  ``--at-once`` of the same workflows started together, then waited for: milliseconds
           per workflow, and the CPU time in the kernel (a sign of threads woken for nothing).

Asserts nothing: issue 14 names the figures to reach (write: within +200 MB; at once: no slower
per workflow than serial).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbflow

__all__ = ["main"]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@nbflow.step(name="benchmarks.load.step")
def _step(i: int) -> int:
    return i + 1


@nbflow.workflow(name="benchmarks.load.small")
def _small(i: int) -> int:
    return _step(_step(_step(i)))


@nbflow.workflow(name="benchmarks.load.writer")
def _writer(count: int, size: int) -> int:
    payload = "x" * size
    for _ in range(count):
        nbflow.write_stream("items", payload)
    return count


def _measure_write(db: str, megabytes: int, item_kb: int) -> dict[str, float]:
    size = item_kb * 1000
    count = megabytes * 1_000_000 // size
    peak, stop = [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    with nbflow.Runtime(db) as rt:
        base = _rss_mb()
        sampler = threading.Thread(target=sample, name="nbflow-bench-rss", daemon=True)
        sampler.start()
        started = time.perf_counter()
        rt.start(_writer, count, size).result(timeout=3600)
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    return {"seconds": seconds, "growth_mb": max(peak[0], _rss_mb()) - base, "items": count}


def _measure_workflows(db: str, count: int, at_once: bool) -> dict[str, float]:
    with nbflow.Runtime(db) as rt:
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        if at_once:
            handles = [rt.start(_small, i) for i in range(count)]
            results = [h.result(timeout=3600) for h in handles]
        else:
            results = [rt.start(_small, i).result(timeout=600) for i in range(count)]
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    assert results == [i + 3 for i in range(count)]
    return {"ms_per_workflow": 1000 * seconds / count, "kernel_s": after.ru_stime - before.ru_stime}


def _child(args: argparse.Namespace) -> None:
    """Run one measure (in a child process) and print its figures as JSON."""
    db = str(Path(args.dir) / f"{args.measure}.duckdb")
    if args.measure == "write":
        figures = _measure_write(db, args.megabytes, args.item_kb)
    else:
        count = args.at_once if args.measure == "at-once" else args.serial
        figures = _measure_workflows(db, count, args.measure == "at-once")
    print(json.dumps(figures))


def _run(measure: str, args: argparse.Namespace, folder: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.load", "--child", measure, "--dir", folder]
    argv += ["--megabytes", str(args.megabytes), "--item-kb", str(args.item_kb)]
    argv += ["--serial", str(args.serial), "--at-once", str(args.at_once)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=400)
    parser.add_argument("--item-kb", type=int, default=10)
    parser.add_argument("--serial", type=int, default=1000)
    parser.add_argument("--at-once", type=int, default=10_000)
    parser.add_argument("--child", choices=("write", "serial", "at-once"), dest="measure")
    parser.add_argument("--dir")
    args = parser.parse_args(argv)
    if args.measure:
        _child(args)
        return
    with tempfile.TemporaryDirectory(prefix="nbflow-load-") as folder:
        write = _run("write", args, folder)
        serial = _run("serial", args, folder)
        at_once = _run("at-once", args, folder)
    print(f"nbflow {nbflow.__version__} on {os.cpu_count()} cores, DuckDB file")
    print(f"{'measure':<10} {'what':<44} {'figure':>24}")
    what = f"{args.megabytes} MB as {write['items']:,} items of {args.item_kb} KB"
    figure = f"{write['seconds']:.1f} s, RSS +{write['growth_mb']:.0f} MB"
    print(f"{'write':<10} {what:<44} {figure:>24}")
    for name, count, result in (
        ("serial", args.serial, serial),
        ("at once", args.at_once, at_once),
    ):
        what = f"{count:,} workflows of 3 steps"
        figure = f"{result['ms_per_workflow']:.2f} ms/wf, kernel {result['kernel_s']:.1f} s"
        print(f"{name:<10} {what:<44} {figure:>24}")


if __name__ == "__main__":
    main()
