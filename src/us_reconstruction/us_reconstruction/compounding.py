"""Freehand 3D compounding: paste tracked 2D ultrasound frames into a voxel volume.

Pure Python + numpy + numba (no rclpy). The frame geometry follows PLUS: a pixel
``(u = column, v = row)`` px maps into world mm through ``T_world_image`` (4x4, pixel
spacing included), ``p_world = T_world_image @ (u, v, 0, 1)``. The volume lives on a
:class:`~us_reconstruction.grid.VolumeGrid` (voxel ``[i, j, k]``, ``T_world_voxel``).

Methods (``Compounder``):

* **Interpolation** (how a pixel reaches voxels): ``"nearest"`` adds the pixel to the voxel
  whose centre is nearest (weight 1); ``"linear"`` splats it trilinearly onto the 8
  voxels around it, voxel ``(i, j, k)`` getting weight ``(1-|fx-i|)(1-|fy-j|)(1-|fz-k|)``
  where ``(fx, fy, fz)`` is the pixel's continuous voxel index.
* **Compounding** (how contributions to one voxel combine): ``"mean"`` = weighted mean of
  all contributions; ``"max"`` = maximum pixel value of any contribution with weight > 0;
  ``"latest"`` = the most recent frame touching the voxel wins (within that frame, the
  weighted mean of its pixels).
* **Labels**: with a per-pixel class image, each class accumulates the same weights as the
  intensity (a vote), so ``label_fraction(c)`` is the weighted fraction of contributions
  voting for class ``c`` (in every compounding mode; in ``"latest"`` only the latest
  frame votes).
* **Clipping**: pixels outside the ROI rectangle or outside a :class:`FanGeometry` sector
  are ignored.
* **Auto-grow**: a frame reaching outside the grid grows it by whole voxels (existing data
  keep their world position), up to ``max_voxels``.
* **Hole filling** (:meth:`Compounder.fill_holes`): like PLUS's hole filling, an unfilled
  voxel gets the inverse-distance weighted mean of the filled voxels in a cube of radius
  1, 2, ... ``max_radius_vox`` voxels (the first radius where at least ``min_fraction`` of
  the neighbours are filled).

The inner loops are numba ``@njit(cache=True, nogil=True)`` kernels (single thread, the GIL
is released while they run). Consecutive pixels of a row mostly hit the same voxel / cell,
so the kernels sum runs of them in registers and write each run once. The first call
compiles them (6-8 s here; cached on disk afterwards, 0.3-0.5 s to load); :func:`warmup`
does it up front. Without numba the same kernels run as plain Python (correct but orders of
magnitude slower; a RuntimeWarning says so).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from us_acquisition.jit import HAVE_NUMBA
from us_acquisition.jit import jit as _jit
from us_acquisition.jit import jit_inline as _jit_inline

from us_reconstruction.grid import VolumeGrid, image_roi_corners

__all__ = [
    "HAVE_NUMBA",
    "Compounder",
    "FanGeometry",
    "InsertStats",
    "compound_numpy_baseline",
    "warmup",
]

Interpolation = Literal["nearest", "linear"]
Compounding = Literal["mean", "max", "latest"]

_MODES = {"mean": 0, "max": 1, "latest": 2}
_INTERPOLATIONS = ("nearest", "linear")
#: Weight given to hole-filled voxels: a real pixel contribution later outweighs it 10^4:1.
_HOLE_WEIGHT = 1e-4


if not HAVE_NUMBA:  # pragma: no cover
    warnings.warn(
        "numba is not installed: compounding runs as plain Python (very slow)",
        RuntimeWarning,
        stacklevel=1,
    )


# --------------------------------------------------------------------------------------
# kernels (numba). Volumes are flat float32 arrays of nx*ny*nz voxels, index
# (i * ny + j) * nz + k; lab is (num_classes, nx*ny*nz).


@_jit_inline
def _accumulate(
    idx: int,
    val: float,
    w: float,
    mode: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    frame_id: int,
    lab: npt.NDArray[np.float32],
    cls: int,
) -> None:
    if mode == 0:  # mean
        acc[idx] += w * val
        wsum[idx] += w
    elif mode == 1:  # max
        if wsum[idx] == 0.0 or val > acc[idx]:
            acc[idx] = val
        wsum[idx] += w
    else:  # latest
        if stamp[idx] != frame_id:
            stamp[idx] = frame_id
            acc[idx] = 0.0
            wsum[idx] = 0.0
            if lab.shape[1] == acc.shape[0]:
                for c in range(lab.shape[0]):
                    lab[c, idx] = 0.0
        acc[idx] += w * val
        wsum[idx] += w
    if cls >= 0:
        lab[cls, idx] += w


@_jit
def _insert_nearest(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    use_mask: bool,
    labels: npt.NDArray[np.uint8],
    use_labels: bool,
    M: npt.NDArray[np.float64],
    u0: int,
    v0: int,
    u1: int,
    v1: int,
    nx: int,
    ny: int,
    nz: int,
    mode: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    frame_id: int,
    lab: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """Nearest-voxel insertion of pixels u0<=u<u1, v0<=v<v1; returns (used, outside)."""
    used = 0
    outside = 0
    ncls = lab.shape[0]
    for v in range(v0, v1):
        bx = M[0, 1] * v + M[0, 3] + 0.5
        by = M[1, 1] * v + M[1, 3] + 0.5
        bz = M[2, 1] * v + M[2, 3] + 0.5
        for u in range(u0, u1):
            if use_mask and mask[v, u] == 0:
                continue
            fx = bx + M[0, 0] * u
            fy = by + M[1, 0] * u
            fz = bz + M[2, 0] * u
            if fx < 0.0 or fy < 0.0 or fz < 0.0:
                outside += 1
                continue
            ix = int(fx)
            iy = int(fy)
            iz = int(fz)
            if ix >= nx or iy >= ny or iz >= nz:
                outside += 1
                continue
            idx = (ix * ny + iy) * nz + iz
            cls = -1
            if use_labels:
                cls = int(labels[v, u])
                if cls >= ncls:
                    cls = -1
            _accumulate(idx, float(image[v, u]), 1.0, mode, acc, wsum, stamp, frame_id, lab, cls)
            used += 1
    return used, outside


@_jit
def _insert_linear(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    use_mask: bool,
    labels: npt.NDArray[np.uint8],
    use_labels: bool,
    M: npt.NDArray[np.float64],
    u0: int,
    v0: int,
    u1: int,
    v1: int,
    nx: int,
    ny: int,
    nz: int,
    mode: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    frame_id: int,
    lab: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """Trilinear splatting of pixels u0<=u<u1, v0<=v<v1; returns (used, outside).

    A pixel is *outside* when none of its 8 neighbour voxels is in the grid; neighbours
    outside the grid are dropped (their weight is lost).
    """
    used = 0
    outside = 0
    ncls = lab.shape[0]
    for v in range(v0, v1):
        bx = M[0, 1] * v + M[0, 3]
        by = M[1, 1] * v + M[1, 3]
        bz = M[2, 1] * v + M[2, 3]
        for u in range(u0, u1):
            if use_mask and mask[v, u] == 0:
                continue
            fx = bx + M[0, 0] * u
            fy = by + M[1, 0] * u
            fz = bz + M[2, 0] * u
            if fx <= -1.0 or fy <= -1.0 or fz <= -1.0 or fx >= nx or fy >= ny or fz >= nz:
                outside += 1
                continue
            ix = int(fx + 1.0) - 1  # floor for fx > -1
            iy = int(fy + 1.0) - 1
            iz = int(fz + 1.0) - 1
            dx = fx - ix
            dy = fy - iy
            dz = fz - iz
            val = float(image[v, u])
            cls = -1
            if use_labels:
                cls = int(labels[v, u])
                if cls >= ncls:
                    cls = -1
            inner = ix >= 0 and iy >= 0 and iz >= 0 and ix < nx - 1 and iy < ny - 1
            inner = inner and iz < nz - 1
            for a in range(2):
                wx = dx if a == 1 else 1.0 - dx
                if wx <= 0.0:
                    continue
                jx = ix + a
                if not inner and (jx < 0 or jx >= nx):
                    continue
                for b in range(2):
                    wy = dy if b == 1 else 1.0 - dy
                    if wy <= 0.0:
                        continue
                    jy = iy + b
                    if not inner and (jy < 0 or jy >= ny):
                        continue
                    wxy = wx * wy
                    base = (jx * ny + jy) * nz
                    for c in range(2):
                        wz = dz if c == 1 else 1.0 - dz
                        if wz <= 0.0:
                            continue
                        jz = iz + c
                        if not inner and (jz < 0 or jz >= nz):
                            continue
                        _accumulate(
                            base + jz, val, wxy * wz, mode, acc, wsum, stamp, frame_id, lab, cls
                        )
            used += 1
    return used, outside


@_jit_inline
def _flush(
    j: int,
    s: float,
    w: float,
    m: float,
    mode: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    frame_id: int,
    lab: npt.NDArray[np.float32],
    use_labels: bool,
    runlab: npt.NDArray[np.float64],
    k: int,
) -> None:
    """Write the sums of a run of pixels (weight w > 0) into voxel j, as ``_accumulate``
    would have done pixel by pixel: s = sum(w_p * value), m = max value, runlab[c, k] =
    label weights."""
    if mode == 0:
        acc[j] += s
        wsum[j] += w
    elif mode == 1:
        if wsum[j] == 0.0 or m > acc[j]:
            acc[j] = m
        wsum[j] += w
    else:
        if stamp[j] != frame_id:
            stamp[j] = frame_id
            acc[j] = 0.0
            wsum[j] = 0.0
            if lab.shape[1] == acc.shape[0]:
                for c in range(lab.shape[0]):
                    lab[c, j] = 0.0
        acc[j] += s
        wsum[j] += w
    if use_labels:
        for c in range(lab.shape[0]):
            lab[c, j] += runlab[c, k]


@_jit
def _insert_nearest_runs(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    use_mask: bool,
    labels: npt.NDArray[np.uint8],
    use_labels: bool,
    M: npt.NDArray[np.float64],
    u0: int,
    v0: int,
    u1: int,
    v1: int,
    nx: int,
    ny: int,
    nz: int,
    mode: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    frame_id: int,
    lab: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """Nearest-voxel insertion, same result as ``_insert_nearest`` (up to float rounding).

    Consecutive pixels of a row usually hit the same voxel (pixels are ~5x smaller than
    voxels): their sum / count / max / label votes are kept in registers and written once
    per run of equal voxels (exact for every mode: within one frame LATEST is a mean).
    """
    used = 0
    outside = 0
    ncls = lab.shape[0]
    run_lab = np.zeros((ncls, 1), dtype=np.float64)
    cur = -1
    run_s = 0.0
    run_w = 0.0
    run_m = 0.0
    for v in range(v0, v1):
        bx = M[0, 1] * v + M[0, 3] + 0.5
        by = M[1, 1] * v + M[1, 3] + 0.5
        bz = M[2, 1] * v + M[2, 3] + 0.5
        for u in range(u0, u1):
            if use_mask and mask[v, u] == 0:
                continue
            fx = bx + M[0, 0] * u
            fy = by + M[1, 0] * u
            fz = bz + M[2, 0] * u
            if fx < 0.0 or fy < 0.0 or fz < 0.0:
                outside += 1
                continue
            ix = int(fx)
            iy = int(fy)
            iz = int(fz)
            if ix >= nx or iy >= ny or iz >= nz:
                outside += 1
                continue
            idx = (ix * ny + iy) * nz + iz
            if idx != cur:
                if cur >= 0:
                    _flush(cur, run_s, run_w, run_m, mode, acc, wsum, stamp, frame_id, lab,
                           use_labels, run_lab, 0)  # fmt: skip
                    if use_labels:
                        for c in range(ncls):
                            run_lab[c, 0] = 0.0
                cur = idx
                run_s = 0.0
                run_w = 0.0
                run_m = 0.0
            val = float(image[v, u])
            run_s += val
            run_w += 1.0
            if val > run_m:
                run_m = val
            if use_labels:
                cls = int(labels[v, u])
                if cls < ncls:
                    run_lab[cls, 0] += 1.0
            used += 1
    if cur >= 0:
        _flush(cur, run_s, run_w, run_m, mode, acc, wsum, stamp, frame_id, lab, use_labels,
               run_lab, 0)  # fmt: skip
    return used, outside


@_jit
def _insert_linear_runs(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    use_mask: bool,
    labels: npt.NDArray[np.uint8],
    use_labels: bool,
    M: npt.NDArray[np.float64],
    u0: int,
    v0: int,
    u1: int,
    v1: int,
    nx: int,
    ny: int,
    nz: int,
    mode: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    frame_id: int,
    lab: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """Trilinear splatting, same result as ``_insert_linear`` (up to float rounding).

    Pixels whose 8 neighbours are inside the grid and that fall in the same cell as the
    previous pixel are accumulated per corner (weighted sum, weight, max over pixels with
    weight > 0, label weights) and written once per run; border cells go pixel by pixel.
    """
    used = 0
    outside = 0
    ncls = lab.shape[0]
    s8 = np.zeros(8, dtype=np.float64)
    w8 = np.zeros(8, dtype=np.float64)
    m8 = np.zeros(8, dtype=np.float64)
    wk = np.zeros(8, dtype=np.float64)
    l8 = np.zeros((ncls, 8), dtype=np.float64)
    offs = np.zeros(8, dtype=np.int64)
    for a in range(2):
        for b in range(2):
            for c in range(2):
                offs[a * 4 + b * 2 + c] = (a * ny + b) * nz + c
    cur = -1
    for v in range(v0, v1):
        bx = M[0, 1] * v + M[0, 3]
        by = M[1, 1] * v + M[1, 3]
        bz = M[2, 1] * v + M[2, 3]
        for u in range(u0, u1):
            if use_mask and mask[v, u] == 0:
                continue
            fx = bx + M[0, 0] * u
            fy = by + M[1, 0] * u
            fz = bz + M[2, 0] * u
            if fx <= -1.0 or fy <= -1.0 or fz <= -1.0 or fx >= nx or fy >= ny or fz >= nz:
                outside += 1
                continue
            ix = int(fx + 1.0) - 1
            iy = int(fy + 1.0) - 1
            iz = int(fz + 1.0) - 1
            dx = fx - ix
            dy = fy - iy
            dz = fz - iz
            val = float(image[v, u])
            cls = -1
            if use_labels:
                cls = int(labels[v, u])
                if cls >= ncls:
                    cls = -1
            used += 1
            if ix < 0 or iy < 0 or iz < 0 or ix >= nx - 1 or iy >= ny - 1 or iz >= nz - 1:
                # border cell: per-neighbour bounds checks, no run
                for a in range(2):
                    jx = ix + a
                    wx = dx if a == 1 else 1.0 - dx
                    if jx < 0 or jx >= nx or wx <= 0.0:
                        continue
                    for b in range(2):
                        jy = iy + b
                        wy = dy if b == 1 else 1.0 - dy
                        if jy < 0 or jy >= ny or wy <= 0.0:
                            continue
                        for c in range(2):
                            jz = iz + c
                            wz = dz if c == 1 else 1.0 - dz
                            if jz < 0 or jz >= nz or wz <= 0.0:
                                continue
                            _accumulate((jx * ny + jy) * nz + jz, val, wx * wy * wz, mode, acc,
                                        wsum, stamp, frame_id, lab, cls)  # fmt: skip
                continue
            base = (ix * ny + iy) * nz + iz
            if base != cur:
                if cur >= 0:
                    for k in range(8):
                        if w8[k] > 0.0:
                            _flush(cur + offs[k], s8[k], w8[k], m8[k], mode, acc, wsum, stamp,
                                   frame_id, lab, use_labels, l8, k)  # fmt: skip
                        s8[k] = 0.0
                        w8[k] = 0.0
                        m8[k] = 0.0
                    if use_labels:
                        for c in range(ncls):
                            for k in range(8):
                                l8[c, k] = 0.0
                cur = base
            ex = 1.0 - dx
            ey = 1.0 - dy
            ez = 1.0 - dz
            wk[0] = ex * ey * ez
            wk[1] = ex * ey * dz
            wk[2] = ex * dy * ez
            wk[3] = ex * dy * dz
            wk[4] = dx * ey * ez
            wk[5] = dx * ey * dz
            wk[6] = dx * dy * ez
            wk[7] = dx * dy * dz
            for k in range(8):
                s8[k] += wk[k] * val
                w8[k] += wk[k]
            if mode == 1:
                for k in range(8):
                    if wk[k] > 0.0 and val > m8[k]:
                        m8[k] = val
            if cls >= 0:
                for k in range(8):
                    l8[cls, k] += wk[k]
    if cur >= 0:
        for k in range(8):
            if w8[k] > 0.0:
                _flush(cur + offs[k], s8[k], w8[k], m8[k], mode, acc, wsum, stamp, frame_id,
                       lab, use_labels, l8, k)  # fmt: skip
    return used, outside


@_jit
def _insert_nearest_mean(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    use_mask: bool,
    labels: npt.NDArray[np.uint8],
    use_labels: bool,
    M: npt.NDArray[np.float64],
    u0: int,
    v0: int,
    u1: int,
    v1: int,
    nx: int,
    ny: int,
    nz: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    lab: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """MEAN-only twin of ``_insert_nearest_runs`` (mode 0), without the per-mode branches
    (the common case; measured ~1.5-2x faster than the general run kernel)."""
    used = 0
    outside = 0
    ncls = lab.shape[0]
    run_lab = np.zeros(ncls, dtype=np.float64)
    cur = -1
    run_s = 0.0
    run_w = 0.0
    for v in range(v0, v1):
        bx = M[0, 1] * v + M[0, 3] + 0.5
        by = M[1, 1] * v + M[1, 3] + 0.5
        bz = M[2, 1] * v + M[2, 3] + 0.5
        for u in range(u0, u1):
            if use_mask and mask[v, u] == 0:
                continue
            fx = bx + M[0, 0] * u
            fy = by + M[1, 0] * u
            fz = bz + M[2, 0] * u
            if fx < 0.0 or fy < 0.0 or fz < 0.0:
                outside += 1
                continue
            ix = int(fx)
            iy = int(fy)
            iz = int(fz)
            if ix >= nx or iy >= ny or iz >= nz:
                outside += 1
                continue
            idx = (ix * ny + iy) * nz + iz
            if idx != cur:
                if cur >= 0:
                    acc[cur] += run_s
                    wsum[cur] += run_w
                    if use_labels:
                        for c in range(ncls):
                            lab[c, cur] += run_lab[c]
                            run_lab[c] = 0.0
                cur = idx
                run_s = 0.0
                run_w = 0.0
            run_s += float(image[v, u])
            run_w += 1.0
            if use_labels:
                cls = int(labels[v, u])
                if cls < ncls:
                    run_lab[cls] += 1.0
            used += 1
    if cur >= 0:
        acc[cur] += run_s
        wsum[cur] += run_w
        if use_labels:
            for c in range(ncls):
                lab[c, cur] += run_lab[c]
    return used, outside


@_jit
def _insert_linear_mean(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    use_mask: bool,
    labels: npt.NDArray[np.uint8],
    use_labels: bool,
    M: npt.NDArray[np.float64],
    u0: int,
    v0: int,
    u1: int,
    v1: int,
    nx: int,
    ny: int,
    nz: int,
    acc: npt.NDArray[np.float32],
    wsum: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.int32],
    lab: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """MEAN-only twin of ``_insert_linear_runs`` (mode 0): zero weights need no test in a
    mean, so the 8 corner sums are written unconditionally (measured ~2.3x faster than the
    general run kernel)."""
    used = 0
    outside = 0
    ncls = lab.shape[0]
    s8 = np.zeros(8, dtype=np.float64)
    w8 = np.zeros(8, dtype=np.float64)
    wk = np.zeros(8, dtype=np.float64)
    l8 = np.zeros((ncls, 8), dtype=np.float64)
    offs = np.zeros(8, dtype=np.int64)
    for a in range(2):
        for b in range(2):
            for c in range(2):
                offs[a * 4 + b * 2 + c] = (a * ny + b) * nz + c
    cur = -1
    for v in range(v0, v1):
        bx = M[0, 1] * v + M[0, 3]
        by = M[1, 1] * v + M[1, 3]
        bz = M[2, 1] * v + M[2, 3]
        for u in range(u0, u1):
            if use_mask and mask[v, u] == 0:
                continue
            fx = bx + M[0, 0] * u
            fy = by + M[1, 0] * u
            fz = bz + M[2, 0] * u
            if fx <= -1.0 or fy <= -1.0 or fz <= -1.0 or fx >= nx or fy >= ny or fz >= nz:
                outside += 1
                continue
            ix = int(fx + 1.0) - 1
            iy = int(fy + 1.0) - 1
            iz = int(fz + 1.0) - 1
            dx = fx - ix
            dy = fy - iy
            dz = fz - iz
            val = float(image[v, u])
            cls = -1
            if use_labels:
                cls = int(labels[v, u])
                if cls >= ncls:
                    cls = -1
            used += 1
            if ix < 0 or iy < 0 or iz < 0 or ix >= nx - 1 or iy >= ny - 1 or iz >= nz - 1:
                for a in range(2):
                    jx = ix + a
                    wx = dx if a == 1 else 1.0 - dx
                    if jx < 0 or jx >= nx or wx <= 0.0:
                        continue
                    for b in range(2):
                        jy = iy + b
                        wy = dy if b == 1 else 1.0 - dy
                        if jy < 0 or jy >= ny or wy <= 0.0:
                            continue
                        for c in range(2):
                            jz = iz + c
                            wz = dz if c == 1 else 1.0 - dz
                            if jz < 0 or jz >= nz or wz <= 0.0:
                                continue
                            _accumulate((jx * ny + jy) * nz + jz, val, wx * wy * wz, 0, acc,
                                        wsum, stamp, 0, lab, cls)  # fmt: skip
                continue
            base = (ix * ny + iy) * nz + iz
            if base != cur:
                if cur >= 0:
                    for k in range(8):
                        acc[cur + offs[k]] += s8[k]
                        wsum[cur + offs[k]] += w8[k]
                        s8[k] = 0.0
                        w8[k] = 0.0
                    if use_labels:
                        for c in range(ncls):
                            for k in range(8):
                                lab[c, cur + offs[k]] += l8[c, k]
                                l8[c, k] = 0.0
                cur = base
            ex = 1.0 - dx
            ey = 1.0 - dy
            ez = 1.0 - dz
            wk[0] = ex * ey * ez
            wk[1] = ex * ey * dz
            wk[2] = ex * dy * ez
            wk[3] = ex * dy * dz
            wk[4] = dx * ey * ez
            wk[5] = dx * ey * dz
            wk[6] = dx * dy * ez
            wk[7] = dx * dy * dz
            for k in range(8):
                s8[k] += wk[k] * val
                w8[k] += wk[k]
            if cls >= 0:
                for k in range(8):
                    l8[cls, k] += wk[k]
    if cur >= 0:
        for k in range(8):
            acc[cur + offs[k]] += s8[k]
            wsum[cur + offs[k]] += w8[k]
        if use_labels:
            for c in range(ncls):
                for k in range(8):
                    lab[c, cur + offs[k]] += l8[c, k]
    return used, outside


@_jit
def _fill_holes_kernel(
    values: npt.NDArray[np.float32],
    filled: npt.NDArray[np.bool_],
    max_radius: int,
    min_fraction: float,
    out: npt.NDArray[np.float32],
    newly: npt.NDArray[np.bool_],
) -> int:
    """values (C, nx, ny, nz); writes filled-in values into out and marks newly."""
    nc = values.shape[0]
    nx = filled.shape[0]
    ny = filled.shape[1]
    nz = filled.shape[2]
    accum = np.zeros(nc, dtype=np.float64)
    count = 0
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if filled[i, j, k]:
                    continue
                for r in range(1, max_radius + 1):
                    total = 0
                    nfilled = 0
                    wtot = 0.0
                    for c in range(nc):
                        accum[c] = 0.0
                    for a in range(max(0, i - r), min(nx, i + r + 1)):
                        for b in range(max(0, j - r), min(ny, j + r + 1)):
                            for d in range(max(0, k - r), min(nz, k + r + 1)):
                                if a == i and b == j and d == k:
                                    continue
                                total += 1
                                if filled[a, b, d]:
                                    nfilled += 1
                                    dist2 = (a - i) ** 2 + (b - j) ** 2 + (d - k) ** 2
                                    w = 1.0 / math.sqrt(dist2)
                                    wtot += w
                                    for c in range(nc):
                                        accum[c] += w * values[c, a, b, d]
                    if nfilled > 0 and nfilled >= min_fraction * total:
                        for c in range(nc):
                            out[c, i, j, k] = accum[c] / wtot
                        newly[i, j, k] = True
                        count += 1
                        break
    return count


# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanGeometry:
    """A sector (curvilinear / phased-array) image region, in pixels.

    The apex ``(apex_u_px, apex_v_px)`` is the fan origin (column, row; may lie above the
    image). Angles are measured at the apex from the image's +v axis (straight down the
    image, depth direction), positive towards +u (to the right), in degrees, as PLUS's
    ``FanAnglesDeg``. A pixel is inside when its angle is within
    ``[angle_start_deg, angle_stop_deg]`` and its distance from the apex (px, assuming
    square pixels) is within ``[radius_start_px, radius_stop_px]``.
    """

    apex_u_px: float
    apex_v_px: float
    radius_start_px: float
    radius_stop_px: float
    angle_start_deg: float
    angle_stop_deg: float

    def __post_init__(self) -> None:
        vals = (
            self.apex_u_px,
            self.apex_v_px,
            self.radius_start_px,
            self.radius_stop_px,
            self.angle_start_deg,
            self.angle_stop_deg,
        )
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"fan geometry values must be finite: {self}")
        if self.radius_start_px < 0 or self.radius_stop_px <= self.radius_start_px:
            raise ValueError("fan radii need 0 <= radius_start_px < radius_stop_px")
        if not -90.0 <= min(self.angle_start_deg, self.angle_stop_deg) < 90.0:
            raise ValueError("fan angles must be within [-90, 90] deg")
        if max(self.angle_start_deg, self.angle_stop_deg) > 90.0:
            raise ValueError("fan angles must be within [-90, 90] deg")

    def mask(self, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
        """``(H, W)`` bool: True for pixels inside the fan."""
        h, w = int(shape[0]), int(shape[1])
        v, u = np.mgrid[0:h, 0:w]
        x = u - self.apex_u_px
        y = v - self.apex_v_px
        r = np.hypot(x, y)
        ang = np.degrees(np.arctan2(x, y))
        lo = min(self.angle_start_deg, self.angle_stop_deg)
        hi = max(self.angle_start_deg, self.angle_stop_deg)
        inside = (y >= 0) & (ang >= lo) & (ang <= hi)
        inside &= (r >= self.radius_start_px) & (r <= self.radius_stop_px)
        return np.asarray(inside)


@dataclass
class InsertStats:
    """What :meth:`Compounder.insert` did with one frame.

    Attributes:
        inserted: False when the frame was skipped entirely (see ``reason``).
        pixels_used: pixels (inside ROI/fan) that reached at least one voxel.
        pixels_outside: pixels (inside ROI/fan) that fell outside the grid and were dropped.
        grew: True when the grid was grown (or created) for this frame.
        reason: why the frame was skipped or partly dropped; ``""`` when all went in.
        seconds: wall time of the call (s).
    """

    inserted: bool
    pixels_used: int = 0
    pixels_outside: int = 0
    grew: bool = False
    reason: str = ""
    seconds: float = 0.0


_EMPTY_U8: npt.NDArray[np.uint8] = np.zeros((1, 1), dtype=np.uint8)
_EMPTY_I32: npt.NDArray[np.int32] = np.zeros(1, dtype=np.int32)
_EMPTY_LAB: npt.NDArray[np.float32] = np.zeros((1, 1), dtype=np.float32)


class Compounder:
    """Compounds tracked 2D frames (and optional label images) into a 3D volume.

    Not thread-safe: one thread inserts; others read copies (:meth:`snapshot`).

    Args:
        grid: the output grid; ``None`` = created around the first frame (``spacing_mm``,
            ``grow_margin_mm`` around it), which requires ``auto_grow`` or a later fixed
            grid being acceptable.
        spacing_mm: voxel size (mm) of a grid created here (one value or three).
        interpolation: ``"nearest"`` or ``"linear"`` (trilinear splatting).
        compounding: ``"mean"``, ``"max"`` or ``"latest"``.
        num_classes: label classes 0..num_classes-1 accumulated from label images (larger
            label values are ignored).
        roi: ``(x, y, w, h)`` px image rectangle used; ``None`` = whole image.
        fan: sector mask of curvilinear probes; ``None`` = no fan clipping.
        auto_grow: grow the grid when a frame reaches outside it.
        max_voxels: the grid never grows beyond this many voxels (memory guard: each voxel
            costs 8 bytes + 4 per label class, + 4 in ``"latest"`` mode).
        grow_margin_mm: extra room added on each grown side (mm), so that a sweep does not
            reallocate every frame.
    """

    def __init__(
        self,
        grid: VolumeGrid | None = None,
        spacing_mm: float | Sequence[float] = 0.5,
        interpolation: Interpolation = "nearest",
        compounding: Compounding = "mean",
        num_classes: int = 2,
        roi: tuple[int, int, int, int] | None = None,
        fan: FanGeometry | None = None,
        auto_grow: bool = True,
        max_voxels: int = 50_000_000,
        grow_margin_mm: float = 10.0,
    ) -> None:
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}"
            )
        if compounding not in _MODES:
            raise ValueError(f"compounding must be one of {tuple(_MODES)}, got {compounding!r}")
        if num_classes < 1 or num_classes > 255:
            raise ValueError(f"num_classes must be in 1..255, got {num_classes}")
        if max_voxels < 1:
            raise ValueError("max_voxels must be >= 1")
        if grow_margin_mm < 0:
            raise ValueError("grow_margin_mm must be >= 0")
        sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
        if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
            raise ValueError(f"spacing_mm must be > 0, got {spacing_mm}")
        if roi is not None:
            if len(roi) != 4 or roi[2] <= 0 or roi[3] <= 0:
                raise ValueError(f"roi must be (x, y, w, h) with w, h > 0, got {roi}")
            roi = (int(roi[0]), int(roi[1]), int(roi[2]), int(roi[3]))
        if grid is not None and grid.num_voxels > max_voxels:
            raise ValueError(
                f"grid has {grid.num_voxels} voxels, more than max_voxels={max_voxels}"
            )
        self.interpolation: Interpolation = interpolation
        self.compounding: Compounding = compounding
        self.num_classes = int(num_classes)
        self.roi = roi
        self.fan = fan
        self.auto_grow = bool(auto_grow)
        self.max_voxels = int(max_voxels)
        self.grow_margin_mm = float(grow_margin_mm)
        self.spacing_mm = (float(sp[0]), float(sp[1]), float(sp[2]))
        self._initial_grid = grid
        self._mode = _MODES[compounding]
        self._mask_cache: dict[tuple[int, int], npt.NDArray[np.uint8] | None] = {}
        self.frames_inserted = 0
        self.frames_skipped = 0
        self._frame_id = 0
        self.grid: VolumeGrid | None = None
        self._acc: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._wsum: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._stamp: npt.NDArray[np.int32] = _EMPTY_I32
        self._lab: npt.NDArray[np.float32] | None = None
        if grid is not None:
            self._allocate(grid)

    # ----------------------------------------------------------------------------------
    # state

    def _allocate(self, grid: VolumeGrid) -> None:
        self.grid = grid
        self._acc = np.zeros(grid.dims, dtype=np.float32)
        self._wsum = np.zeros(grid.dims, dtype=np.float32)
        self._stamp = np.full(grid.dims, -1, dtype=np.int32) if self._mode == 2 else _EMPTY_I32
        self._lab = None

    def reset(self, keep_grid: bool = True) -> None:
        """Clear all data. ``keep_grid=False`` also returns to the constructor's grid
        (``None`` = the next frame creates a new one)."""
        self.frames_inserted = 0
        self.frames_skipped = 0
        self._frame_id = 0
        if keep_grid and self.grid is not None:
            self._allocate(self.grid)
        elif self._initial_grid is not None:
            self._allocate(self._initial_grid)
        else:
            self.grid = None
            self._acc = np.zeros(0, dtype=np.float32)
            self._wsum = np.zeros(0, dtype=np.float32)
            self._stamp = _EMPTY_I32
            self._lab = None

    def _clip_mask(self, shape: tuple[int, int]) -> npt.NDArray[np.uint8] | None:
        """(H, W) uint8 fan mask for this image size (cached), None without a fan."""
        if self.fan is None:
            return None
        if shape not in self._mask_cache:
            self._mask_cache[shape] = self.fan.mask(shape).astype(np.uint8)
        return self._mask_cache[shape]

    def _pixel_range(self, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """(u0, v0, u1, v1) px half-open pixel range of the ROI ∩ fan bounding box."""
        h, w = shape
        u0, v0, u1, v1 = 0, 0, w, h
        if self.roi is not None:
            x, y, rw, rh = self.roi
            u0, v0, u1, v1 = max(0, x), max(0, y), min(w, x + rw), min(h, y + rh)
        mask = self._clip_mask(shape)
        if mask is not None:
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            if rows.size == 0:
                return None
            u0, u1 = max(u0, int(cols[0])), min(u1, int(cols[-1]) + 1)
            v0, v1 = max(v0, int(rows[0])), min(v1, int(rows[-1]) + 1)
        if u1 <= u0 or v1 <= v0:
            return None
        return u0, v0, u1, v1

    # ----------------------------------------------------------------------------------
    # growing

    def _frame_index_bounds(
        self, grid: VolumeGrid, T_world_image: npt.NDArray[np.float64], rng: tuple[int, ...]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        u0, v0, u1, v1 = rng
        corners = image_roi_corners((v1, u1), (u0, v0, u1 - u0, v1 - v0))
        world = corners @ T_world_image[:3, :2].T + T_world_image[:3, 3]
        idx = grid.world_to_index(world)
        return idx.min(axis=0), idx.max(axis=0)

    def _needed_range(
        self, lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Integer voxel index range a frame with continuous index bounds lo..hi touches."""
        if self.interpolation == "nearest":
            return np.floor(lo + 0.5).astype(np.int64), np.floor(hi + 0.5).astype(np.int64)
        return np.floor(lo).astype(np.int64), np.ceil(hi).astype(np.int64)

    def _create_grid(
        self, T_world_image: npt.NDArray[np.float64], rng: tuple[int, ...]
    ) -> VolumeGrid:
        u0, v0, u1, v1 = rng
        corners = image_roi_corners((v1, u1), (u0, v0, u1 - u0, v1 - v0))
        world = corners @ T_world_image[:3, :2].T + T_world_image[:3, 3]
        return VolumeGrid.from_bounds(
            world.min(axis=0), world.max(axis=0), self.spacing_mm, self.grow_margin_mm
        )

    def _grow(self, lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> str:
        """Grow the grid to include voxel indices lo..hi (+margin); returns "" or a reason."""
        assert self.grid is not None
        grid = self.grid
        dims = np.asarray(grid.dims, dtype=np.int64)
        margin = np.ceil(self.grow_margin_mm / np.asarray(grid.spacing_mm)).astype(np.int64)
        new_lo = np.minimum(0, np.where(lo < 0, lo - margin, 0))
        new_hi = np.maximum(dims - 1, np.where(hi > dims - 1, hi + margin, dims - 1))
        new_dims = new_hi - new_lo + 1
        total = int(np.prod(new_dims))
        if total > self.max_voxels:
            # try without the margin before giving up
            new_lo = np.minimum(0, lo)
            new_hi = np.maximum(dims - 1, hi)
            new_dims = new_hi - new_lo + 1
            total = int(np.prod(new_dims))
            if total > self.max_voxels:
                return (
                    f"grid not grown: {tuple(int(d) for d in new_dims)} = {total} voxels "
                    f"would exceed max_voxels={self.max_voxels}"
                )
        new_grid = grid.with_extent(new_lo, new_hi)
        off = -new_lo
        sl = tuple(slice(int(off[a]), int(off[a] + dims[a])) for a in range(3))
        acc = np.zeros(new_grid.dims, dtype=np.float32)
        acc[sl] = self._acc
        wsum = np.zeros(new_grid.dims, dtype=np.float32)
        wsum[sl] = self._wsum
        if self._mode == 2:
            stamp = np.full(new_grid.dims, -1, dtype=np.int32)
            stamp[sl] = self._stamp
            self._stamp = stamp
        if self._lab is not None:
            lab = np.zeros((self.num_classes, *new_grid.dims), dtype=np.float32)
            lab[(slice(None), *sl)] = self._lab
            self._lab = lab
        self._acc, self._wsum, self.grid = acc, wsum, new_grid
        return ""

    # ----------------------------------------------------------------------------------
    # insertion

    def insert(
        self,
        image: npt.NDArray[np.uint8],
        T_world_image: npt.ArrayLike,
        labels: npt.NDArray[np.uint8] | None = None,
    ) -> InsertStats:
        """Compound one frame.

        Args:
            image: ``(H, W)`` uint8 B-mode pixels.
            T_world_image: ``(4, 4)`` float64, world <- image: maps pixel
                ``(u=column, v=row, 0, 1)`` to world mm (pixel spacing included, PLUS
                convention ``T_reference_image``).
            labels: optional ``(H, W)`` uint8 class per pixel (0 = background), aligned
                with ``image``.

        Returns:
            :class:`InsertStats`. A frame with a non-finite or non-affine transform, or
            one entirely outside the ROI/fan, is skipped (``inserted=False`` + reason).
            Raises ValueError for wrong shapes/dtypes.
        """
        t0 = time.perf_counter()
        img = np.asarray(image)
        if img.ndim != 2 or img.dtype != np.uint8:
            raise ValueError(f"image must be (H, W) uint8, got {img.shape} {img.dtype}")
        T = np.asarray(T_world_image, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError(f"T_world_image must be 4x4, got {T.shape}")
        lab_img = _EMPTY_U8
        if labels is not None:
            lab_img = np.asarray(labels)
            if lab_img.shape != img.shape or lab_img.dtype != np.uint8:
                raise ValueError(
                    f"labels must be {img.shape} uint8 like the image, got "
                    f"{lab_img.shape} {lab_img.dtype}"
                )
        if not np.all(np.isfinite(T)) or not np.allclose(T[3], (0, 0, 0, 1)):
            self.frames_skipped += 1
            return InsertStats(
                False,
                reason="invalid (non-finite or non-affine) transform",
                seconds=time.perf_counter() - t0,
            )
        shape = (int(img.shape[0]), int(img.shape[1]))
        rng = self._pixel_range(shape)
        if rng is None:
            self.frames_skipped += 1
            return InsertStats(
                False,
                reason="ROI/fan leaves no pixel of this image",
                seconds=time.perf_counter() - t0,
            )
        grew = False
        reason = ""
        if self.grid is None:
            grid = self._create_grid(T, rng)
            if grid.num_voxels > self.max_voxels:
                self.frames_skipped += 1
                return InsertStats(
                    False,
                    reason=f"first frame needs a {grid.dims} grid, more than "
                    f"max_voxels={self.max_voxels}",
                    seconds=time.perf_counter() - t0,
                )
            self._allocate(grid)
            grew = True
        assert self.grid is not None
        if self.auto_grow:
            lo_f, hi_f = self._frame_index_bounds(self.grid, T, rng)
            lo, hi = self._needed_range(lo_f, hi_f)
            if np.any(lo < 0) or np.any(hi > np.asarray(self.grid.dims) - 1):
                reason = self._grow(lo, hi)
                grew = grew or not reason
        if labels is not None and self._lab is None:
            self._lab = np.zeros((self.num_classes, *self.grid.dims), dtype=np.float32)

        grid = self.grid
        M = np.ascontiguousarray((grid.T_voxel_world @ T)[:3])
        mask = self._clip_mask(shape)
        self._frame_id += 1
        n = grid.num_voxels
        lab_flat = self._lab.reshape(self.num_classes, n) if self._lab is not None else _EMPTY_LAB
        common = (
            np.ascontiguousarray(img),
            mask if mask is not None else _EMPTY_U8,
            mask is not None,
            np.ascontiguousarray(lab_img),
            labels is not None,
            M,
            rng[0],
            rng[1],
            rng[2],
            rng[3],
            grid.dims[0],
            grid.dims[1],
            grid.dims[2],
        )
        acc, wsum, stamp = self._acc.reshape(-1), self._wsum.reshape(-1), self._stamp.reshape(-1)
        if self._mode == 0 and self.interpolation == "nearest":
            used, outside = _insert_nearest_mean(*common, acc, wsum, lab_flat)
        elif self._mode == 0:
            used, outside = _insert_linear_mean(*common, acc, wsum, stamp, lab_flat)
        else:
            kernel = (
                _insert_nearest_runs if self.interpolation == "nearest" else _insert_linear_runs
            )
            used, outside = kernel(*common, self._mode, acc, wsum, stamp, self._frame_id, lab_flat)
        if used == 0:
            self.frames_skipped += 1
            reason = reason or "all pixels fell outside the grid"
        else:
            self.frames_inserted += 1
            if outside and not reason:
                reason = f"{outside} pixels outside the grid were dropped"
        return InsertStats(
            used > 0, int(used), int(outside), grew, reason, time.perf_counter() - t0
        )

    # ----------------------------------------------------------------------------------
    # results

    def _require_grid(self) -> VolumeGrid:
        if self.grid is None:
            raise RuntimeError("no grid yet: insert a frame first (or pass a grid)")
        return self.grid

    def filled_mask(self) -> npt.NDArray[np.bool_]:
        """``(nx, ny, nz)`` bool: voxels that received any contribution (or hole filling)."""
        self._require_grid()
        return np.asarray(self._wsum > 0)

    def weights(self) -> npt.NDArray[np.float32]:
        """``(nx, ny, nz)`` float32 accumulated weights (a copy)."""
        self._require_grid()
        return self._wsum.copy()

    def volume(
        self, dtype: type[np.floating[Any]] | type[np.uint8] = np.float32
    ) -> npt.NDArray[Any]:
        """The intensity volume ``(nx, ny, nz)`` (index ``[i, j, k]`` on :attr:`grid`).

        float32 by default (unfilled voxels 0); ``np.uint8`` rounds and clips to 0..255.
        """
        self._require_grid()
        if self._mode == 1:
            vol = self._acc.copy()
        else:
            vol = np.zeros_like(self._acc)
            np.divide(self._acc, self._wsum, out=vol, where=self._wsum > 0)
        if dtype == np.uint8:
            return np.clip(np.rint(vol), 0, 255).astype(np.uint8)
        return vol.astype(dtype, copy=False)

    def label_fraction(self, cls: int) -> npt.NDArray[np.float32]:
        """``(nx, ny, nz)`` float32 in 0..1: weighted fraction of label votes for ``cls``.

        0 where a voxel has no label votes (also when no label image was ever inserted).
        """
        grid = self._require_grid()
        if not 0 <= cls < self.num_classes:
            raise ValueError(f"class {cls} not in 0..{self.num_classes - 1}")
        if self._lab is None:
            return np.zeros(grid.dims, dtype=np.float32)
        total = self._lab.sum(axis=0)
        out = np.zeros(grid.dims, dtype=np.float32)
        np.divide(self._lab[cls], total, out=out, where=total > 0)
        return out

    def label_map(self, threshold: float = 0.5) -> npt.NDArray[np.uint8]:
        """``(nx, ny, nz)`` uint8 label volume: the class with the largest vote fraction
        where that fraction is >= ``threshold``, else 0 (background / no votes)."""
        grid = self._require_grid()
        if self._lab is None:
            return np.zeros(grid.dims, dtype=np.uint8)
        total = self._lab.sum(axis=0)
        best = np.argmax(self._lab, axis=0).astype(np.uint8)
        frac = np.zeros(grid.dims, dtype=np.float32)
        np.divide(np.max(self._lab, axis=0), total, out=frac, where=total > 0)
        best[(frac < threshold) | (total <= 0)] = 0
        return best

    def snapshot(self, downsample: int = 1) -> tuple[npt.NDArray[np.float32], VolumeGrid]:
        """A copy of the intensity volume, block-reduced by ``downsample`` (>= 1), and its
        grid. Blocks of ``downsample``^3 voxels become one (weighted mean for
        ``"mean"``/``"latest"``, maximum for ``"max"``); the result is safe to hand to
        another thread (e.g. for publishing)."""
        grid = self._require_grid()
        f = int(downsample)
        if f < 1:
            raise ValueError("downsample must be >= 1")
        if f == 1:
            return self.volume(), grid
        pad = [(0, (-n) % f) for n in grid.dims]
        shape = tuple(x for n, p in zip(grid.dims, pad, strict=True) for x in ((n + p[1]) // f, f))
        if self._mode == 1:
            vals = np.pad(self._acc, pad).reshape(shape)
            out = vals.max(axis=(1, 3, 5)).astype(np.float32)
        else:
            acc = np.pad(self._acc, pad).reshape(shape).sum(axis=(1, 3, 5))
            w = np.pad(self._wsum, pad).reshape(shape).sum(axis=(1, 3, 5))
            out = np.zeros(acc.shape, dtype=np.float32)
            np.divide(acc, w, out=out, where=w > 0)
        return out, grid.downsampled(f)

    # ----------------------------------------------------------------------------------
    def fill_holes(self, max_radius_vox: int = 2, min_fraction: float = 0.3) -> int:
        """Fill unfilled voxels from filled neighbours; returns the number filled.

        For each unfilled voxel, cubes of radius 1..``max_radius_vox`` voxels are tried in
        turn; at the first radius where at least ``min_fraction`` of the neighbours are
        filled, the voxel gets their inverse-distance weighted mean intensity (and label
        fractions). Only voxels filled before this call are used as sources. Filled-in
        voxels carry a tiny weight, so later real contributions replace them in "mean" and
        "latest" mode (in "max" mode only a larger value replaces the estimate).
        """
        grid = self._require_grid()
        if max_radius_vox < 1:
            raise ValueError("max_radius_vox must be >= 1")
        if not 0.0 < min_fraction <= 1.0:
            raise ValueError("min_fraction must be in (0, 1]")
        filled = self._wsum > 0
        channels = [self.volume()]
        if self._lab is not None:
            channels += [self.label_fraction(c) for c in range(self.num_classes)]
        values = np.ascontiguousarray(np.stack(channels))
        out = values.copy()
        newly = np.zeros(grid.dims, dtype=bool)
        count = int(
            _fill_holes_kernel(values, filled, int(max_radius_vox), float(min_fraction), out, newly)
        )
        if count:
            self._acc[newly] = out[0][newly] * (_HOLE_WEIGHT if self._mode != 1 else 1.0)
            self._wsum[newly] = _HOLE_WEIGHT
            if self._lab is not None:
                for c in range(self.num_classes):
                    self._lab[c][newly] = out[1 + c][newly] * _HOLE_WEIGHT
        return count


# --------------------------------------------------------------------------------------


def compound_numpy_baseline(
    image: npt.NDArray[np.uint8],
    T_world_image: npt.ArrayLike,
    grid: VolumeGrid,
    acc: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float64],
    roi: tuple[int, int, int, int] | None = None,
) -> int:
    """Straightforward numpy nearest-voxel MEAN compounding (benchmark peer only).

    Transforms every ROI pixel with one matrix product, rounds to voxel indices and
    accumulates with ``np.add.at`` into ``acc`` (sum of values) and ``weight`` (counts),
    both ``(nx, ny, nz)`` float64 on ``grid``. Returns the number of pixels used.
    """
    img = np.asarray(image)
    h, w = img.shape
    x0, y0, rw, rh = roi if roi is not None else (0, 0, w, h)
    v, u = np.mgrid[y0 : y0 + rh, x0 : x0 + rw]
    M = (grid.T_voxel_world @ np.asarray(T_world_image, dtype=np.float64))[:3]
    pix = np.stack([u.ravel(), v.ravel(), np.zeros(u.size), np.ones(u.size)])
    idx = np.floor(M @ pix + 0.5).astype(np.int64)
    dims = np.asarray(grid.dims)[:, None]
    ok = np.all((idx >= 0) & (idx < dims), axis=0)
    flat = np.ravel_multi_index(tuple(idx[:, ok]), grid.dims)
    vals = img[y0 : y0 + rh, x0 : x0 + rw].ravel()[ok].astype(np.float64)
    np.add.at(acc.reshape(-1), flat, vals)
    np.add.at(weight.reshape(-1), flat, 1.0)
    return int(ok.sum())


def warmup() -> float:
    """Compile (or load from the numba cache) every kernel; returns the seconds taken."""
    t0 = time.perf_counter()
    img = np.full((4, 4), 100, dtype=np.uint8)
    lab = np.ones((4, 4), dtype=np.uint8)
    T = np.eye(4)
    grid = VolumeGrid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (5, 5, 3))
    for interp in _INTERPOLATIONS:
        for mode in _MODES:
            c = Compounder(
                grid,
                interpolation=interp,  # type: ignore[arg-type]
                compounding=mode,  # type: ignore[arg-type]
                fan=FanGeometry(1.5, -1.0, 0.0, 10.0, -45.0, 45.0),
            )
            c.insert(img, T, lab)
            c.insert(img, T)
    c.fill_holes(1)
    return time.perf_counter() - t0
