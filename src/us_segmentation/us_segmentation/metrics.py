"""Segmentation metrics on binary masks (numpy/scipy). Distances in mm use the frame's
anisotropic pixel spacing ``(sx, sy)`` = (column, row) pitch in mm."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["dice", "hd95_mm", "surface_distances_mm"]


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks of equal shape; 1.0 when both are empty."""
    p, g = pred.astype(bool), gt.astype(bool)
    s = int(p.sum()) + int(g.sum())
    return 1.0 if s == 0 else 2.0 * int((p & g).sum()) / s


def _border(m: np.ndarray) -> np.ndarray:
    return m & ~ndimage.binary_erosion(m, border_value=0)


def surface_distances_mm(
    a: np.ndarray, b: np.ndarray, spacing_mm: tuple[float, float]
) -> np.ndarray:
    """Distances (mm, float64) from every border pixel of mask ``a`` (H, W) to the nearest
    border pixel of mask ``b``; both must be non-empty. ``spacing_mm = (sx, sy)``."""
    ba, bb = _border(a.astype(bool)), _border(b.astype(bool))
    dt = ndimage.distance_transform_edt(~bb, sampling=(spacing_mm[1], spacing_mm[0]))
    return np.asarray(dt[ba], np.float64)


def hd95_mm(pred: np.ndarray, gt: np.ndarray, spacing_mm: tuple[float, float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm between boundaries of two boolean
    (H, W) masks (max of the two directed 95th percentiles, as in MONAI). ``0.0`` when both
    masks are empty, ``inf`` when exactly one is empty."""
    p, g = pred.astype(bool), gt.astype(bool)
    if not p.any() and not g.any():
        return 0.0
    if not p.any() or not g.any():
        return float("inf")
    d1 = surface_distances_mm(p, g, spacing_mm)
    d2 = surface_distances_mm(g, p, spacing_mm)
    return float(max(np.percentile(d1, 95), np.percentile(d2, 95)))
