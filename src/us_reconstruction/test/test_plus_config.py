"""Tests of the PLUS device-set configuration reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from us_reconstruction.plus_config import (
    PlusConfigError,
    load_plus_device_set,
    parse_plus_device_set,
)

IMAGE_TO_PROBE = """0.107 0 0 -41.5
    0 0.107 0 -3.2
    0 0 0.107 0
    0 0 0 1"""

CURRENT = f"""<?xml version="1.0" encoding="utf-8"?>
<PlusConfiguration version="2.1">
  <DataCollection StartupDelaySec="1.0">
    <DeviceSet Name="Test" Description="written by the test" />
  </DataCollection>
  <CoordinateDefinitions>
    <Transform From="Image" To="Probe" Matrix="{IMAGE_TO_PROBE}" Error="0.5" Date="2020" />
    <Transform From="Reference" To="Tracker"
      Matrix="1 0 0 10  0 0 -1 20  0 1 0 30  0 0 0 1" />
  </CoordinateDefinitions>
  <VolumeReconstruction OutputSpacing="0.5 0.5 0.5" OutputOrigin="-10 -20 0"
    OutputExtent="0 99 0 79 0 59" ClipRectangleOrigin="10 20" ClipRectangleSize="600 400"
    FanOriginPixel="320 -50" FanAnglesDeg="-30 30" FanRadiusStartPixel="60"
    FanRadiusStopPixel="500" Interpolation="NEAREST_NEIGHBOR" CompoundingMode="MAXIMUM"
    FillHoles="On" ImageCoordinateFrame="Image" ReferenceCoordinateFrame="Reference">
    <HoleFilling><HoleFillingElement Type="GAUSSIAN" Size="3" Stdev="0.667"/></HoleFilling>
  </VolumeReconstruction>
</PlusConfiguration>
"""

OLDER = """<PlusConfiguration version="2.0">
  <CoordinateDefinitions>
    <Transform From="Image" To="Probe" Matrix="0.2 0 0 0 0 0.2 0 0 0 0 0.2 0 0 0 0 1"/>
  </CoordinateDefinitions>
  <VolumeReconstruction OutputSpacing="1 1 1" FanOrigin="100 0" FanAngles="-20 20"
    FanRadiusStart="5" FanDepth="300" Interpolation="linear" Compounding="Off"
    FillHoles="OFF" />
</PlusConfiguration>
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "PlusDeviceSet_test.xml"
    path.write_text(text, encoding="utf-8")
    return path


def test_current_config(tmp_path: Path) -> None:
    ds = load_plus_device_set(_write(tmp_path, CURRENT))
    T = ds.transform("Image", "Probe")
    np.testing.assert_allclose(T[:3, :3], 0.107 * np.eye(3))
    np.testing.assert_allclose(T[:3, 3], [-41.5, -3.2, 0.0])
    # pixel (u, v) = (10, 20) -> probe mm
    np.testing.assert_allclose(T @ [10, 20, 0, 1], [-40.43, -1.06, 0, 1], atol=1e-9)
    np.testing.assert_allclose(ds.transform("Probe", "Image") @ T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(ds.transform("Tracker", "Reference") @ [10, 20, 30, 1], [0, 0, 0, 1])
    np.testing.assert_allclose(ds.transform("Probe", "Probe"), np.eye(4))
    vr = ds.volume_reconstruction
    assert vr is not None
    assert vr.output_spacing_mm == (0.5, 0.5, 0.5)
    assert vr.output_origin_mm == (-10.0, -20.0, 0.0)
    assert vr.output_extent == (0, 99, 0, 79, 0, 59)
    assert vr.clip_rectangle_origin == (10, 20)
    assert vr.clip_rectangle_size == (600, 400)
    assert vr.fan_origin_px == (320.0, -50.0)
    assert vr.fan_angles_deg == (-30.0, 30.0)
    assert vr.fan_radius_start_px == 60.0
    assert vr.fan_radius_stop_px == 500.0
    assert vr.interpolation == "nearest"
    assert vr.compounding == "max"
    assert vr.fill_holes is True
    assert (vr.image_frame, vr.reference_frame) == ("Image", "Reference")


def test_older_spellings(tmp_path: Path) -> None:
    ds = load_plus_device_set(_write(tmp_path, OLDER))
    vr = ds.volume_reconstruction
    assert vr is not None
    assert vr.fan_origin_px == (100.0, 0.0)
    assert vr.fan_angles_deg == (-20.0, 20.0)
    assert vr.fan_radius_start_px == 5.0
    assert vr.fan_radius_stop_px == 300.0
    assert vr.interpolation == "linear"
    assert vr.compounding == "latest"
    assert vr.fill_holes is False
    on = OLDER.replace('Compounding="Off"', 'Compounding="On"')
    assert parse_plus_device_set(on).volume_reconstruction.compounding == "mean"  # type: ignore[union-attr]


def test_missing_transform_and_no_reconstruction() -> None:
    ds = parse_plus_device_set(
        '<PlusConfiguration><CoordinateDefinitions><Transform From="A" To="B" '
        'Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"/></CoordinateDefinitions></PlusConfiguration>',
        path="cfg.xml",
    )
    assert ds.volume_reconstruction is None
    with pytest.raises(PlusConfigError, match=r"cfg\.xml.*ImageToProbe"):
        ds.transform("Image", "Probe")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<PlusConfiguration><CoordinateDefinitions>", "malformed XML"),
        (
            '<P><CoordinateDefinitions><Transform From="Image" To="Probe" '
            'Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0"/></CoordinateDefinitions></P>',
            "expected 16 numbers",
        ),
        (
            '<P><CoordinateDefinitions><Transform From="Image" To="Probe" '
            'Matrix="1 0 0 0 0 1 0 0 0 0 0 0 0 0 0 1"/></CoordinateDefinitions></P>',
            "not invertible",
        ),
        (
            '<P><CoordinateDefinitions><Transform From="Image" To="Probe" '
            'Matrix="1 0 0 0 0 1 0 0 0 0 1 nan 0 0 0 1"/></CoordinateDefinitions></P>',
            "non-finite",
        ),
        (
            '<P><CoordinateDefinitions><Transform From="Image" To="Probe" '
            'Matrix="1 0 0 0 0 1 0 0 0 0 1 x 0 0 0 1"/></CoordinateDefinitions></P>',
            "not a list of numbers",
        ),
        ('<P><VolumeReconstruction Interpolation="CUBIC"/></P>', "Interpolation"),
        ('<P><VolumeReconstruction OutputSpacing="1 1"/></P>', "OutputSpacing"),
        ('<P><VolumeReconstruction OutputSpacing="1 0 1"/></P>', "OutputSpacing"),
    ],
)
def test_errors_name_file_and_problem(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PlusConfigError, match=match) as err:
        load_plus_device_set(path)
    assert str(path) in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PlusConfigError, match="cannot read"):
        load_plus_device_set(tmp_path / "absent.xml")
