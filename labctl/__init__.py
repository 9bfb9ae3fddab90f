"""labctl: hardware-in-the-loop control and emulation of 1T1R ReRAM crossbar arrays."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labctl.core.blas import pin_openblas_kernel

# Before anything loads numpy: one set of OpenBLAS kernels on every x86-64 CPU (the same seed, the same bits).
pin_openblas_kernel()

if TYPE_CHECKING:
    from labctl.campaigns.arrays import RunData

__version__ = "0.1.0"


def open_run(store: Any, run: str = "last") -> RunData:
    """A stored run as arrays: `labctl.open_run("labctl-runs.sqlite", "last").dataset("transfer")` is an
    xarray.Dataset, `.frame(...)` a tidy pandas.DataFrame (labctl.campaigns.arrays; docs/store.md)."""
    from labctl.campaigns.arrays import open_run as _open_run  # xarray and pandas only when asked for

    return _open_run(store, run)
