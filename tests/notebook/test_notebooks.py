"""The example notebooks in ``notebooks/``, checked by nbval against their saved outputs.

The ``notebooks`` test runs ``pytest --nbval`` in a subprocess twice in a row on one copy of
the notebooks (each must pass every time: they run repeatedly with the same outputs; a lax run
would check less than a strict one, so there is none). ``NBFLOW_DATABASE`` is unset: every
notebook opens its own database.

After changing a notebook, execute it and save its outputs (what nbval compares against)::

    .venv/bin/python -m tests.notebook.test_notebooks notebooks/03-durable-pipeline.ipynb   # or no argument: all
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytest.importorskip("nbval", reason="nbval is not installed (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[notebook]')")
pytest.importorskip("pandas", reason="pandas is not installed (pip install -e '.[pandas]')")

pytestmark = pytest.mark.kernel

NOTEBOOKS = ROOT / "notebooks"
SANITIZE = NOTEBOOKS / "sanitize.cfg"
EXPECTED = [
    "01-quickstart.ipynb",
    "02-streaming-tokens.ipynb",
    "03-durable-pipeline.ipynb",
    "04-crash-and-resume.ipynb",
    "05-query-history.ipynb",
    "06-parallel-map.ipynb",
    "07-observability.ipynb",
    "08-edit-and-continue.ipynb",
]
STRICT_RUNS = 2
RUN_TIMEOUT = 120.0  # seconds for one nbval run of every notebook


def notebook_paths() -> list[Path]:
    """The example notebooks, in order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def clean_env() -> dict[str, str]:
    """The environment for kernels: no ``NBFLOW_DATABASE``, no pytest options from outside."""
    env = {k: v for k, v in os.environ.items() if k not in ("NBFLOW_DATABASE", "PYTEST_ADDOPTS")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def copy_notebooks(dest: Path) -> Path:
    """Copy the notebooks and the sanitize file into ``dest/notebooks``; return that folder."""
    folder = dest / "notebooks"
    folder.mkdir(parents=True)
    for path in [*notebook_paths(), SANITIZE]:
        shutil.copy2(path, folder / path.name)
    return folder


def run_nbval(cwd: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run nbval on ``cwd/notebooks``; return the finished process and its wall time."""
    command = [
        sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
        "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout", "60",
        "-p", "no:cacheprovider", "-q", "-ra", *options, "notebooks/",
    ]  # fmt: skip
    began = time.monotonic()
    proc = subprocess.run(
        command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    return proc, time.monotonic() - began


def _passed(output: str) -> str:
    """The summary line of a pytest run (``12 passed in 3.1s``)."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return lines[-1].strip("= ") if lines else "(no summary)"


def test_notebooks_are_saved_with_outputs() -> None:
    """Each notebook was executed top to bottom in one kernel and saved with what it printed.

    nbval passes a notebook saved without outputs whatever it prints, so this is what makes the
    nbval runs real checks.
    """
    assert [p.name for p in notebook_paths()] == EXPECTED
    assert SANITIZE.is_file()
    for path in notebook_paths():
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        counts = [c["execution_count"] for c in code]
        assert counts == list(range(1, len(code) + 1)), f"{path.name}: run it top to bottom"
        for cell in code:
            errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
            assert not errors, f"{path.name}: a cell raised {errors[0]['ename']}"
        last = code[-1]
        source = "".join(last["source"])
        assert last["outputs"], f"{path.name}: the summary cell has no saved output"
        assert "NBVAL_IGNORE_OUTPUT" not in source and "NBVAL_SKIP" not in source, path.name
        assert "Setup" in "".join(code[0]["source"]), (
            f"{path.name}: first cell sets up the database"
        )


@pytest.mark.notebooks
def test_notebooks_pass_nbval_repeatedly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Strict nbval runs in a row on one copy of the notebooks (:data:`STRICT_RUNS`)."""
    copy_notebooks(tmp_path)
    results: list[str] = []
    for i in range(1, STRICT_RUNS + 1):
        proc, seconds = run_nbval(tmp_path)
        line = f"nbval strict {i}/{STRICT_RUNS}: {seconds:.1f} s, {_passed(proc.stdout)}"
        results.append(line)
        with capsys.disabled():
            print(f"\n{line}", end="", flush=True)
        assert proc.returncode == 0, (
            f"{line}\n{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}\nruns so far:\n"
            + "\n".join(results)
        )
    with capsys.disabled():
        print()


def execute(path: Path, timeout: float = 60.0) -> None:
    """Execute a notebook in a fresh kernel (its folder as working directory) and save it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the saved file
        coalesce_streams=True,  # one output for many prints, as nbval compares them
        resources={"metadata": {"path": str(path.parent)}},
    )
    began = time.monotonic()
    client.execute()
    nbformat.write(nb, path)
    print(f"{path.name}: executed and saved in {time.monotonic() - began:.1f} s")


def main(argv: list[str]) -> int:
    """Execute and save the notebooks named in ``argv`` (default: all)."""
    os.environ.pop("NBFLOW_DATABASE", None)
    paths = [Path(a).resolve() for a in argv] or notebook_paths()
    for path in paths:
        execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
