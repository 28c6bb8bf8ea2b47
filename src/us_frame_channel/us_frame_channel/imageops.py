"""Pixel conversions consumers need (no ROS)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .layout import FrameInfo, PixelFormat

__all__ = ["grey_roi"]


def grey_roi(array: np.ndarray, info: FrameInfo) -> NDArray[np.uint8]:
    """Contiguous ``(h, w)`` uint8 copy of a frame's ultrasound ROI, whatever its format."""
    x, y, w, h = info.roi
    if w == 0 or h == 0:
        x, y, w, h = 0, 0, info.width, info.height
    a = array[y : y + h, x : x + w]
    fmt = info.pixel_format
    if fmt in (PixelFormat.MONO8, PixelFormat.LABEL8):
        return np.array(a, dtype=np.uint8, copy=True)
    if fmt is PixelFormat.MONO16:
        return (a >> 8).astype(np.uint8)
    if fmt is PixelFormat.UYVY:
        return np.array(a[..., 1], dtype=np.uint8, copy=True)  # luma
    if fmt in (PixelFormat.BGR8, PixelFormat.BGRA8):
        b, g, r = (a[..., i].astype(np.float32) for i in range(3))
        return np.clip(0.114 * b + 0.587 * g + 0.299 * r + 0.5, 0, 255).astype(np.uint8)
    if fmt is PixelFormat.FLOAT32:
        return np.clip(a, 0, 255).astype(np.uint8)
    raise ValueError(f"cannot segment pixel format {fmt.label}")
