"""Code fingerprints in a real kernel: a function defined in a notebook keeps its fingerprint
after a kernel restart (a new process, a new hash seed, new cell file names).

The cells define a function with a helper two levels down (defined in another cell), a global
set, a set literal (a frozenset constant: its order follows the hash seed), a closure, a class
and an nbflow step; the kernel is restarted and the same cells run again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kernels import RealKernel, venv_kernel

pytestmark = pytest.mark.kernel

HELPERS = """\
import functools, re

LABELS = {"spam", "ham", "eggs", "bacon", "beans"}
PATTERN = re.compile(r"[a-z]+")

def strip_tags(s):
    return s.replace("<", "").replace(">", "")

def clean(s):
    return strip_tags(s).strip() if s not in {"a", "an", "the", "of"} else ""
"""

DEFINE = """\
import nbflow

class Scorer:
    weight = 2
    def score(self, words):
        return self.weight * sum(w in LABELS for w in words)

def make(scale):
    def scaled(x):
        return x * scale
    return scaled

@nbflow.step(name="kernel.parse")
def parse(text, n=3):
    words = [clean(w) for w in text.split() if PATTERN.match(w)]
    return make(2)(Scorer().score(words[:n]))

by_two = make(2)
"""

PRINT = """\
from nbflow._fingerprint import fingerprint
for name in ("parse", "Scorer", "by_two", "clean"):
    print(name, fingerprint(globals()[name]))
print("hash", hash("nbflow"))
"""


def run(kernel: RealKernel, code: str) -> str:
    """Run a cell to its end; what it printed (an error fails the test)."""
    msg_id = kernel.client.execute(code)
    printed = ""
    while True:
        msg = kernel.client.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            printed += content["text"]
        elif kind == "error":
            raise AssertionError("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return printed


def fingerprints(kernel: RealKernel) -> dict[str, str]:
    run(kernel, HELPERS)
    run(kernel, DEFINE)
    return dict(line.split(" ", 1) for line in run(kernel, PRINT).splitlines())


def test_a_notebook_function_keeps_its_fingerprint_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_kernel(tmp_path, monkeypatch)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # each kernel process: its own seed
    kernel = RealKernel(tmp_path)
    try:
        before = fingerprints(kernel)
        kernel.km.restart_kernel(now=True)
        kernel.client.wait_for_ready(timeout=60)
        after = fingerprints(kernel)
        run(kernel, "LABELS.add('toast')")
        changed = dict(line.split(" ", 1) for line in run(kernel, PRINT).splitlines())
    finally:
        kernel.stop()
    assert before.pop("hash") != after.pop("hash")  # a new process with another hash seed
    assert before == after
    assert changed["parse"] != after["parse"]  # (and a global it reads does count)
    assert changed["clean"] == after["clean"]
