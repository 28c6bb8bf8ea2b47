"""Write and read reconstructed volumes (NRRD, NIfTI, MetaImage) and meshes (PLY, STL).

**World convention.** Volumes live on a :class:`~us_reconstruction.grid.VolumeGrid` whose
origin and directions are in our world / tracker / reference frame (mm). That frame is
written to files as **LPS** (left-posterior-superior: +x towards the patient's left,
+y posterior, +z superior), the convention of DICOM, ITK, MetaImage and of 3D Slicer's
*files* (Slicer shows RAS on screen and converts LPS files on load). So a volume written
here opens in 3D Slicer at the same place as a PLUS/Slicer tracked sequence recorded with
the same tracker, and the NRRD, NIfTI and MetaImage copies of one volume overlay exactly.
If your world frame is RAS instead, pass ``world="RAS"``: the values are then converted
(x and y negated) where a format needs LPS, and read back into RAS.

* **NRRD** (``.nrrd``, raw or gzip): ``space: left-posterior-superior`` (or
  ``right-anterior-superior`` with ``world="RAS"``, which NRRD can state directly),
  ``space directions`` = the voxel axis vectors (direction x spacing, mm), ``space origin``
  = the centre of voxel (0, 0, 0). Reading converts a file's RAS/LPS space to ``world``.
* **NIfTI** (``.nii``, ``.nii.gz``, via nibabel): the NIfTI affine is by definition
  voxel -> **RAS** mm, so ``affine = diag(-1, -1, 1, 1) @ T_world_voxel`` for an LPS world
  (qform and sform codes 1 = scanner, units mm).
* **MetaImage** (``.mha``, data attached, optional zlib): ``Offset`` = origin,
  ``ElementSpacing``, ``TransformMatrix`` = the direction matrix column by column (ITK
  convention), always LPS.

Voxel data order in all three: i fastest (x), then j, then k, i.e. the ``[i, j, k]`` array
in Fortran order. Supported voxel types: uint8, int8, uint16, int16, int32, uint32,
float32, float64.

Meshes (``vertices (N, 3)`` mm in the same world frame, ``faces (M, 3)`` vertex indices,
counter-clockwise seen from outside): binary little-endian **PLY** and binary **STL**
(STL repeats vertices per triangle; reading merges identical ones).

Every problem with a file raises :class:`VolumeFileError` (a ValueError) naming the file
and what is wrong.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from us_reconstruction.grid import VolumeGrid

__all__ = [
    "VolumeFileError",
    "read_mesh",
    "read_volume",
    "write_mesh",
    "write_volume",
]

World = Literal["LPS", "RAS"]
_FLIP = np.diag([-1.0, -1.0, 1.0])  # LPS <-> RAS (its own inverse)

_NRRD_TYPES: dict[str, str] = {
    "uchar": "u1", "unsigned char": "u1", "uint8": "u1", "uint8_t": "u1",
    "signed char": "i1", "int8": "i1", "int8_t": "i1", "char": "i1",
    "short": "i2", "short int": "i2", "signed short": "i2", "signed short int": "i2",
    "int16": "i2", "int16_t": "i2",
    "ushort": "u2", "unsigned short": "u2", "unsigned short int": "u2", "uint16": "u2",
    "uint16_t": "u2",
    "int": "i4", "signed int": "i4", "int32": "i4", "int32_t": "i4",
    "uint": "u4", "unsigned int": "u4", "uint32": "u4", "uint32_t": "u4",
    "float": "f4", "double": "f8",
}  # fmt: skip
_NRRD_TYPE_NAMES = {"u1": "uint8", "i1": "int8", "i2": "int16", "u2": "uint16",
                    "i4": "int32", "u4": "uint32", "f4": "float", "f8": "double"}  # fmt: skip
_MET_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_SHORT": "i2", "MET_USHORT": "u2",
              "MET_INT": "i4", "MET_UINT": "u4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}  # fmt: skip
_MET_NAMES = {v: k for k, v in _MET_TYPES.items()}
_SPACES = {
    "left-posterior-superior": "LPS", "lps": "LPS",
    "right-anterior-superior": "RAS", "ras": "RAS",
}  # fmt: skip


class VolumeFileError(ValueError):
    """A volume or mesh file cannot be read or written: ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _kind(path: Path) -> str:
    name = path.name.lower()
    for ext, kind in ((".nii.gz", "nii"), (".nii", "nii"), (".nrrd", "nrrd"),
                      (".mha", "mha"), (".ply", "ply"), (".stl", "stl")):  # fmt: skip
        if name.endswith(ext):
            return kind
    raise VolumeFileError(path, "unsupported extension (use .nrrd, .nii, .nii.gz, .mha, "
                                ".ply or .stl)")  # fmt: skip


