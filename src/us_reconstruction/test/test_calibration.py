"""Tests of the image -> probe calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from us_reconstruction.calibration import ImageCalibration
from us_reconstruction.plus_config import PlusConfigError, load_plus_device_set


def _plus_xml(matrix: np.ndarray) -> str:
    numbers = " ".join(f"{v:.12g}" for v in matrix.ravel())
    return (
        '<PlusConfiguration version="2.1"><CoordinateDefinitions>'
        f'<Transform From="Image" To="Probe" Matrix="{numbers}" />'
        '<Transform From="Reference" To="Tracker" Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"/>'
        "</CoordinateDefinitions></PlusConfiguration>"
    )


def test_params_round_trip() -> None:
    cal = ImageCalibration.from_params((0.08, 0.09), (10.0, -20.0, 30.0), (-25.0, 1.0, 2.0))
    T = cal.T_probe_image()
    np.testing.assert_allclose(T[:3, 3], [-25.0, 1.0, 2.0])
    np.testing.assert_allclose(np.linalg.norm(T[:3, :3], axis=0), [0.08, 0.09, 1.0])
    np.testing.assert_allclose(cal.rotation_rpy_deg(), [10.0, -20.0, 30.0], atol=1e-9)
    back = ImageCalibration.from_matrix(T)
    spacing, R, t = back.decompose()
    assert spacing == pytest.approx((0.08, 0.09))
    np.testing.assert_allclose(R, cal.rotation, atol=1e-12)
    np.testing.assert_allclose(t, cal.translation_mm)
    np.testing.assert_allclose(back.T_probe_image(), T, atol=1e-12)
    assert back.shear_residual < 1e-12
    # a pixel maps like the matrix
    np.testing.assert_allclose(cal.pixel_to_probe([[10, 20]])[0], (T @ [10, 20, 0, 1])[:3])


def test_simulator_convention() -> None:
    """The simulator's T_probe_image: pixel centres, face centre at the origin."""
    w, sx, sy = 640, 50.0 / 640, 40.0 / 480
    cal = ImageCalibration.from_params((sx, sy), translation_mm=((0.5 - w / 2) * sx, 0.5 * sy, 0))
    p = cal.pixel_to_probe([[w / 2 - 0.5, 0.0]])[0]
    np.testing.assert_allclose(p, [0.0, 0.5 * sy, 0.0], atol=1e-12)


def test_from_plus_xml(tmp_path: Path) -> None:
    R = Rotation.from_euler("xyz", [0.0, 0.0, 180.0], degrees=True).as_matrix()
    T = np.eye(4)
    T[:3, :3] = R @ np.diag([0.107, 0.107, 0.107])
    T[:3, 3] = [41.5, 3.2, -1.0]
    path = tmp_path / "PlusDeviceSet_cal.xml"
    path.write_text(_plus_xml(T), encoding="utf-8")
    ds = load_plus_device_set(path)
    cal = ImageCalibration.from_plus(ds)
    assert cal.spacing_mm == pytest.approx((0.107, 0.107))
    assert cal.elevation_scale == pytest.approx(0.107)
    np.testing.assert_allclose(cal.T_probe_image(), T, atol=1e-9)
    # asked the other way round, the inverse is used
    cal2 = ImageCalibration.from_plus(ds, image_frame="Image", probe_frame="Probe")
    np.testing.assert_allclose(cal2.T_probe_image(), T, atol=1e-9)
    with pytest.raises(PlusConfigError):
        ImageCalibration.from_plus(ds, probe_frame="Stylus")


def test_mirrored_and_sheared() -> None:
    T = np.diag([-0.1, 0.1, 1.0, 1.0])  # u axis mirrored
    cal = ImageCalibration.from_matrix(T)
    assert cal.spacing_mm[0] == pytest.approx(-0.1)
    assert np.linalg.det(cal.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(cal.T_probe_image(), T, atol=1e-12)
    sheared = np.diag([0.1, 0.1, 1.0, 1.0])
    sheared[0, 1] = 0.001  # 1 % shear: accepted, reported
    cal = ImageCalibration.from_matrix(sheared)
    assert 0.0 < cal.shear_residual < 0.002
    sheared[0, 1] = 0.05
    with pytest.raises(ValueError, match="not rotation x scaling"):
        ImageCalibration.from_matrix(sheared)


@pytest.mark.parametrize(
    "bad",
    [np.full((4, 4), np.nan), np.diag([0.1, 0.0, 1.0, 1.0]), np.ones((3, 3))],
)
def test_invalid_matrices(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        ImageCalibration.from_matrix(bad)


def test_invalid_params() -> None:
    with pytest.raises(ValueError):
        ImageCalibration.from_params((0.0, 0.1))
    with pytest.raises(ValueError):
        ImageCalibration((0.1, 0.1), rotation=np.diag([1.0, 1.0, -1.0]))
