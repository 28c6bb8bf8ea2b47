"""Deterministic frame content for cross-process checks (tests, demo, benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .layout import PIXEL_LAYOUTS, PixelFormat, array_shape


def pattern_frame(fmt: PixelFormat, width: int, height: int, seq: int) -> npt.NDArray[Any]:
    """A frame whose every byte depends on ``seq`` and position; cheap to regenerate."""
    layout = PIXEL_LAYOUTS[fmt]
    shape = array_shape(fmt, width, height)
    rng = np.random.default_rng(seq * 7919 + int(fmt))
    if layout.dtype.kind == "f":
        return rng.random(shape, dtype=np.float32).astype(layout.dtype)
    top = 1 << (8 * layout.dtype.itemsize)
    return rng.integers(0, top, size=shape, dtype=layout.dtype)


def frame_checksum(array: npt.NDArray[Any]) -> int:
    """A cheap order-sensitive checksum of a frame's bytes (not cryptographic)."""
    flat = np.ascontiguousarray(array).view(np.uint8).ravel()
    weights = np.arange(1, flat.size + 1, dtype=np.uint64)
    return int(np.sum(flat.astype(np.uint64) * weights) % np.uint64(2**61 - 1))