def _check_world(world: str) -> None:
    if world not in ("LPS", "RAS"):
        raise ValueError(f"world must be 'LPS' or 'RAS', got {world!r}")


def _lps_axes(grid: VolumeGrid, world: World) -> tuple[npt.NDArray[np.float64], ...]:
    """(origin (3,), axes (3, 3) columns = voxel axis vectors in mm) in LPS."""
    T = grid.T_world_voxel
    origin, axes = T[:3, 3].copy(), T[:3, :3].copy()
    if world == "RAS":
        origin, axes = _FLIP @ origin, _FLIP @ axes
    return origin, axes


def _grid_from_axes(
    path: Path,
    origin: npt.NDArray[np.float64],
    axes: npt.NDArray[np.float64],
    dims: tuple[int, ...],
    space: str,
    world: World,
) -> VolumeGrid:
    """Grid in ``world`` from an origin and axis vectors (columns) given in ``space``."""
    if space != world:
        origin, axes = _FLIP @ origin, _FLIP @ axes
    spacing = np.linalg.norm(axes, axis=0)
    if not np.all(np.isfinite(axes)) or np.any(spacing <= 0):
        raise VolumeFileError(path, f"invalid voxel axes / spacing {axes.T.tolist()}")
    try:
        return VolumeGrid(
            origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
            spacing_mm=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
            dims=(int(dims[0]), int(dims[1]), int(dims[2])),
            direction=axes / spacing,
        )
    except ValueError as exc:
        raise VolumeFileError(path, f"invalid geometry: {exc}") from exc


def _check_volume(volume: npt.NDArray[Any], grid: VolumeGrid) -> npt.NDArray[Any]:
    vol = np.asarray(volume)
    if vol.shape != grid.dims:
        raise ValueError(f"volume shape {vol.shape} does not match grid dims {grid.dims}")
    if vol.dtype.str[1:] not in _NRRD_TYPE_NAMES:
        raise ValueError(f"unsupported voxel type {vol.dtype}")
    if vol.dtype.kind == "b":
        vol = vol.astype(np.uint8)
    return vol.astype(vol.dtype.newbyteorder("<"), copy=False)


def _fmt(x: float) -> str:
    return repr(float(x)) if x != 0 else "0"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# volumes


def write_volume(
    path: str | os.PathLike[str],
    volume: npt.NDArray[Any],
    grid: VolumeGrid,
    *,
    compress: bool = True,
    world: World = "LPS",
) -> None:
    """Write a ``(nx, ny, nz)`` volume on ``grid`` (world mm) to ``.nrrd``, ``.nii``,
    ``.nii.gz`` or ``.mha`` (chosen by extension).

    ``compress``: gzip (NRRD) / zlib (MetaImage); ``.nii.gz`` is always, ``.nii`` never
    compressed. ``world``: what our world frame is ("LPS", the default, or "RAS").
    Raises ValueError for bad arguments, VolumeFileError for an unknown extension.
    """
    _check_world(world)
    p = Path(path)
    kind = _kind(p)
    if kind in ("ply", "stl"):
        raise VolumeFileError(p, "a mesh extension; use write_mesh for meshes")
    vol = _check_volume(volume, grid)
    if kind == "nrrd":
        _write_nrrd(p, vol, grid, compress, world)
    elif kind == "mha":
        _write_mha(p, vol, grid, compress, world)
    else:
        _write_nifti(p, vol, grid, world)


