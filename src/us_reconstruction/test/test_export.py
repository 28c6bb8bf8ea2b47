"""Tests of volume and mesh export (us_reconstruction.export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from us_reconstruction.export import (
    VolumeFileError,
    read_mesh,
    read_volume,
    write_mesh,
    write_volume,
)
from us_reconstruction.grid import VolumeGrid


def _grid() -> VolumeGrid:
    a = np.radians(25)
    direction = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return VolumeGrid((-12.5, 30.25, 7.0), (0.5, 0.75, 1.25), (7, 5, 4), direction)


def _volume(dtype: type) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((7, 5, 4)) * 250).astype(dtype)


NAMES = ["v.nrrd", "v.nii", "v.nii.gz", "v.mha"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("compress", [True, False])
def test_volume_round_trip(tmp_path: Path, name: str, dtype: type, compress: bool) -> None:
    grid, vol = _grid(), _volume(dtype)
    path = tmp_path / name
    write_volume(path, vol, grid, compress=compress)
    back, g = read_volume(path)
    assert back.dtype == vol.dtype and back.shape == vol.shape
    np.testing.assert_array_equal(back, vol)
    np.testing.assert_allclose(g.origin_mm, grid.origin_mm, atol=1e-5)
    np.testing.assert_allclose(g.spacing_mm, grid.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(g.direction, grid.direction, atol=1e-6)


def test_nifti_affine_is_ras(tmp_path: Path) -> None:
    grid = _grid()
    write_volume(tmp_path / "v.nii.gz", _volume(np.uint8), grid)
    img: Any = nib.load(str(tmp_path / "v.nii.gz"))
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ grid.T_world_voxel  # LPS world -> RAS
    np.testing.assert_allclose(img.affine, expected, atol=1e-5)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    # a world declared RAS goes in unchanged
    write_volume(tmp_path / "r.nii", _volume(np.uint8), grid, world="RAS")
    img = nib.load(str(tmp_path / "r.nii"))
    np.testing.assert_allclose(img.affine, grid.T_world_voxel, atol=1e-5)


def test_nrrd_header_and_ras_world(tmp_path: Path) -> None:
    grid = VolumeGrid((1.0, 2.0, 3.0), (0.5, 0.5, 0.5), (2, 3, 4))
    vol = np.zeros((2, 3, 4), np.uint8)
    write_volume(tmp_path / "a.nrrd", vol, grid, compress=False)
    head = (tmp_path / "a.nrrd").read_bytes().split(b"\n\n")[0].decode()
    assert "space: left-posterior-superior" in head
    assert "space origin: (1.0,2.0,3.0)" in head
    assert "space directions: (0.5,0,0) (0,0.5,0) (0,0,0.5)" in head
    write_volume(tmp_path / "b.nrrd", vol, grid, world="RAS")
    assert b"right-anterior-superior" in (tmp_path / "b.nrrd").read_bytes()[:400]
    # an RAS file read into an LPS world: x and y flip
    _, g = read_volume(tmp_path / "b.nrrd", world="LPS")
    np.testing.assert_allclose(g.origin_mm, (-1.0, -2.0, 3.0))
    np.testing.assert_allclose(g.direction, np.diag([-1.0, -1.0, 1.0]))
    _, g = read_volume(tmp_path / "b.nrrd", world="RAS")
    np.testing.assert_allclose(g.origin_mm, (1.0, 2.0, 3.0))


def test_formats_agree_for_ras_world(tmp_path: Path) -> None:
    grid, vol = _grid(), _volume(np.uint8)
    for name in NAMES:
        write_volume(tmp_path / name, vol, grid, world="RAS")
    grids = [read_volume(tmp_path / n, world="LPS")[1] for n in NAMES]
    for g in grids[1:]:
        np.testing.assert_allclose(g.T_world_voxel, grids[0].T_world_voxel, atol=1e-5)
    np.testing.assert_allclose(grids[0].origin_mm, _FLIP3 @ np.asarray(grid.origin_mm))


_FLIP3 = np.diag([-1.0, -1.0, 1.0])


def test_mha_header(tmp_path: Path) -> None:
    grid = VolumeGrid((1.0, 2.0, 3.0), (0.5, 0.25, 2.0), (2, 3, 4))
    write_volume(tmp_path / "a.mha", np.zeros((2, 3, 4), np.float32), grid, compress=False)
    text = (tmp_path / "a.mha").read_bytes().split(b"ElementDataFile")[0].decode()
    assert "Offset = 1.0 2.0 3.0" in text
    assert "ElementSpacing = 0.5 0.25 2.0" in text
    assert "TransformMatrix = 1.0 0 0 0 1.0 0 0 0 1.0" in text
    assert "ElementType = MET_FLOAT" in text


def test_volume_errors(tmp_path: Path) -> None:
    grid, vol = _grid(), _volume(np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        write_volume(tmp_path / "a.nrrd", vol[:3], grid)
    with pytest.raises(VolumeFileError, match="extension"):
        write_volume(tmp_path / "a.tiff", vol, grid)
    write_volume(tmp_path / "a.nrrd", vol, grid)
    data = (tmp_path / "a.nrrd").read_bytes()
    (tmp_path / "trunc.nrrd").write_bytes(data[:-20])
    with pytest.raises(VolumeFileError, match=r"trunc\.nrrd.*gzip"):
        read_volume(tmp_path / "trunc.nrrd")
    (tmp_path / "bad.nrrd").write_bytes(b"hello\n\n" + data)
    with pytest.raises(VolumeFileError, match=r"bad\.nrrd: not a NRRD"):
        read_volume(tmp_path / "bad.nrrd")
    write_volume(tmp_path / "r.nrrd", vol, grid, compress=False)
    (tmp_path / "short.nrrd").write_bytes((tmp_path / "r.nrrd").read_bytes()[:-1])
    with pytest.raises(VolumeFileError, match="need 140"):
        read_volume(tmp_path / "short.nrrd")
    write_volume(tmp_path / "a.mha", vol, grid, compress=False)
    (tmp_path / "short.mha").write_bytes((tmp_path / "a.mha").read_bytes()[:-5])
    with pytest.raises(VolumeFileError, match=r"short\.mha.*truncated"):
        read_volume(tmp_path / "short.mha")
    write_volume(tmp_path / "z.mha", vol, grid)
    raw = bytearray((tmp_path / "z.mha").read_bytes())
    raw[-10:] = b"\x00" * 10
    (tmp_path / "corrupt.mha").write_bytes(bytes(raw))
    with pytest.raises(VolumeFileError, match=r"corrupt\.mha"):
        read_volume(tmp_path / "corrupt.mha")
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(VolumeFileError, match=r"junk\.nii\.gz: cannot read NIfTI"):
        read_volume(tmp_path / "junk.nii.gz")
    with pytest.raises(VolumeFileError, match="not found"):
        read_volume(tmp_path / "missing.mha")


def _cube() -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 2) for z in (0, 3)], dtype=np.float64)
    f = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    return v + np.array([10.5, -3.25, 7.0]), f


@pytest.mark.parametrize("name", ["m.ply", "m.stl"])
def test_mesh_round_trip(tmp_path: Path, name: str) -> None:
    v, f = _cube()
    write_mesh(tmp_path / name, v, f)
    v2, f2 = read_mesh(tmp_path / name)
    assert f2.shape == f.shape and len(v2) == len(v)
    # same triangles (as vertex coordinates), whatever the vertex order
    np.testing.assert_allclose(np.sort(v2[f2].reshape(len(f), -1), axis=0),
                               np.sort(v[f].reshape(len(f), -1), axis=0), atol=1e-5)  # fmt: skip
    if name.endswith(".ply"):
        np.testing.assert_allclose(v2, v, atol=1e-5)
        np.testing.assert_array_equal(f2, f)


def test_stl_normals_point_outward(tmp_path: Path) -> None:
    v, f = _cube()
    write_mesh(tmp_path / "m.stl", v, f)
    raw = (tmp_path / "m.stl").read_bytes()
    rec = np.frombuffer(raw, dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")],
                        offset=84)  # fmt: skip
    centre = v.mean(axis=0)
    outward = rec["v"].mean(axis=1) - centre
    assert np.all(np.sum(rec["n"] * outward, axis=1) > 0)


def test_mesh_errors(tmp_path: Path) -> None:
    v, f = _cube()
    write_mesh(tmp_path / "m.stl", v, f)
    (tmp_path / "t.stl").write_bytes((tmp_path / "m.stl").read_bytes()[:-7])
    with pytest.raises(VolumeFileError, match=r"t\.stl: binary STL of 12 triangles"):
        read_mesh(tmp_path / "t.stl")
    (tmp_path / "a.stl").write_text("solid x\nendsolid x\n" + " " * 90)
    with pytest.raises(VolumeFileError, match="ASCII STL"):
        read_mesh(tmp_path / "a.stl")
    write_mesh(tmp_path / "m.ply", v, f)
    (tmp_path / "t.ply").write_bytes((tmp_path / "m.ply").read_bytes()[:-3])
    with pytest.raises(VolumeFileError, match=r"t\.ply: truncated face"):
        read_mesh(tmp_path / "t.ply")
    (tmp_path / "a.ply").write_text("ply\nformat ascii 1.0\nend_header\n")
    with pytest.raises(VolumeFileError, match="binary_little_endian"):
        read_mesh(tmp_path / "a.ply")
    with pytest.raises(ValueError, match="out of range"):
        write_mesh(tmp_path / "x.ply", v, f + 10)
