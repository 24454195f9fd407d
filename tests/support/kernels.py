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

    def stop(self, now: bool = False) -> None:
        """Shut the kernel down (``now``: SIGKILL it, as a crash would); safe to call twice."""
        self.client.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=now)
