"""What drawing a timeline costs: ``python -m benchmarks.timeline``.

Runs, on a fresh DuckDB file, a workflow with an ``nbflow.map`` of N items (8 at a time; each
item writes one stream item) and M writes to one more stream from its body, then times each part
of one redraw of its :class:`~nbflow.notebook.Timeline` (the median of ``--rounds``):

  read    ``gather_timeline``: the store's queries (steps, thinned stream writes, children);
  layout  the rows: steps grouped into lanes, ticks;
  svg     the SVG text (bars closer than a pixel drawn as one);

and prints the SVG's size and elements. A live timeline redraws at most twice a second; asserts
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbflow
from nbflow.engine._timelayout import timeline_chart
from nbflow.engine._timeline import gather_timeline
from nbflow.text._gantt import render_svg

__all__ = ["main", "measure"]


@nbflow.step(name="bench.timeline.item")
def item(i: int) -> int:
    """One map item: writes one stream item."""
    nbflow.write_stream("items", i)
    return i


@nbflow.workflow(name="bench.timeline.run")
def run(n: int, writes: int) -> int:
    """The workflow drawn: a map of ``n`` items, then ``writes`` stream writes."""
    total = sum(nbflow.map(item, range(n), concurrency=8))
    for i in range(writes):
        nbflow.write_stream("log", i)
    return total


def _median_ms(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), value


def measure(n: int, writes: int, rounds: int, folder: Path) -> dict[str, float]:
    """Time one redraw of the timeline of a workflow with an ``n``-item map and ``writes``
    writes."""
    with nbflow.Runtime(folder / f"timeline-{n}-{writes}.duckdb") as rt:
        handle = rt.start(run, n, writes)
        handle.result()
        rt.flush()
        read_ms, data = _median_ms(lambda: gather_timeline(rt.store, handle.workflow_id), rounds)
        layout_ms, chart = _median_ms(lambda: timeline_chart(data), rounds)
        svg_ms, svg = _median_ms(lambda: render_svg(chart), rounds)
    return {
        "items": n,
        "writes": writes + n,
        "read_ms": read_ms,
        "layout_ms": layout_ms,
        "svg_ms": svg_ms,
        "total_ms": read_ms + layout_ms + svg_ms,
        "kb": len(svg) / 1024,
        "elements": svg.count("<") - svg.count("</"),
        "ticks": sum(len(node.ticks) for node in data.nodes()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="redraws timed (median; 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    args = parser.parse_args(argv)
    sizes = [(100, 1000)] if args.quick else [(100, 1000), (1000, 10_000), (10_000, 100_000)]
    heads = ("map items", "writes", "read ms", "layout ms", "svg ms", "total ms", "svg KB")
    print(" ".join(f"{h:>10}" for h in (*heads, "elements", "ticks read")))
    with tempfile.TemporaryDirectory() as folder:
        for n, writes in sizes:
            r = measure(n, writes, args.rounds, Path(folder))
            cells = [f"{r['items']:,}", f"{r['writes']:,}"]
            cells += [f"{r[k]:.1f}" for k in ("read_ms", "layout_ms", "svg_ms", "total_ms")]
            cells += [f"{r['kb']:.0f}", f"{r['elements']:,}", f"{r['ticks']:,}"]
            print(" ".join(f"{c:>10}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
