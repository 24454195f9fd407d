"""How long a code fingerprint takes: ``python -m benchmarks.fingerprint``.

The function fingerprinted is notebook-like: ``analyze`` calls a chain of 10 helpers (each calls
the next) and a fan of 10 (each called by ``analyze``), 20 helpers in all, which read globals (a
threshold, a set of labels, a dict of weights, a compiled pattern, ``math``, ``json`` and
``duckdb``, an installed package). The script prints:

  first  the first fingerprint in this process (it reads the installed packages' metadata once);
  cold   a fingerprint of new code objects: the source is exec'd again before each (so every
         code object is analysed anew; the package metadata is already read);
  warm   the same function again: its code is cached, the globals' values are looked at again.

The goal of nbflow's step cache is a warm fingerprint of such a function in 1 ms at most. Prints
a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from nbflow._fingerprint import code_parts, fingerprint

__all__ = ["SOURCE", "main", "measure"]

_CHAIN = '''
def step_{i}(rows):
    """Step {i} of the chain."""
    kept = [r for r in rows if r.get("score", 0) >= THRESHOLD * {i}]
    for r in kept:
        r["weight"] = WEIGHTS.get(r.get("label"), 1.0) * math.log1p(len(kept))
    return {next}(kept)
'''
_FAN = """
def feature_{i}(rows):
    total = 0.0
    for r in rows:
        if r.get("label") in LABELS and PATTERN.match(str(r.get("name", ""))):
            total += r.get("weight", 0.0) ** {i} / (1 + len(json.dumps(r)))
        elif r.get("label") is None:
            continue
    return {{"feature_{i}": round(total, 3), "n": len(rows)}}
"""
_MAIN = '''
import json
import math
import re

import duckdb

THRESHOLD = 0.5
LABELS = {{"spam", "ham", "eggs", "bacon"}}
WEIGHTS = {{"spam": 2.0, "ham": 1.5, "eggs": 0.5}}
PATTERN = re.compile(r"[a-z]+_\\d+")
CONNECT = duckdb.connect

{chain}
{fan}

def analyze(rows, *, top=10):
    """What a notebook cell would call."""
    rows = step_0(rows)
    features = {{}}
    for fn in ({features}):
        features.update(fn(rows))
    return sorted(features.items())[:top]
'''
#: The module's source: ``analyze`` and its 20 helpers.
SOURCE = _MAIN.format(
    chain="".join(_CHAIN.format(i=i, next=f"step_{i + 1}" if i < 9 else "list") for i in range(10)),
    fan="".join(_FAN.format(i=i) for i in range(10)),
    features=", ".join(f"feature_{i}" for i in range(10)),
)


def _fresh(shift: int = 0) -> Any:
    """``analyze`` of the source exec'd anew in a module namespace. ``shift`` moves it down so
    many lines: code objects equal to earlier ones are not new (they compare equal), moved ones
    are (a fingerprint leaves line numbers out: it is the same)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile("\n" * shift + SOURCE, "<notebook cell>", "exec"), namespace)
    return namespace["analyze"]


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fingerprint(fn)
    return time.perf_counter() - start


def measure(rounds: int = 2000, cold_rounds: int = 100) -> dict[str, Any]:
    """Seconds: ``first`` (one), ``cold`` and ``warm`` (lists); and the function's size."""
    first = _timed(_fresh())
    cold = [_timed(_fresh(shift)) for shift in range(1, cold_rounds + 1)]
    fn = _fresh()
    fingerprint(fn)
    warm = [_timed(fn) for _ in range(rounds)]
    parts = code_parts(fn).parts
    functions = {p.path[-1] for p in parts if p.kind == "code"}
    return {"first": first, "cold": cold, "warm": warm, "parts": len(parts), "functions": functions}


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="warm fingerprints (2000)")
    parser.add_argument("--cold-rounds", type=int, default=100, help="cold fingerprints (100)")
    args = parser.parse_args(argv)
    m = measure(max(1, args.rounds), max(1, args.cold_rounds))
    print(f"Python {sys.version.split()[0]}: fingerprint of a notebook function")
    print(
        f"`analyze` and {len(m['functions']) - 1} helpers (a chain of 10, a fan of 10) "
        f"reading 7 globals: {m['parts']} parts\n"
    )
    warm = statistics.median(m["warm"])
    met = "✓" if warm <= 1e-3 else "✗"
    print("| measurement | median | p99 | goal |\n|---|---|---|---|")
    print(f"| first in the process (reads package metadata) | {_time(m['first'])} | — | — |")
    cold = m["cold"]
    print(
        f"| cold: new code objects | {_time(statistics.median(cold))} | {_time(_p99(cold))} | — |"
    )
    print(f"| warm: the same function | {_time(warm)} | {_time(_p99(m['warm']))} | ≤ 1 ms {met} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
