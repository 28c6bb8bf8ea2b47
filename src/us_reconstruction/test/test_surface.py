"""Tests of the surface mesh, volumes and surface distances."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from us_reconstruction.surface import (
    ellipsoid_volume,
    largest_component,
    mesh_volume_ml,
    split_lobes,
    surface_distance_hd95_mm,
    thyroid_ellipsoid_volume,
    thyroid_mesh,
)

SP = 0.5  # mm


@dataclass
class _Grid:
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing_mm: tuple[float, float, float] = (SP, SP, SP)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))


def _coords(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = (np.arange(n) - (n - 1) / 2) * SP
    return np.meshgrid(c, c, c, indexing="ij")


def _sphere(radius_mm: float, n: int = 56) -> np.ndarray:
    x, y, z = _coords(n)
    return x**2 + y**2 + z**2 <= radius_mm**2


def test_mesh_volume_of_sphere() -> None:
    r = 10.0
    truth = 4.0 / 3.0 * math.pi * r**3 / 1000.0
    verts, tris = thyroid_mesh(_sphere(r).astype(np.float32), _Grid())
    assert verts.dtype == np.float32 and tris.dtype == np.uint32
    assert verts.shape[1] == 3 and tris.shape[1] == 3
    vol = mesh_volume_ml(verts, tris)
    assert vol == pytest.approx(truth, rel=0.02)
    # closed: every edge is shared by exactly two triangles
    e = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert np.all(counts == 2)
    # outward winding: the normal of each triangle points away from the centre
    c = verts.mean(axis=0)
    v0, v1, v2 = (verts[tris[:, k]].astype(np.float64) for k in range(3))
    normals = np.cross(v1 - v0, v2 - v0)
    assert np.mean(np.einsum("ij,ij->i", normals, v0 - c) > 0) > 0.99


def test_mesh_world_placement_and_mirrored_direction() -> None:
    mask = _sphere(6.0, n=32).astype(np.float32)
    rot = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    grid = _Grid(origin_mm=(100.0, -50.0, 20.0), direction=rot)
    verts, _ = thyroid_mesh(mask, grid, smooth_iterations=0)
    centre = np.asarray(grid.origin_mm) + rot @ (np.full(3, (32 - 1) / 2 * SP))
    np.testing.assert_allclose(verts.mean(axis=0), centre, atol=0.05)
    mirrored = _Grid(direction=np.diag([1.0, 1.0, -1.0]))
    v2, t2 = thyroid_mesh(mask, mirrored)
    assert mesh_volume_ml(v2, t2) > 0
    empty_v, empty_t = thyroid_mesh(np.zeros((4, 4, 4), np.float32), _Grid())
    assert empty_v.shape == (0, 3) and empty_t.shape == (0, 3)


def test_mesh_touching_volume_border_is_closed() -> None:
    mask = np.ones((10, 10, 10), np.float32)
    verts, tris = thyroid_mesh(mask, _Grid(spacing_mm=(1.0, 1.0, 1.0)), smooth_iterations=0)
    # marching cubes at 0.5 puts the surface half a voxel outside the voxel centres
    assert mesh_volume_ml(verts, tris) * 1000 == pytest.approx(1000.0, rel=0.02)


def test_ellipsoid_formula_on_exact_ellipsoid() -> None:
    a, b, c = 22.0, 8.0, 7.0  # semi-axes (mm): length 44, width 16, depth 14
    n = 100
    x, y, z = _coords(n)
    # rotate the ellipsoid so that PCA has to find the axes
    R = Rotation.from_euler("xyz", [10, 20, 35], degrees=True).as_matrix()
    p = np.stack([x, y, z], axis=-1) @ R  # rows = R^T p
    mask = (p[..., 0] / a) ** 2 + (p[..., 1] / b) ** 2 + (p[..., 2] / c) ** 2 <= 1.0
    truth = 4.0 / 3.0 * math.pi * a * b * c / 1000.0
    ml, length, width, depth = ellipsoid_volume(mask, SP)
    assert length == pytest.approx(2 * a, abs=1.0)
    assert sorted([width, depth]) == pytest.approx([2 * c, 2 * b], abs=1.0)
    assert ml == pytest.approx(truth, rel=0.05)
    assert ellipsoid_volume(np.zeros((3, 3, 3), bool), SP) == (0.0, 0.0, 0.0, 0.0)


def test_lobes_split_and_sum() -> None:
    n = 100
    x, y, z = _coords(n)
    lobe_r = ((x + 12) / 7) ** 2 + (y / 6) ** 2 + (z / 18) ** 2 <= 1
    lobe_l = ((x - 12) / 7) ** 2 + (y / 6) ** 2 + (z / 18) ** 2 <= 1
    isthmus = (np.abs(x) < 8) & (np.abs(y + 3) < 1.0) & (np.abs(z) < 4)
    gland = lobe_r | lobe_l | isthmus
    right, left = split_lobes(gland, SP)
    assert right.sum() == pytest.approx(lobe_r.sum(), rel=0.03)
    assert left.sum() == pytest.approx(lobe_l.sum(), rel=0.03)
    total, rows = thyroid_ellipsoid_volume(gland, SP)
    assert len(rows) == 2
    truth = 2 * 4 / 3 * math.pi * 7 * 6 * 18 / 1000
    assert total == pytest.approx(truth, rel=0.05)


def test_largest_component() -> None:
    m = np.zeros((20, 20, 20), bool)
    m[1:4, 1:4, 1:4] = True
    m[10:18, 10:18, 10:18] = True
    out = largest_component(m)
    assert out.sum() == 8**3 and not out[2, 2, 2]
    assert not largest_component(np.zeros((3, 3, 3), bool)).any()


def test_hd95() -> None:
    s10 = _sphere(10.0)
    assert surface_distance_hd95_mm(s10, s10, SP) == 0.0
    s11 = _sphere(11.0)
    assert surface_distance_hd95_mm(s10, s11, SP) == pytest.approx(1.0, abs=0.3)
    assert surface_distance_hd95_mm(s11, s10, (SP, SP, SP)) == pytest.approx(1.0, abs=0.3)
    assert surface_distance_hd95_mm(s10, np.zeros_like(s10), SP) == math.inf
    # a shift of 2 voxels along x is 1 mm
    shifted = np.roll(s10, 2, axis=0)
    assert surface_distance_hd95_mm(s10, shifted, SP) == pytest.approx(1.0, abs=0.05)
