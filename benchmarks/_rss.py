"""Workload (f), run as a child process: peak RSS growth while reading a long closed stream.

``python -m benchmarks._rss --items N --dir DIR [--url URL]`` writes an N-item stream with a
workflow (in ``DIR/nbflow.duckdb``, or in the PostgreSQL database ``URL``), closes the runtime,
opens it again, resets the process's peak RSS (``/proc/self/clear_refs``), reads the whole stream
and prints one JSON line: the peak RSS (``VmHWM``) before and after the read, and the growth in MB. Where the peak cannot be reset, the
read runs in a second child process (``--read-only``) that never wrote anything, so its starting peak
is its own.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbflow
from benchmarks._systems import nb_write_items

__all__ = ["main", "measure_read", "reset_peak", "status_kb", "write_stream"]

KEY = "items"


def status_kb(field: str) -> int:
    """A ``VmHWM``/``VmRSS``-style field of ``/proc/self/status``, in kB."""
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return status_kb("VmHWM") <= status_kb("VmRSS") + 1024


def write_stream(path: Path | str, items: int) -> tuple[str, float]:
    """Write the stream with a workflow (``path``: a DuckDB file or a PostgreSQL URL); return its
    workflow id and the seconds it took."""
    with nbflow.Runtime(path) as rt:
        t0 = time.perf_counter()
        handle = rt.start(nb_write_items, items, KEY)
        handle.result()
        return handle.workflow_id, time.perf_counter() - t0


def measure_read(path: Path | str, workflow_id: str, items: int) -> dict[str, Any]:
    """Open the runtime, read the whole stream, and report the peak RSS before and after."""
    with nbflow.Runtime(path) as rt:
        gc.collect()
        before = status_kb("VmHWM")
        rss_before = status_kb("VmRSS")
        t0 = time.perf_counter()
        count = 0
        last = None
        for value in rt.read_stream(workflow_id, KEY):
            count += 1
            last = value
        read_s = time.perf_counter() - t0
        after = status_kb("VmHWM")
        rss_after = status_kb("VmRSS")
    if count != items or last is None or last["i"] != items - 1:
        raise AssertionError(f"read {count} items (last {last!r}), expected {items}")
    return {
        "items": items,
        "read_s": read_s,
        "hwm_before_kb": before,
        "hwm_after_kb": after,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "growth_mb": (after - before) / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--url", help="a PostgreSQL database to use instead of a DuckDB file")
    parser.add_argument("--read-only", metavar="WORKFLOW_ID")
    args = parser.parse_args(argv)
    path: Path | str = args.url or args.dir / "nbflow.duckdb"
    if args.read_only:
        result = measure_read(path, args.read_only, args.items)
        print(json.dumps(result), flush=True)
        return
    workflow_id, write_s = write_stream(path, args.items)
    gc.collect()
    if reset_peak():
        result = measure_read(path, workflow_id, args.items)
        result["peak_reset"] = "clear_refs"
    else:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks._rss", "--items", str(args.items), "--dir", str(args.dir), "--read-only", workflow_id, *(["--url", args.url] if args.url else [])],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result["peak_reset"] = "separate reader process"
    result["write_s"] = write_s
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
