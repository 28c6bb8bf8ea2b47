"""Minimal writers for what the client saves (no rclpy): NRRD volumes and PLY meshes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def write_nrrd(
    path: str | Path,
    voxels: npt.NDArray[np.uint8] | bytes,
    dims: Sequence[int],
    spacing_mm: Sequence[float],
    origin_mm: Sequence[float],
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> Path:
    """Write a uint8 volume (x fastest, ``nx*ny*nz`` values) as an attached raw NRRD.

    ``space directions`` are the columns of the row-major 3x3 ``direction`` (world <- volume
    axes) times the spacing (mm); ``space origin`` is the centre of voxel (0, 0, 0) (mm).
    The world frame is the tracker's: ``space dimension: 3`` (no anatomical space claimed).
    """
    nx, ny, nz = (int(d) for d in dims)
    data = voxels if isinstance(voxels, bytes) else np.ascontiguousarray(voxels).tobytes()
    if len(data) != nx * ny * nz:
        raise ValueError(f"volume has {len(data)} bytes, dims {nx}x{ny}x{nz} need {nx * ny * nz}")
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    cols = [d[:, i] * float(spacing_mm[i]) for i in range(3)]
    vec = " ".join("(" + ",".join(f"{x:.9g}" for x in c) + ")" for c in cols)
    origin = "(" + ",".join(f"{float(x):.9g}" for x in origin_mm) + ")"
    header = (
        "NRRD0004\n"
        "# written by us-client (us_grpc_bridge)\n"
        "type: uint8\n"
        "dimension: 3\n"
        "space dimension: 3\n"
        f"sizes: {nx} {ny} {nz}\n"
        f"space directions: {vec}\n"
        "kinds: domain domain domain\n"
        "encoding: raw\n"
        f"space origin: {origin}\n"
        'space units: "mm" "mm" "mm"\n'
        "\n"
    )
    p = Path(path)
    p.write_bytes(header.encode() + data)
    return p


def read_nrrd(path: str | Path) -> tuple[dict[str, str], bytes]:
    """Header fields and raw data of a NRRD written by :func:`write_nrrd` (tests, tools)."""
    raw = Path(path).read_bytes()
    head, _, data = raw.partition(b"\n\n")
    fields: dict[str, str] = {}
    for line in head.decode().splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, _, v = line.partition(":")
        fields[k.strip()] = v.strip()
    return fields, data


def write_ply(path: str | Path, vertices_mm: Sequence[float], triangles: Sequence[int]) -> Path:
    """Binary little-endian PLY of a triangle mesh (vertices in mm)."""
    v = np.asarray(vertices_mm, dtype="<f4").reshape(-1, 3)
    t = np.asarray(triangles, dtype="<i4").reshape(-1, 3)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment us-client thyroid mesh, mm\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(t)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    faces: Any = np.zeros(len(t), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    faces["n"] = 3
    faces["idx"] = t
    p = Path(path)
    p.write_bytes(header.encode() + v.tobytes() + faces.tobytes())
    return p
