"""The voxel grid of a reconstructed volume.

A :class:`VolumeGrid` places a ``(nx, ny, nz)`` voxel array in the world (tracker /
reference) frame, in mm. Voxel ``(i, j, k)`` (array index ``[i, j, k]``, C order) has its
*centre* at::

    x_world = origin_mm + direction @ (spacing_mm * (i, j, k))

which is the 4x4 matrix :attr:`VolumeGrid.T_world_voxel` (maps voxel indices into world
mm). ``direction`` columns are the unit world directions of the i, j, k axes (identity by
default: i along world x, j along y, k along z). This is the ITK / NRRD / MetaImage
convention (origin = centre of the first voxel), so the grid is written to those formats
without any half-voxel shift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["VolumeGrid", "image_roi_corners", "image_world_bounds"]

FloatArray = npt.NDArray[np.float64]


def _identity3() -> FloatArray:
    return np.eye(3, dtype=np.float64)


@dataclass
class VolumeGrid:
    """A regular voxel grid in world coordinates (mm).

    Attributes:
        origin_mm: world position (mm) of the centre of voxel ``(0, 0, 0)``.
        spacing_mm: voxel size along i, j, k (mm), all > 0.
        dims: ``(nx, ny, nz)`` number of voxels along i, j, k (all >= 1).
        direction: ``(3, 3)`` orthonormal matrix; column ``a`` is the world direction of
            voxel axis ``a``. Identity by default.
    """

    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    dims: tuple[int, int, int]
    direction: FloatArray = field(default_factory=_identity3)

    def __post_init__(self) -> None:
        origin = tuple(float(v) for v in self.origin_mm)
        spacing = tuple(float(v) for v in self.spacing_mm)
        dims = tuple(int(v) for v in self.dims)
        if len(origin) != 3 or len(spacing) != 3 or len(dims) != 3:
            raise ValueError("origin_mm, spacing_mm and dims need 3 values each")
        if not all(math.isfinite(v) for v in origin):
            raise ValueError(f"origin_mm must be finite, got {origin}")
        if not all(math.isfinite(v) and v > 0 for v in spacing):
            raise ValueError(f"spacing_mm must be finite and > 0, got {spacing}")
        if not all(v >= 1 for v in dims):
            raise ValueError(f"dims must be >= 1, got {dims}")
        direction = np.asarray(self.direction, dtype=np.float64)
        if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
            raise ValueError("direction must be a finite 3x3 matrix")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
            raise ValueError("direction must be orthonormal (columns = unit axis directions)")
        self.origin_mm = (origin[0], origin[1], origin[2])
        self.spacing_mm = (spacing[0], spacing[1], spacing[2])
        self.dims = (dims[0], dims[1], dims[2])
        self.direction = direction

    # ----------------------------------------------------------------------------------
    @property
    def num_voxels(self) -> int:
        """Total number of voxels ``nx * ny * nz``."""
        return self.dims[0] * self.dims[1] * self.dims[2]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nx, ny, nz)`` of volumes on this grid (index ``[i, j, k]``)."""
        return self.dims

    @property
    def T_world_voxel(self) -> FloatArray:
        """``(4, 4)`` float64: maps voxel indices ``(i, j, k, 1)`` to world mm."""
        T = np.eye(4, dtype=np.float64)
        T[:3, :3] = self.direction * np.asarray(self.spacing_mm)[None, :]
        T[:3, 3] = self.origin_mm
        return T

    @property
    def T_voxel_world(self) -> FloatArray:
        """``(4, 4)`` float64: maps world mm to continuous voxel indices (inverse)."""
        T = np.eye(4, dtype=np.float64)
        R = self.direction.T / np.asarray(self.spacing_mm)[:, None]
        T[:3, :3] = R
        T[:3, 3] = -R @ np.asarray(self.origin_mm)
        return T

    def world_to_index(self, points_mm: npt.ArrayLike) -> FloatArray:
        """World points ``(..., 3)`` mm -> continuous voxel indices ``(..., 3)``."""
        p = np.asarray(points_mm, dtype=np.float64)
        T = self.T_voxel_world
        out: FloatArray = p @ T[:3, :3].T + T[:3, 3]
        return out

    def index_to_world(self, indices: npt.ArrayLike) -> FloatArray:
        """Voxel indices ``(..., 3)`` (may be fractional) -> world points ``(..., 3)`` mm."""
        ijk = np.asarray(indices, dtype=np.float64)
        T = self.T_world_voxel
        out: FloatArray = ijk @ T[:3, :3].T + T[:3, 3]
        return out

    def contains_index(self, indices: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """True where the nearest voxel of continuous indices ``(..., 3)`` is in the grid."""
        r = np.floor(np.asarray(indices, dtype=np.float64) + 0.5)
        inside = (r >= 0) & (r < np.asarray(self.dims))
        return np.asarray(np.all(inside, axis=-1))

    def bounds_mm(self) -> tuple[FloatArray, FloatArray]:
        """Axis-aligned world bounding box ``(min, max)`` mm of the voxel *centres*."""
        corners = np.array(
            [
                [i, j, k]
                for i in (0, self.dims[0] - 1)
                for j in (0, self.dims[1] - 1)
                for k in (0, self.dims[2] - 1)
            ],
            dtype=np.float64,
        )
        w = self.index_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3 (1 mL = 1000 mm^3)."""
        return self.spacing_mm[0] * self.spacing_mm[1] * self.spacing_mm[2]

    def with_extent(self, index_min: npt.ArrayLike, index_max: npt.ArrayLike) -> VolumeGrid:
        """A grid with the same spacing/direction covering voxel indices
        ``index_min..index_max`` (inclusive, may be negative / beyond ``dims``) of this one.

        Voxel ``index_min`` of this grid becomes voxel ``(0, 0, 0)`` of the new one, so
        data stay aligned when copied with an integer offset of ``-index_min``.
        """
        lo = np.asarray(index_min, dtype=np.int64)
        hi = np.asarray(index_max, dtype=np.int64)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(hi < lo):
            raise ValueError(f"bad index range {lo.tolist()}..{hi.tolist()}")
        origin = self.index_to_world(lo.astype(np.float64))
        dims = hi - lo + 1
        return VolumeGrid(
            origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
            spacing_mm=self.spacing_mm,
            dims=(int(dims[0]), int(dims[1]), int(dims[2])),
            direction=self.direction.copy(),
        )

    def downsampled(self, factor: int) -> VolumeGrid:
        """The grid of block-downsampled volumes: blocks of ``factor``^3 voxels.

        The new voxel ``(0,0,0)`` centre is the centre of the first block; dims are
        ``ceil(n / factor)``.
        """
        if factor < 1:
            raise ValueError("factor must be >= 1")
        if factor == 1:
            return self
        shift = (factor - 1) / 2.0
        origin = self.index_to_world(np.array([shift, shift, shift]))
        dims = tuple(-(-n // factor) for n in self.dims)
        return VolumeGrid(
            origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
            spacing_mm=tuple(s * factor for s in self.spacing_mm),  # type: ignore[arg-type]
            dims=dims,  # type: ignore[arg-type]
            direction=self.direction.copy(),
        )

    # ----------------------------------------------------------------------------------
    @classmethod
    def from_bounds(
        cls,
        min_mm: npt.ArrayLike,
        max_mm: npt.ArrayLike,
        spacing_mm: float | Sequence[float],
        margin_mm: float = 0.0,
    ) -> VolumeGrid:
        """An axis-aligned grid (identity direction) covering the world box
        ``[min_mm - margin, max_mm + margin]`` (mm).

        The origin (first voxel centre) is at ``min_mm - margin_mm``; dims are rounded up so
        the last voxel centre is at or beyond ``max_mm + margin_mm``.
        """
        lo = np.asarray(min_mm, dtype=np.float64) - float(margin_mm)
        hi = np.asarray(max_mm, dtype=np.float64) + float(margin_mm)
        sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
        if lo.shape != (3,) or hi.shape != (3,):
            raise ValueError("min_mm and max_mm need 3 values each")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(hi < lo):
            raise ValueError(f"bad bounds {lo.tolist()} .. {hi.tolist()}")
        if np.any(sp <= 0) or not np.all(np.isfinite(sp)):
            raise ValueError(f"spacing_mm must be > 0, got {spacing_mm}")
        dims = np.floor((hi - lo) / sp + 1e-9).astype(np.int64) + 1
        return cls(
            origin_mm=(float(lo[0]), float(lo[1]), float(lo[2])),
            spacing_mm=(float(sp[0]), float(sp[1]), float(sp[2])),
            dims=(int(dims[0]), int(dims[1]), int(dims[2])),
        )


def image_roi_corners(
    shape: tuple[int, int], roi: tuple[int, int, int, int] | None = None
) -> FloatArray:
    """The 4 corner pixel centres ``(u, v)`` px of an image's ROI, ``(4, 2)`` float64.

    ``shape`` is ``(H, W)``; ``roi`` is ``(x, y, w, h)`` px (column, row of the top-left
    pixel, width, height) or ``None`` for the whole image.
    """
    h, w = int(shape[0]), int(shape[1])
    if roi is None:
        x0, y0, x1, y1 = 0, 0, w - 1, h - 1
    else:
        x0, y0 = max(0, roi[0]), max(0, roi[1])
        x1, y1 = min(w, roi[0] + roi[2]) - 1, min(h, roi[1] + roi[3]) - 1
        if x1 < x0 or y1 < y0:
            raise ValueError(f"ROI {roi} does not overlap the {w}x{h} image")
    return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)


def image_world_bounds(
    T_world_image: npt.ArrayLike,
    shape: tuple[int, int],
    roi: tuple[int, int, int, int] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """World bounding box ``(min, max)`` mm of an image's ROI corners.

    ``T_world_image`` ``(4, 4)`` maps pixel ``(u=column, v=row, 0, 1)`` to world mm (pixel
    spacing included); ``shape`` is ``(H, W)``; ``roi`` is ``(x, y, w, h)`` px or ``None``.
    """
    T = np.asarray(T_world_image, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError("T_world_image must be a finite 4x4 matrix")
    uv = image_roi_corners(shape, roi)
    pts = uv @ T[:3, :2].T + T[:3, 3]
    return pts.min(axis=0), pts.max(axis=0)