def read_volume(
    path: str | os.PathLike[str], *, world: World = "LPS"
) -> tuple[npt.NDArray[Any], VolumeGrid]:
    """Read a volume written by :func:`write_volume` (or by 3D Slicer / ITK / nibabel):
    returns ``(volume (nx, ny, nz), grid)`` with the grid in ``world`` coordinates."""
    _check_world(world)
    p = Path(path)
    kind = _kind(p)
    if not p.is_file():
        raise VolumeFileError(p, "file not found")
    try:
        if kind == "nrrd":
            return _read_nrrd(p, world)
        if kind == "mha":
            return _read_mha(p, world)
        if kind == "nii":
            return _read_nifti(p, world)
    except OSError as exc:
        raise VolumeFileError(p, f"cannot read: {exc}") from exc
    raise VolumeFileError(p, "a mesh extension; use read_mesh for meshes")


# NRRD ----------------------------------------------------------------------------------


def _write_nrrd(path: Path, vol: npt.NDArray[Any], grid: VolumeGrid, compress: bool,
                world: World) -> None:  # fmt: skip
    origin, axes = grid.T_world_voxel[:3, 3], grid.T_world_voxel[:3, :3]
    space = "left-posterior-superior" if world == "LPS" else "right-anterior-superior"
    vecs = " ".join("(" + ",".join(_fmt(x) for x in axes[:, a]) + ")" for a in range(3))
    header = [
        "NRRD0004",
        "# written by us_reconstruction.export",
        f"type: {_NRRD_TYPE_NAMES[vol.dtype.str[1:]]}",
        "dimension: 3",
        f"space: {space}",
        f"sizes: {vol.shape[0]} {vol.shape[1]} {vol.shape[2]}",
        f"space directions: {vecs}",
        "kinds: domain domain domain",
        "endian: little",
        f"encoding: {'gzip' if compress else 'raw'}",
        'space units: "mm" "mm" "mm"',
        "space origin: (" + ",".join(_fmt(x) for x in origin) + ")",
    ]
    data = vol.tobytes(order="F")
    if compress:
        data = gzip.compress(data, compresslevel=1, mtime=0)
    _write_atomic(path, ("\n".join(header) + "\n\n").encode("ascii") + data)


