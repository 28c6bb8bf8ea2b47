"""Image -> probe calibration (pixel spacing, rotation, translation).

Pure numpy/scipy, no rclpy.

``T_probe_image`` (4x4 float64) maps homogeneous pixel coordinates ``(u, v, 0, 1)`` (``u`` =
column, ``v`` = row, pixel centres at integers) into probe coordinates in **mm**, pixel
spacing included, exactly like PLUS ``ImageToProbe``::

    T_probe_image = [ R @ diag(sx, sy, sz) | t ]
                    [ 0     0       0      | 1 ]

``R`` is a proper rotation (probe <- image axes), ``(sx, sy)`` mm per pixel along ``u`` and
``v``, ``t`` the probe coordinates (mm) of pixel ``(0, 0)``.  ``sz`` scales the image's third
axis (only used to keep the matrix invertible; pixels have ``w = 0``); PLUS calibrations
usually carry a value there, the simulator uses 1.  A mirrored calibration
(``det < 0``) is represented with a negative ``sx``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from .plus_config import PlusDeviceSet

__all__ = ["ImageCalibration"]


def _nearest_rotation(A: NDArray[np.float64]) -> NDArray[np.float64]:
    """Closest proper rotation to a 3x3 matrix (polar decomposition via SVD)."""
    U, _, Vt = np.linalg.svd(A)
    D = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(U @ Vt)) or 1.0)])
    R: NDArray[np.float64] = U @ D @ Vt
    return R


@dataclass
class ImageCalibration:
    """Image -> probe calibration.

    Attributes:
        spacing_mm: ``(sx, sy)`` mm per pixel along image columns ``u`` and rows ``v``.
        rotation: ``(3, 3)`` proper rotation, probe <- image axes.
        translation_mm: ``(3,)`` probe coordinates (mm) of pixel ``(0, 0)``.
        elevation_scale: scale of the image's third axis (mm per unit; irrelevant for
            ``w = 0`` pixels).
        shear_residual: largest absolute element difference between the matrix this
            calibration was built from and :meth:`T_probe_image` (0 when built from
            parameters; > 0 when a calibration with shear/unequal scaling was imported).
    """

    spacing_mm: tuple[float, float]
    rotation: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))
    translation_mm: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    elevation_scale: float = 1.0
    shear_residual: float = 0.0

    def __post_init__(self) -> None:
        sx, sy = (float(v) for v in self.spacing_mm)
        if not (np.isfinite([sx, sy]).all() and sx != 0.0 and sy > 0.0):
            raise ValueError(f"invalid pixel spacing {self.spacing_mm} mm")
        self.spacing_mm = (sx, sy)
        R = np.asarray(self.rotation, dtype=np.float64)
        if R.shape != (3, 3) or not np.isfinite(R).all():
            raise ValueError("rotation must be a finite (3, 3) matrix")
        if np.max(np.abs(R.T @ R - np.eye(3))) > 1e-6 or np.linalg.det(R) < 0:
            raise ValueError("rotation is not a proper rotation matrix")
        self.rotation = R
        t = np.asarray(self.translation_mm, dtype=np.float64).reshape(3)
        if not np.isfinite(t).all():
            raise ValueError("translation_mm must be finite")
        self.translation_mm = t
        if not (np.isfinite(self.elevation_scale) and self.elevation_scale != 0.0):
            raise ValueError("elevation_scale must be finite and non-zero")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_params(
        cls,
        spacing_mm: Sequence[float],
        rotation_rpy_deg: Sequence[float] = (0.0, 0.0, 0.0),
        translation_mm: Sequence[float] = (0.0, 0.0, 0.0),
        elevation_scale: float = 1.0,
    ) -> ImageCalibration:
        """Calibration from spacing (mm/px), roll-pitch-yaw (deg) and translation (mm).

        The rotation is ROS's RPY convention: ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (fixed
        axes x, then y, then z).
        """
        rpy = np.asarray(rotation_rpy_deg, dtype=np.float64).reshape(3)
        R = Rotation.from_euler("xyz", rpy, degrees=True).as_matrix()
        sx, sy = (float(v) for v in spacing_mm)
        return cls((sx, sy), R, np.asarray(translation_mm, dtype=np.float64), elevation_scale)

    @classmethod
    def from_matrix(cls, T_probe_image: ArrayLike, max_shear: float = 0.05) -> ImageCalibration:
        """Decompose a 4x4 image -> probe matrix (pixel spacing included, like ImageToProbe).

        Columns' norms give the scales, the nearest rotation (SVD) of the normalised 3x3 part
        gives ``R``.  Calibrations estimated by least squares are slightly non-orthogonal:
        the loss is stored in :attr:`shear_residual`.

        Args:
            T_probe_image: ``(4, 4)`` matrix, pixel -> probe mm.
            max_shear: largest accepted relative deviation of the normalised 3x3 part from a
                rotation (0.05 = 5 %).

        Raises:
            ValueError: not a finite affine invertible matrix, or too much shear.
        """
        T = np.asarray(T_probe_image, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise ValueError("T_probe_image must be a finite (4, 4) matrix")
        if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
            raise ValueError(f"T_probe_image last row is {T[3].tolist()}, not [0, 0, 0, 1]")
        A = T[:3, :3]
        scales = np.linalg.norm(A, axis=0)
        if np.min(scales) <= 0.0 or abs(np.linalg.det(A)) < 1e-12 * float(np.prod(scales)):
            raise ValueError("T_probe_image is not invertible")
        if np.linalg.det(A) < 0.0:
            scales[0] = -scales[0]  # mirrored image: negative sx keeps R proper
        M = A / scales
        R = _nearest_rotation(M)
        deviation = float(np.max(np.abs(M - R)))
        if deviation > max_shear:
            raise ValueError(
                f"T_probe_image is not rotation x scaling (deviation {deviation:.3f} > {max_shear})"
            )
        cal = cls((float(scales[0]), float(scales[1])), R, T[:3, 3].copy(), float(scales[2]))
        cal.shear_residual = float(np.max(np.abs(cal.T_probe_image() - T)))
        return cal

    @classmethod
    def from_plus(
        cls,
        device_set: PlusDeviceSet,
        image_frame: str = "Image",
        probe_frame: str = "Probe",
        max_shear: float = 0.05,
    ) -> ImageCalibration:
        """Calibration from a PLUS device set's ``<image_frame>To<probe_frame>`` transform
        (or the inverse of ``<probe_frame>To<image_frame>``).

        Raises:
            PlusConfigError: the transform is not defined in the file.
            ValueError: the matrix is not rotation x scaling.
        """
        return cls.from_matrix(device_set.transform(image_frame, probe_frame), max_shear)

    # ------------------------------------------------------------------ outputs
    def T_probe_image(self) -> NDArray[np.float64]:
        """``(4, 4)`` float64 matrix mapping pixel ``(u, v, 0, 1)`` to probe mm."""
        T = np.eye(4)
        sx, sy = self.spacing_mm
        T[:3, :3] = self.rotation @ np.diag([sx, sy, self.elevation_scale])
        T[:3, 3] = self.translation_mm
        return T

    def rotation_rpy_deg(self) -> NDArray[np.float64]:
        """``(3,)`` roll, pitch, yaw in degrees (ROS RPY, see :meth:`from_params`)."""
        out: NDArray[np.float64] = Rotation.from_matrix(self.rotation).as_euler("xyz", degrees=True)
        return out

    def decompose(
        self,
    ) -> tuple[tuple[float, float], NDArray[np.float64], NDArray[np.float64]]:
        """``(spacing_mm (sx, sy), rotation (3, 3), translation_mm (3,))`` (copies)."""
        return self.spacing_mm, self.rotation.copy(), self.translation_mm.copy()

    def pixel_to_probe(self, uv: ArrayLike) -> NDArray[np.float64]:
        """Probe coordinates ``(N, 3)`` mm of pixels ``(N, 2)`` ``(u, v)``."""
        p = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        sx, sy = self.spacing_mm
        local = np.stack([p[:, 0] * sx, p[:, 1] * sy, np.zeros(len(p))], axis=1)
        out: NDArray[np.float64] = local @ self.rotation.T + self.translation_mm
        return out
