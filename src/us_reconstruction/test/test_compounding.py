"""Tests of freehand compounding (us_reconstruction.compounding)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from us_reconstruction.compounding import (
    Compounder,
    FanGeometry,
    compound_numpy_baseline,
)
from us_reconstruction.grid import VolumeGrid

from us_reconstruction import compounding as cmp


def _T(spacing: float = 1.0, offset: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    """T_world_image: u -> +x, v -> +y, spacing mm/px, pixel (0, 0) at ``offset``."""
    T = np.diag([spacing, spacing, 1.0, 1.0])
    T[:3, 3] = offset
    return T


GRID = VolumeGrid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (10, 10, 3))


@pytest.mark.parametrize("interp", ["nearest", "linear"])
@pytest.mark.parametrize(
    ("mode", "expected", "expected_reversed"),
    [("mean", 150.0, 150.0), ("max", 200.0, 200.0), ("latest", 200.0, 100.0)],
)
def test_two_overlapping_frames(
    interp: str, mode: str, expected: float, expected_reversed: float
) -> None:
    T = _T(offset=(2, 2, 1))  # pixels land exactly on voxel centres
    for values, want in (((100, 200), expected), ((200, 100), expected_reversed)):
        c = Compounder(GRID, interpolation=interp, compounding=mode)  # type: ignore[arg-type]
        for val in values:
            stats = c.insert(np.full((4, 4), val, np.uint8), T)
            assert stats.inserted and stats.pixels_used == 16 and stats.pixels_outside == 0
        vol = c.volume()
        np.testing.assert_allclose(vol[2:6, 2:6, 1], want)
        assert c.filled_mask().sum() == 16
        assert vol[0, 0, 0] == 0 and not c.filled_mask()[0, 0, 0]


@pytest.mark.parametrize("mode", ["mean", "max", "latest"])
def test_trilinear_weights_at_corner_offset(mode: str) -> None:
    # one pixel at continuous voxel index (3.25, 4.5, 1.75)
    c = Compounder(GRID, interpolation="linear", compounding=mode)  # type: ignore[arg-type]
    c.insert(np.full((1, 1), 80, np.uint8), _T(offset=(3.25, 4.5, 1.75)))
    w = c.weights()
    expected = {}
    for i, wx in ((3, 0.75), (4, 0.25)):
        for j, wy in ((4, 0.5), (5, 0.5)):
            for k, wz in ((1, 0.25), (2, 0.75)):
                expected[(i, j, k)] = wx * wy * wz
    for idx, val in expected.items():
        assert w[idx] == pytest.approx(val)
    assert w.sum() == pytest.approx(1.0)
    assert c.filled_mask().sum() == 8
    np.testing.assert_allclose(c.volume()[c.filled_mask()], 80.0, rtol=1e-6)


def test_pixel_on_voxel_centre_fills_one_voxel_linear() -> None:
    c = Compounder(GRID, interpolation="linear")
    c.insert(np.full((1, 1), 10, np.uint8), _T(offset=(5, 5, 1)))
    assert c.filled_mask().sum() == 1 and c.weights()[5, 5, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_run_kernels_match_pixel_by_pixel_ones(mode: int) -> None:
    rng = np.random.default_rng(1)
    grid = VolumeGrid((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (30, 24, 20))
    img = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    lab = rng.integers(0, 3, (40, 50), dtype=np.uint8)  # class 2 is ignored (num_classes=2)
    a = np.radians(20)
    T = np.eye(4)
    T[:3, 0] = 0.27 * np.array([np.cos(a), np.sin(a), 0.1])
    T[:3, 1] = 0.27 * np.array([0.0, 0.3, 1.0]) / np.hypot(0.3, 1.0)
    T[:3, 3] = (-1.0, 0.5, 0.2)  # partly outside the grid: exercises the border path
    M = np.ascontiguousarray((grid.T_voxel_world @ T)[:3])
    n = grid.num_voxels
    mask = np.zeros((1, 1), np.uint8)
    args = (img, mask, False, lab, True, M, 0, 0, 50, 40, *grid.dims, mode)
    args2 = (255 - img, mask, False, np.ascontiguousarray(lab[::-1]), *args[4:])
    kernels = ((cmp._insert_nearest_runs, cmp._insert_nearest),
               (cmp._insert_linear_runs, cmp._insert_linear))  # fmt: skip
    for fast, generic in kernels:
        out = []
        for kernel in (fast, generic):
            acc, w = np.zeros(n, np.float32), np.zeros(n, np.float32)
            labv, stamp = np.zeros((2, n), np.float32), np.full(n, -1, np.int32)
            r1 = kernel(*args, acc, w, stamp, 1, labv)  # frame 1: image
            r2 = kernel(*args2, acc, w, stamp, 2, labv)  # frame 2: other pixels, same pose
            out.append((r1, r2, acc, w, labv))
        (a1, b1, acc1, w1, l1), (a2, b2, acc2, w2, l2) = out
        assert a1 == a2 and b1 == b2 and a1[0] > 0 and a1[1] > 0
        np.testing.assert_allclose(acc1, acc2, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(l1, l2, rtol=1e-5, atol=1e-6)
    if mode == 0:  # the MEAN-only twins
        for twin, generic in ((cmp._insert_nearest_mean, cmp._insert_nearest),
                              (cmp._insert_linear_mean, cmp._insert_linear)):  # fmt: skip
            res = []
            for kernel in (twin, generic):
                acc, w = np.zeros(n, np.float32), np.zeros(n, np.float32)
                labv, stamp = np.zeros((2, n), np.float32), np.full(n, -1, np.int32)
                if kernel is generic:
                    r = kernel(*args, acc, w, stamp, 1, labv)
                elif kernel is cmp._insert_nearest_mean:
                    r = kernel(*args[:-1], acc, w, labv)
                else:
                    r = kernel(*args[:-1], acc, w, stamp, labv)
                res.append((r, acc, w, labv))
            assert res[0][0] == res[1][0]
            for x, y in zip(res[0][1:], res[1][1:], strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-3)


def test_roi_clipping() -> None:
    c = Compounder(GRID, roi=(2, 3, 4, 5))
    img = np.full((10, 10), 50, np.uint8)
    stats = c.insert(img, _T())
    assert stats.pixels_used == 20
    filled = c.filled_mask()[:, :, 0]
    assert filled[2:6, 3:8].all() and filled.sum() == 20


def test_fan_mask_and_clipping() -> None:
    fan = FanGeometry(20.0, -5.0, 10.0, 30.0, -30.0, 30.0)
    m = fan.mask((40, 40))
    assert m[-5 + 20, 20]  # straight down, r = 20
    assert not m[-5 + 8, 20]  # r = 8 < radius start
    assert not m[-5 + 31, 20]  # r = 31 > radius stop
    r, a = 20.0, np.radians(40)  # 40 deg to the right: outside
    assert not m[round(-5 + r * np.cos(a)), round(20 + r * np.sin(a))]
    a = np.radians(25)
    assert m[round(-5 + r * np.cos(a)), round(20 + r * np.sin(a))]
    grid = VolumeGrid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (40, 40, 1))
    c = Compounder(grid, fan=fan)
    stats = c.insert(np.full((40, 40), 9, np.uint8), _T())
    assert stats.pixels_used == int(m.sum())
    np.testing.assert_array_equal(c.filled_mask()[:, :, 0], m.T)
    with pytest.raises(ValueError):
        FanGeometry(0, 0, 10, 5, -30, 30)


def test_auto_grow_keeps_data_aligned() -> None:
    c = Compounder(None, spacing_mm=0.5, grow_margin_mm=1.0)
    img_a = np.full((8, 8), 100, np.uint8)
    stats = c.insert(img_a, _T(0.5, (0, 0, 0)))
    assert stats.grew and c.grid is not None
    grid_a = c.grid
    world_pt = np.array([1.0, 1.5, 0.0])  # a voxel centre covered by frame A
    val_a = c.volume()[tuple(np.round(grid_a.world_to_index(world_pt)).astype(int))]
    assert val_a == pytest.approx(100)
    stats = c.insert(np.full((8, 8), 200, np.uint8), _T(0.5, (-20.0, 10.0, 5.0)))
    assert stats.grew and stats.pixels_outside == 0
    grid_b = c.grid
    assert grid_b is not None and grid_b.num_voxels > grid_a.num_voxels
    # existing data moved by whole voxels: same world point, same value
    idx_b = grid_b.world_to_index(world_pt)
    np.testing.assert_allclose(idx_b, np.round(idx_b), atol=1e-9)
    assert c.volume()[tuple(np.round(idx_b).astype(int))] == pytest.approx(100)
    assert c.filled_mask().sum() == 2 * 64
    idx_new = np.round(grid_b.world_to_index([-20 + 1.0, 10 + 1.5, 5.0])).astype(int)
    assert c.volume()[tuple(idx_new)] == pytest.approx(200)


def test_grow_capped_by_max_voxels() -> None:
    c = Compounder(None, spacing_mm=1.0, grow_margin_mm=0.0, max_voxels=200)
    assert c.insert(np.full((5, 5), 1, np.uint8), _T()).inserted
    stats = c.insert(np.full((5, 5), 1, np.uint8), _T(offset=(100, 0, 0)))
    assert not stats.inserted and "max_voxels=200" in stats.reason
    assert c.grid is not None and c.grid.num_voxels <= 200
    with pytest.raises(ValueError, match="max_voxels"):
        Compounder(GRID, max_voxels=10)


def test_no_grow_drops_outside_pixels() -> None:
    c = Compounder(GRID, auto_grow=False)
    stats = c.insert(np.full((4, 4), 5, np.uint8), _T(offset=(8, 0, 0)))
    assert stats.inserted and stats.pixels_used == 8 and stats.pixels_outside == 8
    assert "outside" in stats.reason


def test_invalid_transform_and_inputs() -> None:
    c = Compounder(GRID)
    T = _T()
    T[0, 3] = np.nan
    stats = c.insert(np.zeros((4, 4), np.uint8), T)
    assert not stats.inserted and "transform" in stats.reason and c.frames_skipped == 1
    with pytest.raises(ValueError, match="uint8"):
        c.insert(np.zeros((4, 4), np.float32), _T())  # type: ignore[arg-type, unused-ignore]
    with pytest.raises(ValueError, match="labels"):
        c.insert(np.zeros((4, 4), np.uint8), _T(), np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError):
        Compounder(GRID, interpolation="cubic")  # type: ignore[arg-type]


def test_hole_filling() -> None:
    grid = VolumeGrid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (12, 12, 9))
    c = Compounder(grid)
    img = np.full((6, 6), 120, np.uint8)
    for z in (0, 2, 4, 6, 8):  # a plane every other voxel: holes at odd z
        c.insert(img, _T(offset=(3, 3, z)))
    assert not c.filled_mask()[5, 5, 3]
    n = c.fill_holes(max_radius_vox=1, min_fraction=0.3)  # corners: 8 of 26
    assert c.filled_mask()[3:9, 3:9, :].all()
    assert n == 36 * 4
    np.testing.assert_allclose(c.volume()[3:9, 3:9, :], 120.0, rtol=1e-5)
    assert not c.filled_mask()[0, 0, 4]  # far from any data: stays empty
    # a real contribution later outweighs the filled-in estimate
    c.insert(np.full((6, 6), 20, np.uint8), _T(offset=(3, 3, 3)))
    assert c.volume()[5, 5, 3] == pytest.approx(20.0, abs=0.1)


def test_labels_fraction_and_map() -> None:
    c = Compounder(GRID, num_classes=3)
    img = np.full((2, 2), 50, np.uint8)
    c.insert(img, _T(offset=(1, 1, 1)), np.array([[1, 1], [0, 2]], np.uint8))
    c.insert(img, _T(offset=(1, 1, 1)), np.array([[1, 0], [0, 9]], np.uint8))  # 9: ignored
    f1 = c.label_fraction(1)
    assert f1[1, 1, 1] == pytest.approx(1.0)
    assert f1[2, 1, 1] == pytest.approx(0.5)
    assert f1[1, 2, 1] == 0.0
    assert c.label_fraction(2)[2, 2, 1] == pytest.approx(1.0)  # only one valid vote
    lm = c.label_map()
    assert lm[1, 1, 1] == 1 and lm[1, 2, 1] == 0 and lm[2, 2, 1] == 2
    with pytest.raises(ValueError):
        c.label_fraction(3)


def test_snapshot_and_reset() -> None:
    grid = VolumeGrid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (4, 4, 2))
    c = Compounder(grid)
    img = np.array([[10, 20, 30, 40]] * 4, np.uint8)
    c.insert(img, _T())
    vol, g2 = c.snapshot(2)
    assert vol.shape == (2, 2, 1) and g2.spacing_mm == (2.0, 2.0, 2.0)
    # u -> x: block x=0,1 holds 10 and 20, block x=2,3 holds 30 and 40 (z=1 is empty)
    np.testing.assert_allclose(vol[:, 0, 0], [15.0, 35.0])
    cmax = Compounder(grid, compounding="max")
    cmax.insert(img, _T())
    np.testing.assert_allclose(cmax.snapshot(2)[0][:, 1, 0], [20.0, 40.0])
    c.reset()
    assert not c.filled_mask().any() and c.grid is grid


def test_numpy_baseline_matches_compounder() -> None:
    rng = np.random.default_rng(3)
    grid = VolumeGrid((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (30, 30, 10))
    img = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    T = _T(0.3, (0.2, 0.1, 2.3))
    acc = np.zeros(grid.dims)
    weight = np.zeros(grid.dims)
    used = compound_numpy_baseline(img, T, grid, acc, weight)
    c = Compounder(grid)
    assert c.insert(img, T).pixels_used == used
    ref = np.divide(acc, weight, out=np.zeros_like(acc), where=weight > 0)
    np.testing.assert_allclose(c.volume(), ref, rtol=1e-5)


# ---------------------------------------------------------------------------------------
# known geometry: synthetic sweeps of a sphere and a box with exact poses


def _sweep(
    inside: Callable[[np.ndarray], np.ndarray], tilt_deg: float, n: int = 121
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Frames 200x160 px at 0.2 mm (40 x 32 mm), tilted in-plane by ``tilt_deg`` about the
    sweep axis z, swept along z from 25 to 55 mm; pixel = 200 where inside(world) else 20."""
    a = np.radians(tilt_deg)
    ex = np.array([np.cos(a), np.sin(a), 0.0])
    ey = np.array([-np.sin(a), np.cos(a), 0.0])
    v, u = np.mgrid[0:160, 0:200]
    frames = []
    for z in np.linspace(25.0, 55.0, n):
        T = np.eye(4)
        T[:3, 0] = 0.2 * ex
        T[:3, 1] = 0.2 * ey
        T[:3, 3] = np.array([-15.0, -19.0, z])
        pts = u[..., None] * T[:3, 0] + v[..., None] * T[:3, 1] + T[:3, 3]
        ins = inside(pts)
        frames.append((np.where(ins, 200, 20).astype(np.uint8), T, ins.astype(np.uint8)))
    return frames


