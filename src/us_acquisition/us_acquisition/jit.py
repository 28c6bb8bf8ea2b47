"""numba's ``njit`` where numba is installed, plain Python where it is not: the one switch
for the compiled kernels of the simulator (``sim/kernels.py``) and the reconstruction
(``us_reconstruction.compounding``). No rclpy.

Kernels are compiled with ``cache=True`` (numba keeps the machine code next to the module,
so a new process loads it instead of compiling) and ``nogil=True`` (other threads of the
process run while a kernel does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_numba_njit: Any
try:
    from numba import njit as _numba_njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False
    _numba_njit = None

__all__ = ["HAVE_NUMBA", "jit", "jit_inline"]


def jit(func: Callable[..., Any]) -> Any:
    """``numba.njit(cache=True, nogil=True)`` when numba is installed, else the function."""
    if _numba_njit is None:
        return func
    return _numba_njit(cache=True, nogil=True)(func)


def jit_inline(func: Callable[..., Any]) -> Any:
    """Like :func:`jit`, inlined into the calling kernel (numba IR inlining)."""
    if _numba_njit is None:
        return func
    return _numba_njit(cache=True, nogil=True, inline="always")(func)
