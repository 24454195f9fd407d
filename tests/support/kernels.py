"""A real ipykernel kernel of this venv, started for a test (jupyter_client, no notebook server).

The kernelspec is :data:`KERNEL`, written by :func:`venv_kernel`. Test modules subclass
:class:`RealKernel` with the way they run cells and read outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

import pytest

__all__ = ["KERNEL", "RealKernel", "venv_kernel"]

#: The kernelspec the tests start kernels of (:func:`venv_kernel` writes it).
KERNEL = "nbflow-test-python"


def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs this interpreter (so this venv), found first through JUPYTER_PATH.

    Works in a fresh clone: nothing needs to be installed by hand, and a ``python3`` kernelspec
    of another Python elsewhere on the machine is not used.
    """
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "nbflow tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


class RealKernel:
    """A started kernel and its client (channels open, kernel ready).

    Args:
        cwd: The kernel's working directory.
    """

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager  # (an extra: imported when used)

        self.km = KernelManager(kernel_name=KERNEL)
        self.km.start_kernel(cwd=str(cwd))
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, *, results: bool = False) -> tuple[str, str]:
        """Run a cell; its stdout (``results``: and its results and displays, as text), and what
        it wrote on stderr and its error (``ename: evalue``; IPython shows a ``UsageError`` on
        stderr), or ``""``."""
        msg_id = self.client.execute(code)
        out, error = "", ""
        while True:
            msg = self.client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content: dict[str, Any] = msg["content"]
            kind = msg["msg_type"]
            if kind == "stream" and content["name"] == "stdout":
                out += content["text"]
            elif results and kind in ("execute_result", "display_data"):
                out += content["data"].get("text/plain", "")
            elif kind == "stream":
                error += content["text"]
            elif kind == "error":
                error += f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return out, error

    def ok(self, code: str, *, results: bool = False) -> str:
        """:meth:`run` a cell that must not fail; its output."""
        out, error = self.run(code, results=results)
        assert not error, error
        return out

    def stop(self, now: bool = False) -> None:
        """Shut the kernel down (``now``: SIGKILL it, as a crash would); safe to call twice."""
        self.client.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=now)
