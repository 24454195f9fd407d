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


def test_nbflow_workflow_stays_the_decorator_whatever_is_imported() -> None:
    """The package ``nbflow/workflow/`` shares its name with ``nbflow.workflow``, the decorator:
    the attribute must stay the decorator however the package's modules are imported after."""
    code = (
        "import importlib, pkgutil, nbflow\n"
        "import nbflow.workflow._context, nbflow.engine._runtime\n"
        "package = importlib.import_module('nbflow.workflow')\n"
        "for m in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module('nbflow.workflow.' + m.name)\n"
        "print(nbflow.workflow.__module__, package.__name__, callable(nbflow.workflow))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["nbflow.workflow._workflows", "nbflow.workflow", "True"]
