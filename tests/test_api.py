"""The public surface: a curated, sorted ``__all__``, and no Jupyter imports in the core."""

from __future__ import annotations

import subprocess
import sys
import types

import nbflow


def test_all_is_sorted_and_complete() -> None:
    assert nbflow.__all__ == sorted(nbflow.__all__)
    for name in nbflow.__all__:
        assert hasattr(nbflow, name), name
    public = {
        name
        for name, value in vars(nbflow).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations"} == set(nbflow.__all__)  # less the __future__ import


def test_import_nbflow_imports_no_jupyter() -> None:
    code = (
        "import sys, nbflow, nbflow.store\n"
        "bad = [m for m in ('IPython', 'ipywidgets', 'ipykernel') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
