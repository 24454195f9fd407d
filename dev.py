#!/usr/bin/env python3
"""The project's two commands, each doing its own set-up in a venv (.venv):

    python3 dev.py demo [ARGS…]          run the demo pipeline with a live progress bar
    python3 dev.py test [ARGS…]          lint, type-check, check the layers and run the whole test suite
    python3 dev.py test --fast [ARGS…]   the same with the fast tier of the tests: those that need
                                         no browser, no kernel, no PostgreSQL and no kill -9
    python3 dev.py lab [ARGS…]           open JupyterLab on the example notebooks (notebooks/)

ARGS go to pytest (e.g. ``python3 dev.py test --fast tests/workflow -x``). The tests run on two
processes (pytest-xdist; the tests of a file on one, so a module's fixtures are made once);
``-n 0`` runs them in this one.

Only the standard library is used here, so it runs on a fresh machine with Python 3.10+.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def run(*args: str | os.PathLike[str], check: bool = True) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], cwd=ROOT, check=check).returncode


def ensure_venv(extras: str) -> None:
    """Create .venv and install the package with ``extras``, unless already up to date."""
    if not PY.exists():
        print(f"Creating a virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]" if extras else ".")
    stamp.write_text(digest)


def demo(args: list[str]) -> int:
    ensure_venv("")
    return run(BIN / "nbflow", "demo", *args, check=False)


#: The fast tier: every test but those that need a browser, a kernel, PostgreSQL or kill -9, and
#: those marked slow (tests/conftest.py says what each marker means).
FAST = "not browser and not kernel and not notebooks and not postgres and not crash and not slow"


def test(args: list[str]) -> int:
    ensure_venv("notebook,dev,bench,dask,pandas,polars,otel")
    fast = "--fast" in args
    args = [a for a in args if a != "--fast"]
    run(PY, "-m", "ruff", "check", "nbflow", "tests", "benchmarks", "dev.py")
    run(PY, "-m", "ruff", "format", "--check", "nbflow", "tests", "benchmarks", "dev.py")
    run(PY, "-m", "mypy")
    run(BIN / "lint-imports", "--no-cache")  # the layers of docs/architecture.md
    told = any(a in ("-n", "--numprocesses") or (a[:2] == "-n" and a[2:].isdigit()) for a in args)
    parallel = [] if told else ["-n", "2"]
    selected = ["-m", FAST] if fast else []
    code = run(PY, "-m", "pytest", *parallel, "--dist", "loadfile", *selected, *args, check=False)
    if code == 5:
        print("pytest collected no tests: that is a failure here.", file=sys.stderr)
        return 1
    return code


def lab(args: list[str]) -> int:
    """JupyterLab on ``notebooks/``, its kernel this venv's Python (with nbflow in it)."""
    ensure_venv("lab")
    print("Opening JupyterLab on notebooks/ (Ctrl+C twice stops it).", flush=True)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # a container's root: Jupyter refuses it
        args = ["--allow-root", *args]
    return run(BIN / "jupyter", "lab", f"--notebook-dir={ROOT / 'notebooks'}", *args, check=False)


def main() -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - this script may be run by any python3
        sys.exit(f"nbflow needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    commands = {"demo": demo, "test": test, "lab": lab}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
