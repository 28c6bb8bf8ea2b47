"""Inner loops of the B-mode simulator: 1-D correlations along image rows or columns with
"nearest" edges, and the exclusive cumulative sum down each column.

They are numba kernels (``us_acquisition.jit``: cached, GIL released) in float32 (single thread: the
simulator shares the machine with the graph it feeds); without numba the same operations
run through ``scipy.ndimage.correlate1d`` and numpy (about 4x slower: the PSF of a 640x480
frame took 7.7 ms that way, 1.4 ms here; ``python bench/bench_simulator.py`` times a whole
frame). The results agree to float32 rounding: scipy accumulates in float64, these kernels
in float32 (test/test_sim_kernels.py).

Arrays are 2-D, C-contiguous float32; kernels are odd-length float32 (centre at ``n // 2``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..jit import HAVE_NUMBA, jit

__all__ = [
    "HAVE_NUMBA",
    "correlate_cols",
    "correlate_rows",
    "cumsum_rows_exclusive",
    "warmup",
]

F32 = NDArray[np.float32]


def _rows_py(src: F32, k: F32, out: F32) -> None:
    ndimage.correlate1d(src, k, axis=0, output=out, mode="nearest")


def _cols_py(src: F32, k: F32, out: F32) -> None:
    ndimage.correlate1d(src, k, axis=1, output=out, mode="nearest")


def _cumsum_py(src: F32, out: F32) -> None:
    out[0] = 0.0
    for r in range(1, out.shape[0]):  # a row loop beats cumsum(axis=0) ~7x here
        np.add(out[r - 1], src[r - 1], out=out[r])


def _rows_nb(src: F32, k: F32, out: F32) -> None:  # pragma: no cover - compiled
    h, w = src.shape
    n = k.shape[0]
    half = n // 2
    for r in range(h):
        o = out[r]
        for c in range(w):
            o[c] = np.float32(0.0)
        for j in range(n):
            rr = min(max(r + j - half, 0), h - 1)
            kj = k[j]
            s = src[rr]
            for c in range(w):  # vectorised by LLVM: no dependence across c
                o[c] += kj * s[c]


def _cols_nb(src: F32, k: F32, out: F32) -> None:  # pragma: no cover - compiled
    h, w = src.shape
    n = k.shape[0]
    half = n // 2
    pad = np.empty(w + 2 * half, np.float32)
    for r in range(h):
        s = src[r]
        for c in range(w):
            pad[half + c] = s[c]
        for c in range(half):
            pad[c] = s[0]
            pad[half + w + c] = s[w - 1]
        o = out[r]
        for c in range(w):
            o[c] = np.float32(0.0)
        for j in range(n):
            kj = k[j]
            for c in range(w):
                o[c] += kj * pad[c + j]


def _cumsum_nb(src: F32, out: F32) -> None:  # pragma: no cover - compiled
    h, w = src.shape
    for c in range(w):
        out[0, c] = np.float32(0.0)
    for r in range(1, h):
        for c in range(w):
            out[r, c] = out[r - 1, c] + src[r - 1, c]


def _pick(nb: Callable[..., Any], py: Callable[..., None]) -> Callable[..., None]:
    """The compiled kernel, or the scipy / numpy version without numba."""
    if not HAVE_NUMBA:  # pragma: no cover
        return py
    jitted: Callable[..., None] = jit(nb)
    return jitted


#: ``out = correlate(src, k)`` along axis 0 (down the columns: depth), nearest edges;
#: ``out`` must not be ``src``
correlate_rows = _pick(_rows_nb, _rows_py)
#: ``out = correlate(src, k)`` along axis 1 (along the rows: lateral), nearest edges;
#: ``out`` may be ``src``
correlate_cols = _pick(_cols_nb, _cols_py)
#: ``out[r] = src[0] + ... + src[r - 1]`` per column (``out[0] = 0``); out must not be src
cumsum_rows_exclusive = _pick(_cumsum_nb, _cumsum_py)


def warmup() -> float:
    """Compile (or load from numba's cache) every kernel now, not in the first frame; s."""
    t0 = time.perf_counter()
    a = np.ones((4, 8), np.float32)
    b = np.empty_like(a)
    k = np.ones(3, np.float32)
    correlate_rows(a, k, b)
    correlate_cols(a, k, b)
    cumsum_rows_exclusive(a, b)
    return time.perf_counter() - t0