@pytest.mark.parametrize("interp", ["nearest", "linear"])
def test_sphere_sweep_size_and_place(interp: str) -> None:
    centre, radius = np.array([5.0, -3.0, 40.0]), 10.0
    frames = _sweep(lambda p: np.linalg.norm(p - centre, axis=-1) <= radius, 15.0)
    c = Compounder(None, spacing_mm=0.5, interpolation=interp)  # type: ignore[arg-type]
    for img, T, lab in frames:
        assert c.insert(img, T, lab).inserted
    grid = c.grid
    assert grid is not None
    for mask in (c.volume() > 110, c.label_fraction(1) >= 0.5):
        ijk = np.argwhere(mask)
        got_centre = grid.index_to_world(ijk.mean(axis=0))
        np.testing.assert_allclose(got_centre, centre, atol=0.5)  # one voxel
        r = (3 * mask.sum() * grid.voxel_volume_mm3() / (4 * np.pi)) ** (1 / 3)
        assert r == pytest.approx(radius, abs=0.5)
        ext = grid.index_to_world(ijk.max(axis=0)) - grid.index_to_world(ijk.min(axis=0))
        np.testing.assert_allclose(ext, 2 * radius, atol=1.0)  # +-1 voxel each side


def test_box_sweep_size_and_place() -> None:
    lo, hi = np.array([-4.0, -6.0, 32.0]), np.array([8.0, 2.0, 48.0])
    frames = _sweep(lambda p: np.all((p >= lo) & (p <= hi), axis=-1), 0.0)
    c = Compounder(None, spacing_mm=0.5)
    for img, T, _ in frames:
        c.insert(img, T)
    grid = c.grid
    assert grid is not None
    ijk = np.argwhere(c.volume() > 110)
    got_lo = grid.index_to_world(ijk.min(axis=0))
    got_hi = grid.index_to_world(ijk.max(axis=0))
    np.testing.assert_allclose(got_lo, lo, atol=0.5)
    np.testing.assert_allclose(got_hi, hi, atol=0.5)


def test_warmup_runs() -> None:
    assert cmp.warmup() >= 0.0
