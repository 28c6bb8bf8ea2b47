"""Tests of the voxel grid geometry (us_reconstruction.grid)."""

from __future__ import annotations

import numpy as np
import pytest
from us_reconstruction.grid import VolumeGrid, image_roi_corners, image_world_bounds


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def test_world_index_round_trip_with_direction() -> None:
    grid = VolumeGrid((10.0, -5.0, 2.0), (0.5, 0.25, 2.0), (20, 30, 5), _rot_z(30))
    ijk = np.array([[0, 0, 0], [1, 2, 3], [19.5, 0.25, 4]])
    world = grid.index_to_world(ijk)
    np.testing.assert_allclose(world[0], (10, -5, 2))
    # voxel (1, 0, 0) is one spacing along the rotated x axis
    np.testing.assert_allclose(grid.index_to_world([1, 0, 0]) - world[0], 0.5 * _rot_z(30)[:, 0])
    np.testing.assert_allclose(grid.world_to_index(world), ijk, atol=1e-12)
    np.testing.assert_allclose(grid.T_voxel_world @ grid.T_world_voxel, np.eye(4), atol=1e-12)
    assert grid.contains_index([[19.4, 29.4, 4.4], [19.6, 0, 0]]).tolist() == [True, False]


def test_from_bounds_covers_box() -> None:
    grid = VolumeGrid.from_bounds((0, 0, 0), (10, 5, 1), 0.5, margin_mm=1.0)
    assert grid.origin_mm == (-1.0, -1.0, -1.0)
    assert grid.dims == (25, 15, 7)  # (10 + 2) / 0.5 + 1 ...
    lo, hi = grid.bounds_mm()
    np.testing.assert_allclose(lo, (-1, -1, -1))
    np.testing.assert_allclose(hi, (11, 6, 2))
    assert grid.voxel_volume_mm3() == pytest.approx(0.125)


def test_with_extent_keeps_voxel_centres_aligned() -> None:
    grid = VolumeGrid((1.0, 2.0, 3.0), (0.5, 0.5, 1.0), (4, 4, 4), _rot_z(10))
    big = grid.with_extent((-3, -1, 0), (6, 5, 7))
    assert big.dims == (10, 7, 8)
    # old voxel (i, j, k) is new voxel (i + 3, j + 1, k)
    np.testing.assert_allclose(
        big.index_to_world([3 + 2, 1 + 1, 3]), grid.index_to_world([2, 1, 3])
    )


def test_downsampled_grid() -> None:
    grid = VolumeGrid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (5, 4, 4))
    d = grid.downsampled(2)
    assert d.dims == (3, 2, 2)
    assert d.spacing_mm == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(d.origin_mm, (0.5, 0.5, 0.5))  # centre of the first 2x2x2 block


def test_image_bounds() -> None:
    T = np.eye(4)
    T[:3, 0] = (0.1, 0, 0)  # u -> x
    T[:3, 1] = (0, 0, -0.2)  # v -> -z
    T[:3, 3] = (5, 6, 7)
    lo, hi = image_world_bounds(T, (11, 21))
    np.testing.assert_allclose(lo, (5, 6, 5))
    np.testing.assert_allclose(hi, (7, 6, 7))
    corners = image_roi_corners((11, 21), (2, 3, 4, 5))
    assert corners.tolist() == [[2, 3], [5, 3], [2, 7], [5, 7]]
    with pytest.raises(ValueError, match="does not overlap"):
        image_roi_corners((11, 21), (30, 3, 4, 5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spacing_mm": (0.0, 1.0, 1.0)},
        {"dims": (0, 1, 1)},
        {"origin_mm": (np.nan, 0.0, 0.0)},
        {"direction": np.diag([1.0, 2.0, 1.0])},
    ],
)
def test_invalid_grid_rejected(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "origin_mm": (0.0, 0.0, 0.0),
        "spacing_mm": (1.0, 1.0, 1.0),
        "dims": (2, 2, 2),
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        VolumeGrid(**args)  # type: ignore[arg-type]
