"""Frame geometry: the ultrasound image region (ROI) and the pixel spacing in mm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class GeometryError(ValueError):
    """ROI or spacing configuration that cannot be right."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where the image is on the scanner's screen and how big a pixel is.

    ``roi`` is ``(x, y, width, height)`` in source pixels (None = the whole frame).
    ``spacing_mm`` is mm per px along columns (lateral) and rows (depth). Scanners change
    spacing with the imaging depth: ``spacing_by_depth_mm`` maps a depth setting (mm) to
    its spacing, and the current ``imaging_depth_mm`` picks the entry.
    """

    roi: tuple[int, int, int, int] | None = None
    spacing_mm: tuple[float, float] = (0.0, 0.0)
    spacing_by_depth_mm: dict[float, tuple[float, float]] = field(default_factory=dict)
    imaging_depth_mm: float = 0.0
    crop_to_roi: bool = True

    def __post_init__(self) -> None:
        if self.roi is not None:
            x, y, w, h = self.roi
            if x < 0 or y < 0 or w <= 0 or h <= 0:
                raise GeometryError(
                    f"roi must be [x, y, width, height] >= 0 with size > 0, got {list(self.roi)}"
                )
        for s in (self.spacing_mm, *self.spacing_by_depth_mm.values()):
            if len(s) != 2 or min(s) < 0 or max(s) > 10:
                raise GeometryError(
                    f"pixel spacing must be two values in [0, 10] mm, got {list(s)}"
                )
        if self.spacing_by_depth_mm and self.imaging_depth_mm not in self.spacing_by_depth_mm:
            depths = sorted(self.spacing_by_depth_mm)
            raise GeometryError(
                f"imaging_depth_mm={self.imaging_depth_mm:g} has no spacing entry; "
                f"configured depths: {depths}"
            )

    @classmethod
    def from_params(
        cls,
        roi: Sequence[int],
        spacing_mm: Sequence[float],
        depths_mm: Sequence[float],
        depth_spacings_mm: Sequence[float],
        imaging_depth_mm: float,
        crop_to_roi: bool = True,
    ) -> FrameGeometry:
        """From flat parameter lists (ROS parameters cannot hold nested lists).

        ``depth_spacings_mm`` holds two values (x, y) per entry of ``depths_mm``.
        """
        if len(roi) not in (0, 4):
            raise GeometryError(
                f"roi needs 4 integers [x, y, width, height] or none, got {list(roi)}"
            )
        if len(spacing_mm) != 2:
            raise GeometryError(f"spacing_mm needs 2 values [x, y], got {list(spacing_mm)}")
        if len(depth_spacings_mm) != 2 * len(depths_mm):
            raise GeometryError(
                f"depth_spacings_mm needs 2 values per depth ({2 * len(depths_mm)}), "
                f"got {len(depth_spacings_mm)}"
            )
        table = {
            float(d): (float(depth_spacings_mm[2 * i]), float(depth_spacings_mm[2 * i + 1]))
            for i, d in enumerate(depths_mm)
        }
        return cls(
            roi=tuple(int(v) for v in roi) if roi else None,  # type: ignore[arg-type]
            spacing_mm=(float(spacing_mm[0]), float(spacing_mm[1])),
            spacing_by_depth_mm=table,
            imaging_depth_mm=float(imaging_depth_mm),
            crop_to_roi=crop_to_roi,
        )

    def spacing(self) -> tuple[float, float]:
        """Spacing in force (mm / px)."""
        if self.spacing_by_depth_mm:
            return self.spacing_by_depth_mm[self.imaging_depth_mm]
        return self.spacing_mm

    def check_fits(self, width: int, height: int) -> None:
        """Raise GeometryError if the ROI lies outside a ``width`` x ``height`` frame."""
        if self.roi is None:
            return
        x, y, w, h = self.roi
        if x + w > width or y + h > height:
            raise GeometryError(
                f"roi {list(self.roi)} lies outside the {width}x{height} px frame of the source"
            )

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """Size of the published frame for a source frame of ``width`` x ``height``."""
        if self.roi is not None and self.crop_to_roi:
            return self.roi[2], self.roi[3]
        return width, height
