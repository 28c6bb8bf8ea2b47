"""Read a PLUS Toolkit device-set configuration (XML): calibration transforms and the
volume-reconstruction settings.

Pure Python/numpy, no rclpy.  Only what the reconstruction needs is read:

* ``<CoordinateDefinitions><Transform From="Image" To="Probe" Matrix="16 numbers" .../>``:
  each ``Transform`` maps coordinates of frame ``From`` into frame ``To`` (PLUS names it
  ``FromToTo``, e.g. ``ImageToProbe``), row-major 4x4, translations in mm.  ``ImageToProbe``
  maps pixel coordinates ``(u, v, 0)`` into probe mm, so it contains the pixel spacing as a
  scaling: matrices are only checked to be finite, affine and invertible, not rigid.
* ``<VolumeReconstruction .../>``: output grid (``OutputSpacing`` mm, ``OutputOrigin`` mm,
  ``OutputExtent`` voxel index bounds), clipping (``ClipRectangleOrigin`` /
  ``ClipRectangleSize`` px), fan (``FanOriginPixel``, ``FanAnglesDeg``, ``FanRadiusStartPixel``,
  ``FanRadiusStopPixel``, and the older spellings ``FanOrigin``, ``FanAngles``,
  ``FanRadiusStart``, ``FanRadiusStop``, ``FanDepth``), ``Interpolation``
  (``LINEAR`` / ``NEAREST_NEIGHBOR``), ``CompoundingMode`` (``MEAN`` / ``MAXIMUM`` /
  ``LATEST``; older configurations have ``Compounding="On"/"Off"`` and ``Calculation``),
  ``FillHoles`` (``On``/``Off``), ``ImageCoordinateFrame`` and ``ReferenceCoordinateFrame``.
  Keyword values are matched case-insensitively.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "PlusConfigError",
    "PlusDeviceSet",
    "PlusVolumeReconstruction",
    "load_plus_device_set",
    "parse_plus_device_set",
]


class PlusConfigError(ValueError):
    """A PLUS configuration file is unreadable or invalid; the message names the file and
    what is wrong."""


@dataclass
class PlusVolumeReconstruction:
    """The ``<VolumeReconstruction>`` element (None where an attribute is absent).

    Pixel quantities are in image pixels (u = column, v = row), lengths in mm, fan angles in
    degrees as PLUS defines them (values are passed through unchanged).
    """

    output_spacing_mm: tuple[float, float, float] | None = None
    output_origin_mm: tuple[float, float, float] | None = None
    output_extent: tuple[int, ...] | None = None
    clip_rectangle_origin: tuple[int, int] | None = None
    clip_rectangle_size: tuple[int, int] | None = None
    fan_origin_px: tuple[float, float] | None = None
    fan_angles_deg: tuple[float, float] | None = None
    fan_radius_start_px: float | None = None
    fan_radius_stop_px: float | None = None
    interpolation: str | None = None
    """``"nearest"`` or ``"linear"``."""
    compounding: str | None = None
    """``"mean"``, ``"max"`` or ``"latest"``."""
    fill_holes: bool = False
    image_frame: str | None = None
    reference_frame: str | None = None


@dataclass
class PlusDeviceSet:
    """A parsed PLUS device-set configuration.

    Attributes:
        path: the file it was read from.
        transforms: ``(from, to) -> T_to_from`` (4x4 float64, mm; maps ``from`` coordinates
            into ``to``), one per ``<Transform>`` of ``<CoordinateDefinitions>``.
        volume_reconstruction: the ``<VolumeReconstruction>`` element, or None.
    """

    path: str
    transforms: dict[tuple[str, str], NDArray[np.float64]] = field(default_factory=dict)
    volume_reconstruction: PlusVolumeReconstruction | None = None

    def transform(self, from_frame: str, to_frame: str) -> NDArray[np.float64]:
        """``T_to_from`` (4x4, mm): the transform defined ``From=from_frame To=to_frame``, or
        the inverse of the one defined the other way round (identity for the same frame).

        Raises:
            PlusConfigError: neither direction is defined.
        """
        if from_frame == to_frame:
            return np.eye(4)
        direct = self.transforms.get((from_frame, to_frame))
        if direct is not None:
            return direct.copy()
        reverse = self.transforms.get((to_frame, from_frame))
        if reverse is not None:
            return np.asarray(np.linalg.inv(reverse), dtype=np.float64)
        known = ", ".join(f"{a}To{b}" for a, b in sorted(self.transforms)) or "none"
        raise PlusConfigError(
            f"{self.path}: no transform {from_frame}To{to_frame} (or its inverse) in "
            f"CoordinateDefinitions; defined: {known}"
        )


# --------------------------------------------------------------------------- parsing helpers


def _numbers(path: str, where: str, text: str, count: int | None) -> list[float]:
    """Whitespace/comma-separated numbers of an attribute; exactly ``count`` unless None."""
    parts = text.replace(",", " ").split()
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise PlusConfigError(f"{path}: {where}: not a list of numbers: {text!r}") from exc
    if count is not None and len(values) != count:
        raise PlusConfigError(f"{path}: {where}: expected {count} numbers, got {len(values)}")
    if not all(np.isfinite(values)):
        raise PlusConfigError(f"{path}: {where}: non-finite number in {text!r}")
    return values


def _attr(elem: ET.Element, *names: str) -> tuple[str, str] | None:
    """First present attribute among ``names`` as ``(name, value)``."""
    for name in names:
        value = elem.get(name)
        if value is not None:
            return name, value
    return None


def _vector(path: str, elem: ET.Element, count: int, *names: str) -> tuple[float, ...] | None:
    """A vector attribute (first spelling found in ``names``), or None if absent."""
    found = _attr(elem, *names)
    if found is None:
        return None
    return tuple(_numbers(path, f"VolumeReconstruction {found[0]}", found[1], count))


def _int_vector(path: str, elem: ET.Element, count: int, name: str) -> tuple[int, ...] | None:
    """An integer vector attribute, or None if absent."""
    values = _vector(path, elem, count, name)
    if values is None:
        return None
    if any(v != int(v) for v in values):
        raise PlusConfigError(f"{path}: VolumeReconstruction {name}: expected integers")
    return tuple(int(v) for v in values)


def _scalar(path: str, elem: ET.Element, *names: str) -> float | None:
    """A scalar attribute (first spelling found), or None if absent."""
    values = _vector(path, elem, 1, *names)
    return None if values is None else values[0]


def _keyword(path: str, elem: ET.Element, name: str, mapping: dict[str, str]) -> str | None:
    """A keyword attribute mapped (case-insensitively) through ``mapping``, None if absent."""
    value = elem.get(name)
    if value is None:
        return None
    key = value.strip().upper()
    if key not in mapping:
        allowed = ", ".join(sorted(mapping))
        raise PlusConfigError(
            f"{path}: VolumeReconstruction {name}={value!r} is not one of {allowed}"
        )
    return mapping[key]


_ON_OFF = {"ON": "on", "OFF": "off", "TRUE": "on", "FALSE": "off", "1": "on", "0": "off"}
_INTERPOLATION = {"LINEAR": "linear", "NEAREST_NEIGHBOR": "nearest", "NEAREST": "nearest"}
_COMPOUNDING_MODE = {
    "MEAN": "mean",
    "MAXIMUM": "max",
    "MAX": "max",
    "LATEST": "latest",
}
_CALCULATION = {"WEIGHTED_AVERAGE": "mean", "MAXIMUM": "max"}


def _matrix(path: str, frm: str, to: str, text: str) -> NDArray[np.float64]:
    """Parse and check a ``Matrix`` attribute: 16 finite numbers, affine, invertible."""
    where = f"Transform From={frm!r} To={to!r} Matrix"
    T = np.array(_numbers(path, where, text, 16), dtype=np.float64).reshape(4, 4)
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise PlusConfigError(f"{path}: {where}: last row is {T[3].tolist()}, not [0, 0, 0, 1]")
    A = T[:3, :3]
    scale = float(np.max(np.abs(A)))
    if scale == 0.0 or abs(float(np.linalg.det(A))) < 1e-9 * scale**3:
        raise PlusConfigError(f"{path}: {where}: the 3x3 part is not invertible")
    return T


def _volume_reconstruction(path: str, elem: ET.Element) -> PlusVolumeReconstruction:
    """Parse a ``<VolumeReconstruction>`` element."""
    vr = PlusVolumeReconstruction()
    sp = _vector(path, elem, 3, "OutputSpacing")
    if sp is not None:
        if min(sp) <= 0.0:
            raise PlusConfigError(f"{path}: VolumeReconstruction OutputSpacing must be > 0")
        vr.output_spacing_mm = (sp[0], sp[1], sp[2])
    org = _vector(path, elem, 3, "OutputOrigin")
    if org is not None:
        vr.output_origin_mm = (org[0], org[1], org[2])
    vr.output_extent = _int_vector(path, elem, 6, "OutputExtent")
    cro = _int_vector(path, elem, 2, "ClipRectangleOrigin")
    if cro is not None:
        vr.clip_rectangle_origin = (cro[0], cro[1])
    crs = _int_vector(path, elem, 2, "ClipRectangleSize")
    if crs is not None:
        vr.clip_rectangle_size = (crs[0], crs[1])
    fo = _vector(path, elem, 2, "FanOriginPixel", "FanOrigin")
    if fo is not None:
        vr.fan_origin_px = (fo[0], fo[1])
    fa = _vector(path, elem, 2, "FanAnglesDeg", "FanAngles")
    if fa is not None:
        vr.fan_angles_deg = (fa[0], fa[1])
    vr.fan_radius_start_px = _scalar(path, elem, "FanRadiusStartPixel", "FanRadiusStart")
    vr.fan_radius_stop_px = _scalar(path, elem, "FanRadiusStopPixel", "FanRadiusStop", "FanDepth")
    vr.interpolation = _keyword(path, elem, "Interpolation", _INTERPOLATION)
    mode = _keyword(path, elem, "CompoundingMode", _COMPOUNDING_MODE)
    if mode is None:  # older configurations (before CompoundingMode existed)
        calc = _keyword(path, elem, "Calculation", _CALCULATION)
        on_off = _keyword(path, elem, "Compounding", _ON_OFF)
        if calc == "max":
            mode = "max"
        elif on_off == "off":
            mode = "latest"
        elif on_off == "on" or calc == "mean":
            mode = "mean"
    vr.compounding = mode
    vr.fill_holes = _keyword(path, elem, "FillHoles", _ON_OFF) == "on"
    vr.image_frame = elem.get("ImageCoordinateFrame")
    vr.reference_frame = elem.get("ReferenceCoordinateFrame")
    return vr


def parse_plus_device_set(xml_text: str, path: str = "<string>") -> PlusDeviceSet:
    """Parse the text of a PLUS device-set configuration (see :func:`load_plus_device_set`).

    Args:
        xml_text: the XML document.
        path: name used in error messages.

    Raises:
        PlusConfigError: malformed XML, a bad matrix or attribute, or a duplicate transform.
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise PlusConfigError(f"{path}: malformed XML: {exc}") from exc
    device_set = PlusDeviceSet(path=path)
    for defs in root.iter("CoordinateDefinitions"):
        for tr in defs.iter("Transform"):
            frm, to, text = tr.get("From"), tr.get("To"), tr.get("Matrix")
            if not frm or not to:
                raise PlusConfigError(f"{path}: a Transform lacks its From or To attribute")
            if text is None:
                raise PlusConfigError(f"{path}: Transform From={frm!r} To={to!r} has no Matrix")
            if frm == to:
                raise PlusConfigError(f"{path}: Transform From and To are both {frm!r}")
            if (frm, to) in device_set.transforms or (to, frm) in device_set.transforms:
                raise PlusConfigError(f"{path}: transform {frm}To{to} is defined twice")
            device_set.transforms[(frm, to)] = _matrix(path, frm, to, text)
    recon = next(root.iter("VolumeReconstruction"), None)
    if recon is not None:
        device_set.volume_reconstruction = _volume_reconstruction(path, recon)
    return device_set


def load_plus_device_set(path: str | os.PathLike[str]) -> PlusDeviceSet:
    """Read a PLUS device-set configuration file (``PlusDeviceSet_*.xml``).

    Returns:
        The transforms of ``<CoordinateDefinitions>`` and the ``<VolumeReconstruction>``
        settings.

    Raises:
        PlusConfigError: unreadable file, malformed XML, a matrix without 16 finite numbers or
            not invertible, an unknown keyword value, a duplicate transform.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlusConfigError(f"{name}: cannot read: {exc}") from exc
    return parse_plus_device_set(text, path=name)
