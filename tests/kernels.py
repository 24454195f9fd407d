"""A real ipykernel kernel of this venv, started for a test (jupyter_client, no notebook server).

The kernelspec is ``tests.test_run_all.KERNEL`` (see ``venv_kernel`` there). Test modules subclass
:class:`RealKernel` with the way they run cells and read outputs.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_client.manager import KernelManager

from tests.test_run_all import KERNEL

__all__ = ["RealKernel"]


class RealKernel:
    """A started kernel and its client (channels open, kernel ready).

    Args:
        cwd: The kernel's working directory.
    """

    def __init__(self, cwd: Path) -> None:
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