def _read_header_block(path: Path, raw: bytes, magic_check: bool) -> tuple[list[str], int]:
    """Lines of a NRRD header up to the blank line, and the data offset."""
    end = raw.find(b"\n\n")
    if end < 0:
        raise VolumeFileError(path, "no blank line ending the NRRD header (truncated?)")
    try:
        text = raw[:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise VolumeFileError(path, "NRRD header is not ASCII text") from exc
    lines = text.split("\n")
    if magic_check and not lines[0].startswith("NRRD000"):
        raise VolumeFileError(path, f"not a NRRD file (first line {lines[0][:20]!r})")
    return lines, end + 2


def _parse_vector(path: Path, text: str, what: str) -> list[float] | None:
    text = text.strip()
    if text == "none":
        return None
    m = re.fullmatch(r"\(([^()]*)\)", text)
    if not m:
        raise VolumeFileError(path, f"bad {what} vector {text!r}")
    try:
        return [float(x) for x in m.group(1).split(",")]
    except ValueError as exc:
        raise VolumeFileError(path, f"bad number in {what} {text!r}") from exc


def _read_nrrd(path: Path, world: World) -> tuple[npt.NDArray[Any], VolumeGrid]:
    raw = path.read_bytes()
    lines, offset = _read_header_block(path, raw, True)
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line or line.startswith("#") or ":=" in line:
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            raise VolumeFileError(path, f"bad NRRD header line {line!r}")
        fields[key.strip().lower()] = value.strip()
    for req in ("type", "dimension", "sizes", "encoding"):
        if req not in fields:
            raise VolumeFileError(path, f"NRRD header has no '{req}' field")
    if fields["dimension"] != "3":
        raise VolumeFileError(path, f"need a 3-D volume, dimension is {fields['dimension']}")
    code = _NRRD_TYPES.get(fields["type"].lower())
    if code is None:
        raise VolumeFileError(path, f"unsupported NRRD type {fields['type']!r}")
    try:
        dims = tuple(int(x) for x in fields["sizes"].split())
    except ValueError as exc:
        raise VolumeFileError(path, f"bad sizes {fields['sizes']!r}") from exc
    if len(dims) != 3 or min(dims) < 1:
        raise VolumeFileError(path, f"bad sizes {fields['sizes']!r}")
    if "data file" in fields or "datafile" in fields:
        raise VolumeFileError(path, "detached NRRD data files are not supported")
    space = _SPACES.get(fields.get("space", "left-posterior-superior").lower())
    if space is None:
        raise VolumeFileError(path, f"unsupported NRRD space {fields['space']!r} (LPS/RAS)")
    if "space directions" in fields:
        parts = re.findall(r"\([^()]*\)|none", fields["space directions"])
        vecs = [_parse_vector(path, s, "space directions") for s in parts]
        if len(vecs) != 3 or any(v is None or len(v) != 3 for v in vecs):
            raise VolumeFileError(path, "space directions need three 3-vectors")
        axes = np.array(vecs, dtype=np.float64).T
    elif "spacings" in fields:
        try:
            axes = np.diag([float(x) for x in fields["spacings"].split()])
        except ValueError as exc:
            raise VolumeFileError(path, f"bad spacings {fields['spacings']!r}") from exc
        if axes.shape != (3, 3):
            raise VolumeFileError(path, "spacings needs 3 values")
    else:
        axes = np.eye(3)
    origin_vec = _parse_vector(path, fields.get("space origin", "(0,0,0)"), "space origin")
    if origin_vec is None or len(origin_vec) != 3:
        raise VolumeFileError(path, "space origin needs 3 values")
    dtype = np.dtype(code).newbyteorder(">" if fields.get("endian") == "big" else "<")
    nbytes = int(np.prod(dims)) * dtype.itemsize
    data = raw[offset:]
    enc = fields["encoding"].lower()
    if enc in ("gzip", "gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise VolumeFileError(path, f"corrupt gzip data: {exc}") from exc
    elif enc != "raw":
        raise VolumeFileError(path, f"unsupported NRRD encoding {enc!r} (raw, gzip)")
    if len(data) != nbytes:
        raise VolumeFileError(path, f"data is {len(data)} bytes, sizes {dims} x "
                                    f"{dtype.itemsize} need {nbytes}")  # fmt: skip
    vol = np.frombuffer(data, dtype=dtype).reshape(dims, order="F")
    grid = _grid_from_axes(path, np.asarray(origin_vec), axes, dims, space, world)
    return np.ascontiguousarray(vol.astype(dtype.newbyteorder("="))), grid


# MetaImage -----------------------------------------------------------------------------


def _write_mha(path: Path, vol: npt.NDArray[Any], grid: VolumeGrid, compress: bool,
               world: World) -> None:  # fmt: skip
    origin, axes = _lps_axes(grid, world)
    spacing = np.linalg.norm(axes, axis=0)
    direction = axes / spacing
    data = vol.tobytes(order="F")
    if compress:
        data = zlib.compress(data, 1)
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        f"CompressedData = {'True' if compress else 'False'}",
    ]
    if compress:
        header.append(f"CompressedDataSize = {len(data)}")
    header += [
        "TransformMatrix = " + " ".join(_fmt(direction[r, c]) for c in range(3) for r in range(3)),
        "Offset = " + " ".join(_fmt(x) for x in origin),
        "CenterOfRotation = 0 0 0",
        "ElementSpacing = " + " ".join(_fmt(x) for x in spacing),
        f"DimSize = {vol.shape[0]} {vol.shape[1]} {vol.shape[2]}",
        f"ElementType = {_MET_NAMES[vol.dtype.str[1:]]}",
        "ElementDataFile = LOCAL",
    ]
    _write_atomic(path, ("\n".join(header) + "\n").encode("ascii") + data)


def _read_mha(path: Path, world: World) -> tuple[npt.NDArray[Any], VolumeGrid]:
    raw = path.read_bytes()
    fields: dict[str, str] = {}
    pos = 0
    while True:
        nl = raw.find(b"\n", pos)
        if nl < 0 or nl - pos > 4096:
            raise VolumeFileError(path, "MetaImage header has no 'ElementDataFile' line")
        try:
            line = raw[pos:nl].decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise VolumeFileError(path, "MetaImage header is not ASCII text") from exc
        pos = nl + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise VolumeFileError(path, f"bad MetaImage header line {line!r}")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    if fields["elementdatafile"].upper() != "LOCAL":
        raise VolumeFileError(path, "detached MetaImage data files are not supported")

    def floats(name: str, n: int, default: list[float] | None = None) -> list[float]:
        if name not in fields:
            if default is None:
                raise VolumeFileError(path, f"MetaImage header has no '{name}'")
            return default
        try:
            vals = [float(x) for x in fields[name].split()]
        except ValueError as exc:
            raise VolumeFileError(path, f"bad number in {name} = {fields[name]!r}") from exc
        if len(vals) != n:
            raise VolumeFileError(path, f"{name} needs {n} values, got {len(vals)}")
        return vals

    if fields.get("ndims", "3") != "3":
        raise VolumeFileError(path, f"need a 3-D volume, NDims = {fields.get('ndims')}")
    dims = tuple(int(x) for x in floats("dimsize", 3))
    if min(dims) < 1:
        raise VolumeFileError(path, f"bad DimSize {dims}")
    code = _MET_TYPES.get(fields.get("elementtype", "").upper())
    if code is None:
        raise VolumeFileError(path, f"unsupported ElementType {fields.get('elementtype')!r}")
    if fields.get("elementnumberofchannels", "1") != "1":
        raise VolumeFileError(path, "multi-channel MetaImage volumes are not supported")
    spacing = floats("elementspacing", 3, [1.0, 1.0, 1.0])
    origin = floats("offset", 3, floats("position", 3, [0.0, 0.0, 0.0]))
    tm = floats("transformmatrix", 9, floats("orientation", 9, [1, 0, 0, 0, 1, 0, 0, 0, 1]))
    direction = np.array(tm, dtype=np.float64).reshape(3, 3).T  # columns = axes
    msb = fields.get("binarydatabyteordermsb", fields.get("elementbyteordermsb", "False"))
    dtype = np.dtype(code).newbyteorder(">" if msb.lower() == "true" else "<")
    nbytes = int(np.prod(dims)) * dtype.itemsize
    data = raw[pos:]
    if fields.get("compresseddata", "False").lower() == "true":
        try:
            data = zlib.decompress(data)
        except zlib.error as exc:
            raise VolumeFileError(path, f"corrupt zlib data: {exc}") from exc
    if len(data) < nbytes:
        raise VolumeFileError(path, f"data is {len(data)} bytes, DimSize {dims} x "
                                    f"{dtype.itemsize} need {nbytes} (truncated?)")  # fmt: skip
    vol = np.frombuffer(data[:nbytes], dtype=dtype).reshape(dims, order="F")
    axes = direction * np.asarray(spacing)[None, :]
    grid = _grid_from_axes(path, np.asarray(origin), axes, dims, "LPS", world)
    return np.ascontiguousarray(vol.astype(dtype.newbyteorder("="))), grid


# NIfTI ---------------------------------------------------------------------------------


def nifti_affine(grid: VolumeGrid, world: World = "LPS") -> npt.NDArray[np.float64]:
    """The NIfTI affine (voxel index -> RAS mm) of ``grid`` whose world frame is ``world``."""
    T = grid.T_world_voxel
    if world == "LPS":
        T = np.diag([-1.0, -1.0, 1.0, 1.0]) @ T
    return T


def _write_nifti(path: Path, vol: npt.NDArray[Any], grid: VolumeGrid, world: World) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(vol, nifti_affine(grid, world))
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    tmp = path.with_name(".tmp-" + path.name)
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_nifti(path: Path, world: World) -> tuple[npt.NDArray[Any], VolumeGrid]:
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise VolumeFileError(path, f"cannot read NIfTI: {exc}") from exc
    if data.ndim != 3:
        raise VolumeFileError(path, f"need a 3-D volume, got shape {data.shape}")
    vol = np.ascontiguousarray(data)
    grid = _grid_from_axes(path, affine[:3, 3], affine[:3, :3], vol.shape, "RAS", world)
    return vol, grid


# --------------------------------------------------------------------------------------
# meshes


def _check_mesh(
    vertices: npt.ArrayLike, faces: npt.ArrayLike
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or not np.all(np.isfinite(v)):
        raise ValueError(f"vertices must be finite (N, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ValueError(f"faces must be (M, 3) integers, got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError("face indices out of range")
    return v.astype("<f4"), f.astype("<i4")


def write_mesh(path: str | os.PathLike[str], vertices: npt.ArrayLike, faces: npt.ArrayLike) -> None:
    """Write a triangle mesh (``vertices (N, 3)`` mm, ``faces (M, 3)`` indices) as binary
    little-endian ``.ply`` or binary ``.stl`` (vertices stored as float32)."""
    p = Path(path)
    kind = _kind(p)
    v, f = _check_mesh(vertices, faces)
    if kind == "ply":
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            "comment us_reconstruction mesh, world mm (LPS)\n"
            f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
            f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
        )
        rec = np.zeros(len(f), dtype=np.dtype([("n", "u1"), ("i", "<i4", (3,))]))
        rec["n"] = 3
        rec["i"] = f
        _write_atomic(p, header.encode("ascii") + v.tobytes() + rec.tobytes())
    elif kind == "stl":
        tri = v[f].astype(np.float64)  # (M, 3, 3)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)
        rec = np.zeros(len(f), dtype=np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)),
                                               ("a", "<u2")]))  # fmt: skip
        rec["n"] = n
        rec["v"] = tri
        head = b"binary STL, us_reconstruction, world mm (LPS)".ljust(80, b" ")
        _write_atomic(p, head + struct.pack("<I", len(f)) + rec.tobytes())
    else:
        raise VolumeFileError(p, "not a mesh extension (.ply, .stl)")


