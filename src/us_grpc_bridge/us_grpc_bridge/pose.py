"""Image-to-world geometry of streamed frames (no rclpy).

``T_world_image = T_world_probe @ T_probe_image @ S(downscale)`` maps homogeneous pixel
coordinates ``(u, v, 0, 1)`` of a streamed image (pixel centres at integer u, v) to world
(tracker) coordinates in mm. ``T_probe_image`` is the calibration: a rigid part from the
node's parameters (rotation in degrees, XYZ order, and translation in mm) and the pixel
spacing of each frame (mm / px, from the frame header).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
IMAGE_ORIGINS = ("top_center", "top_left")


def rotation_xyz_deg(angles_deg: Sequence[float]) -> Matrix:
    """3x3 rotation ``Rz @ Ry @ Rx`` of angles about x, y, z in degrees."""
    ax, ay, az = (math.radians(float(a)) for a in angles_deg)
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx, dtype=np.float64)


@dataclass(frozen=True)
class ImageCalibration:
    """The probe <- image calibration without the pixel spacing.

    ``origin`` says where pixel coordinates start on the probe: ``top_center`` (the
    transducer face centre is at the top row, middle column: x_p = (u + 0.5 - w/2) * sx,
    y_p = (v + 0.5) * sy, as the simulator) or ``top_left`` (x_p = u * sx, y_p = v * sy),
    before the rigid ``rotation_deg`` / ``translation_mm``.
    """

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    origin: str = "top_center"
    fallback_spacing_mm: tuple[float, float] = (0.1, 0.1)

    def __post_init__(self) -> None:
        if self.origin not in IMAGE_ORIGINS:
            raise ValueError(f"origin must be one of {IMAGE_ORIGINS}, got {self.origin!r}")

    def T_probe_image(
        self, width: int, spacing_mm: tuple[float, float], downscale: int = 1
    ) -> Matrix:
        """4x4, pixel ``(u, v, 0, 1)`` of an image ``downscale`` x smaller than the source
        (source width ``width`` px, spacing mm / px of the source) -> probe, mm."""
        sx, sy = spacing_mm
        if sx <= 0 or sy <= 0:
            sx, sy = self.fallback_spacing_mm
        f = float(max(1, downscale))
        scale = np.eye(4)
        scale[0, 0], scale[1, 1] = sx * f, sy * f
        if self.origin == "top_center":
            # a downscaled pixel u covers source pixels f*u .. f*u+f-1: centre f*u + (f-1)/2
            scale[0, 3] = ((f - 1) / 2 + 0.5 - width / 2.0) * sx
            scale[1, 3] = ((f - 1) / 2 + 0.5) * sy
        else:
            scale[0, 3] = (f - 1) / 2 * sx
            scale[1, 3] = (f - 1) / 2 * sy
        rigid = np.eye(4)
        rigid[:3, :3] = rotation_xyz_deg(self.rotation_deg)
        rigid[:3, 3] = self.translation_mm
        return np.asarray(rigid @ scale, dtype=np.float64)


def T_world_image(
    T_world_probe: Any,
    calibration: ImageCalibration,
    width: int,
    spacing_mm: tuple[float, float],
    downscale: int = 1,
) -> Matrix:
    """``T_world_probe @ T_probe_image`` (4x4, mm) for a streamed image."""
    wp = np.asarray(T_world_probe, dtype=np.float64).reshape(4, 4)
    return np.asarray(wp @ calibration.T_probe_image(width, spacing_mm, downscale))
