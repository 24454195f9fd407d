"""Packaging: environment.yml agrees with pyproject.toml; the package ships its type marker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV_EXTRAS = ("notebook", "postgres", "dev")  # bench (DBOS) stays out of the conda environment


def _pip_section(text: str) -> list[str]:
    """The entries under ``- pip:`` in environment.yml."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    entries = []
    for line in lines[start + 1 :]:
        match = re.match(r"^\s{4,}- (.+)$", line)
        if not match:
            break
        entries.append(match.group(1).strip())
    return entries


def test_environment_yml_agrees_with_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ENV_EXTRAS:
        wanted += project["optional-dependencies"][extra]
    entries = _pip_section((ROOT / "environment.yml").read_text())
    assert entries[-1] == "--editable .", "environment.yml must install nbflow itself last"
    assert sorted(entries[:-1]) == sorted(wanted)


def test_package_is_typed() -> None:
    assert (ROOT / "nbflow" / "py.typed").exists()