def read_mesh(
    path: str | os.PathLike[str],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Read a binary little-endian PLY (triangles; float/double x y z) or a binary STL.

    Returns ``(vertices (N, 3) float64 mm, faces (M, 3) int64)``; STL vertices shared by
    several triangles are merged.
    """
    p = Path(path)
    kind = _kind(p)
    if not p.is_file():
        raise VolumeFileError(p, "file not found")
    raw = p.read_bytes()
    if kind == "ply":
        return _read_ply(p, raw)
    if kind == "stl":
        return _read_stl(p, raw)
    raise VolumeFileError(p, "not a mesh extension (.ply, .stl)")


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2",
              "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
              "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
              "double": "f8", "float64": "f8"}  # fmt: skip


def _read_ply(path: Path, raw: bytes) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise VolumeFileError(path, "not a PLY file (no 'ply' magic / 'end_header')")
    lines = raw[:end].decode("ascii", errors="replace").split("\n")
    offset = end + len(b"end_header\n")
    if "format binary_little_endian 1.0" not in lines:
        raise VolumeFileError(path, "only binary_little_endian PLY is supported")
    elements: list[tuple[str, int, list[tuple[str, ...]]]] = []
    for line in lines[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info", "format"):
            continue
        try:
            if tok[0] == "element":
                elements.append((tok[1], int(tok[2]), []))
            elif tok[0] == "property" and elements:
                elements[-1][2].append(tuple(tok[1:]))
            else:
                raise ValueError(line)
        except (ValueError, IndexError) as exc:
            raise VolumeFileError(path, f"bad PLY header line {line!r}") from exc
    verts: npt.NDArray[np.float64] | None = None
    faces: npt.NDArray[np.int64] | None = None
    for name, count, props in elements:
        if name == "face":
            if len(props) != 1 or props[0][0] != "list":
                raise VolumeFileError(path, "face element must be one list property")
            ct, it = _PLY_TYPES.get(props[0][1]), _PLY_TYPES.get(props[0][2])
            if ct is None or it is None:
                raise VolumeFileError(path, f"bad face list types {props[0]}")
            dt = np.dtype([("n", "<" + ct), ("i", "<" + it, (3,))])
            need = count * dt.itemsize
            if len(raw) < offset + need:
                raise VolumeFileError(path, "truncated face data")
            rec = np.frombuffer(raw, dtype=dt, count=count, offset=offset)
            if count and np.any(rec["n"] != 3):
                raise VolumeFileError(path, "only triangle faces are supported")
            faces = rec["i"].astype(np.int64)
            offset += need
        else:
            if any(pr[0] == "list" for pr in props):
                raise VolumeFileError(path, f"list properties in element {name!r} unsupported")
            try:
                dt = np.dtype([(pr[1], "<" + _PLY_TYPES[pr[0]]) for pr in props])
            except KeyError as exc:
                raise VolumeFileError(path, f"unknown PLY property type {exc}") from exc
            need = count * dt.itemsize
            if len(raw) < offset + need:
                raise VolumeFileError(path, f"truncated {name} data")
            rec = np.frombuffer(raw, dtype=dt, count=count, offset=offset)
            if name == "vertex":
                if not all(k in dt.names for k in "xyz"):  # type: ignore[operator]
                    raise VolumeFileError(path, "vertex element lacks x, y, z")
                verts = np.stack([rec[k].astype(np.float64) for k in "xyz"], axis=1)
            offset += need
    if verts is None or faces is None:
        raise VolumeFileError(path, "PLY needs a vertex and a face element")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise VolumeFileError(path, "face indices out of range")
    return verts, faces.reshape(-1, 3)


def _read_stl(path: Path, raw: bytes) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    if len(raw) < 84:
        raise VolumeFileError(path, f"too short for a binary STL ({len(raw)} bytes)")
    (count,) = struct.unpack_from("<I", raw, 80)
    if len(raw) != 84 + 50 * count:
        what = "ASCII STL is not supported" if raw.lstrip().startswith(b"solid") else ""
        raise VolumeFileError(
            path,
            what
            or f"binary STL of {count} triangles needs {84 + 50 * count} bytes, "
            f"file has {len(raw)} (truncated or corrupt)",
        )
    dt = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec = np.frombuffer(raw, dtype=dt, count=count, offset=84)
    pts = rec["v"].reshape(-1, 3).astype(np.float64)
    if not np.all(np.isfinite(pts)):
        raise VolumeFileError(path, "non-finite vertex coordinates")
    verts, inverse = np.unique(pts, axis=0, return_inverse=True)
    return verts, inverse.reshape(-1, 3).astype(np.int64)
