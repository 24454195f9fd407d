"""``python3 dev.py lab``: sets itself up, then serves JupyterLab on ``notebooks/``.

The test runs the command as a newcomer would (through ``dev.py``, which installs the ``lab``
extra into ``.venv`` if needed), with a token and a free port, then asks the server's REST API for
the example notebooks and a kernel spec, and stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.helpers import wait_until
from tests.support.processes import ROOT

pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e '.[lab]')")

pytestmark = [pytest.mark.slow, pytest.mark.kernel]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_py_lab_serves_the_example_notebooks(tmp_path: Path) -> None:
    port, token = free_port(), os.urandom(8).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTEST_"))}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path))
    log = tmp_path / "lab.log"
    args = ["--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}"]
    with log.open("w") as out:
        lab = subprocess.Popen(
            [sys.executable, str(ROOT / "dev.py"), "lab", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def api(path: str) -> object:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return json.loads(answer.read())
        except (OSError, urllib.error.URLError):
            assert lab.poll() is None, f"dev.py lab exited ({lab.returncode}):\n{log.read_text()}"
            return None

    try:
        wait_until(lambda: api("/api/status"), timeout=240, interval=0.2)
        contents = api("/api/contents")
        specs = api("/api/kernelspecs")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait(10)
    assert isinstance(contents, dict) and isinstance(specs, dict)
    names = {item["name"] for item in contents["content"]}
    assert "01-quickstart.ipynb" in names and "06-parallel-map.ipynb" in names, names
    # the default kernel is the server's own Python (jupyter_client runs "python" as the
    # server's interpreter, .venv's), so the notebooks import this nbflow
    [spec] = [s for s in specs["kernelspecs"].values() if s["name"] == specs["default"]]
    assert spec["spec"]["argv"][0] in ("python", str(ROOT / ".venv" / "bin" / "python")), spec
