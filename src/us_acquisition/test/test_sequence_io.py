"""Tests of the PLUS/Slicer sequence file reader/writer (tiny files in tmp_path)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest
from us_acquisition.sequence_io import (
    SequenceFileError,
    TrackedSequence,
    read_sequence,
    split_transform_name,
    transform_name,
    write_sequence,
)

# ----------------------------------------------------------------------------------------
# helpers


def _pose(i: int) -> np.ndarray:
    """A rigid transform (rotation about z by 10 deg * i, translation in mm)."""
    a = np.deg2rad(10.0 * i)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = [1.5 * i, -2.25, 100.0 + 0.125 * i]
    return m


def _sequence(n: int = 5, dtype: str = "u1", channels: int = 1) -> TrackedSequence:
    rng = np.random.default_rng(42)
    shape: tuple[int, ...] = (n, 6, 8) if channels == 1 else (n, 6, 8, channels)
    if np.dtype(dtype).kind == "f":
        frames = rng.standard_normal(shape).astype(dtype)
    else:
        frames = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    probe = np.stack([_pose(i) for i in range(n)])
    ref = np.stack([np.linalg.inv(_pose(i + 3)) for i in range(n)])
    return TrackedSequence(
        frames=frames,
        timestamps_s=1234.5 + 0.04 * np.arange(n, dtype=np.float64),
        transforms={"ProbeToTracker": probe, "ReferenceToTracker": ref},
        transform_status={
            "ProbeToTracker": np.array([True, True, False, True, True][:n]),
            "ReferenceToTracker": np.ones(n, dtype=bool),
        },
        spacing_mm=(0.1, 0.25),
        orientation="MF",
        frame_fields={"UnfilteredTimestamp": [f"{1234.5 + 0.04 * i + 1e-3:.6f}" for i in range(n)]},
    )


def _assert_same(a: TrackedSequence, b: TrackedSequence) -> None:
    assert a.frames.dtype == b.frames.dtype
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.timestamps_s, b.timestamps_s)  # exact: repr round-trip
    assert set(a.transforms) == set(b.transforms)
    for name in a.transforms:
        np.testing.assert_array_equal(a.transforms[name], b.transforms[name])
        np.testing.assert_array_equal(a.transform_status[name], b.transform_status[name])
    assert a.spacing_mm == b.spacing_mm
    assert a.orientation == b.orientation


def _mha_header(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _plus_frame_lines(i: int, matrix: np.ndarray, status: str, ts: float) -> list[str]:
    """Per-frame fields in the order and spelling PLUS writes them."""
    numbers = " ".join(repr(float(v)) for v in matrix.reshape(16))
    p = f"Seq_Frame{i:04d}_"
    return [
        f"{p}FrameNumber = {100 + i}",
        f"{p}ProbeToTrackerTransform = {numbers} ",  # PLUS leaves a trailing space
        f"{p}ProbeToTrackerTransformStatus = {status}",
        f"{p}StylusToTrackerTransform = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1 ",
        f"{p}StylusToTrackerTransformStatus = MISSING",
        f"{p}Timestamp = {ts!r}",
        f"{p}UnfilteredTimestamp = {ts + 0.0123!r}",
        f"{p}ImageStatus = OK",
    ]


PLUS_GLOBAL = [
    "ObjectType = Image",
    "NDims = 3",
    "AnatomicalOrientation = RAI",
    "BinaryData = True",
    "BinaryDataByteOrderMSB = False",
    "CenterOfRotation = 0 0 0",
]
PLUS_TAIL = [
    "ElementNumberOfChannels = 1",
    "ElementSpacing = 1 1 1",
    "ElementType = MET_UCHAR",
    "Offset = 0 0 0",
    "TransformMatrix = 1 0 0 0 1 0 0 0 1",
    "UltrasoundImageOrientation = MF",
    "UltrasoundImageType = BRIGHTNESS",
]


def _plus_file(
    tmp_path: Path,
    *,
    compressed: bool,
    n: int = 3,
    w: int = 5,
    h: int = 4,
    name: str = "plus.seq.mha",
    cds: str | None = None,
    dimsize: str | None = None,
    data: bytes | None = None,
    drop: str | None = None,
    replace: tuple[str, str] | None = None,
) -> tuple[Path, np.ndarray]:
    """A sequence metafile in the exact style PLUS writes (optionally damaged)."""
    frames = (np.arange(n * h * w, dtype=np.uint8) * 7 % 251).reshape(n, h, w)
    raw = frames.tobytes()
    payload = data if data is not None else (zlib.compress(raw) if compressed else raw)
    lines = list(PLUS_GLOBAL)
    lines.append(f"CompressedData = {'True' if compressed else 'False'}")
    if compressed:
        # PLUS pads the size so that it can patch it after compressing
        lines.append(f"CompressedDataSize = {cds if cds is not None else len(payload)}      ")
    lines.append(f"DimSize = {dimsize if dimsize is not None else f'{w} {h} {n}'}")
    lines += PLUS_TAIL
    for i in range(n):
        lines += _plus_frame_lines(i, _pose(i), "OK" if i != 1 else "INVALID", 5472.25 + i / 30)
    lines.append("ElementDataFile = LOCAL")
    if drop is not None:
        lines = [line for line in lines if not line.startswith(drop)]
    if replace is not None:
        lines = [line.replace(*replace) for line in lines]
    path = tmp_path / name
    path.write_bytes(_mha_header(lines) + payload)
    return path, frames


# ----------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("suffix", [".seq.mha", ".igs.mha", ".igs.nrrd", ".seq.nrrd"])
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path: Path, suffix: str, compress: bool) -> None:
    seq = _sequence()
    path = tmp_path / f"rec{suffix}"
    write_sequence(path, seq, compress=compress)
    back = read_sequence(path)
    _assert_same(seq, back)
    assert back.frame_fields["UnfilteredTimestamp"] == seq.frame_fields["UnfilteredTimestamp"]
    assert back.frame_fields["FrameNumber"] == [str(i) for i in range(5)]
    assert back.image_valid is not None and back.image_valid.all()
    text = path.read_bytes()
    if suffix.endswith(".mha"):
        assert text.startswith(b"ObjectType = Image\nNDims = 3\n")
        assert (b"CompressedData = True" in text) == compress
        assert b"Seq_Frame0002_ProbeToTrackerTransformStatus = INVALID\n" in text
        assert b"\nElementDataFile = LOCAL\n" in text
    else:
        assert text.startswith(b"NRRD0004\n")
        assert (b"encoding: gz\n" in text) == compress
        assert b"Seq_Frame0002_ProbeToTrackerTransformStatus:=INVALID\n" in text
    # writing again what was read gives the identical file (stable, lossless)
    again = tmp_path / f"again{suffix}"
    write_sequence(again, back, compress=compress)
    assert again.read_bytes() == text


@pytest.mark.parametrize("suffix", [".igs.mha", ".igs.nrrd"])
@pytest.mark.parametrize(("dtype", "channels"), [("u2", 1), ("f4", 1), ("u1", 3), ("i2", 1)])
def test_round_trip_pixel_types(tmp_path: Path, suffix: str, dtype: str, channels: int) -> None:
    seq = _sequence(n=3, dtype=dtype, channels=channels)
    path = tmp_path / f"px{suffix}"
    write_sequence(path, seq, compress=True)
    back = read_sequence(path)
    _assert_same(seq, back)
    assert back.channels == channels


def test_compressed_mha_is_one_zlib_stream_with_exact_size(tmp_path: Path) -> None:
    seq = _sequence()
    path = tmp_path / "c.seq.mha"
    write_sequence(path, seq, compress=True)
    data = path.read_bytes()
    header, _, payload = data.partition(b"ElementDataFile = LOCAL\n")
    size_line = next(line for line in header.split(b"\n") if line.startswith(b"CompressedDataSize"))
    assert int(size_line.split(b"=")[1]) == len(payload)
    assert zlib.decompress(payload) == seq.frames.tobytes()


def test_nrrd_gzip_payload_is_plain_gzip(tmp_path: Path) -> None:
    seq = _sequence()
    path = tmp_path / "g.igs.nrrd"
    write_sequence(path, seq, compress=True)
    _, _, payload = path.read_bytes().partition(b"\n\n")
    assert gzip.decompress(payload) == seq.frames.tobytes()
    assert b"kinds: domain domain list\n" in path.read_bytes()
    assert b"space directions: (0.1,0) (0,0.25) none\n" in path.read_bytes()


def test_image_status_and_missing_transform_round_trip(tmp_path: Path) -> None:
    seq = _sequence()
    seq.image_valid = np.array([True, False, True, True, True])
    seq.transforms["ProbeToTracker"][3] = np.nan  # invalid sample: written as identity
    seq.transform_status["ProbeToTracker"][3] = False
    for suffix in (".seq.mha", ".seq.nrrd"):
        write_sequence(tmp_path / f"s{suffix}", seq)
        back = read_sequence(tmp_path / f"s{suffix}")
        np.testing.assert_array_equal(back.image_valid, seq.image_valid)
        np.testing.assert_array_equal(back.transforms["ProbeToTracker"][3], np.eye(4))
        assert not back.transform_status["ProbeToTracker"][3]


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    seq = _sequence()
    with pytest.raises(ValueError, match="extension"):
        write_sequence(tmp_path / "x.png", seq)
    bad = _sequence()
    bad.timestamps_s = bad.timestamps_s[:-1]
    with pytest.raises(ValueError, match="timestamps_s"):
        write_sequence(tmp_path / "x.seq.mha", bad)
    bad = _sequence()
    bad.transforms["ProbeToTracker"] = bad.transforms["ProbeToTracker"][:, :3]
    with pytest.raises(ValueError, match="ProbeToTracker"):
        write_sequence(tmp_path / "x.seq.mha", bad)
    bad = _sequence()
    bad.transforms["ProbeToTracker"][0, 0, 0] = np.inf  # valid sample must be finite
    with pytest.raises(ValueError, match="not finite"):
        write_sequence(tmp_path / "x.seq.mha", bad)
    bad = _sequence()
    bad.frame_fields["Note"] = ["a\nb"] * 5
    with pytest.raises(ValueError, match="line breaks"):
        write_sequence(tmp_path / "x.seq.mha", bad)
    assert not list(tmp_path.iterdir())  # no partial or temporary files left behind


# ----------------------------------------------------------------------------------------
# files in the style PLUS / IGSIO / Slicer write


@pytest.mark.parametrize("compressed", [False, True])
def test_plus_style_header(tmp_path: Path, compressed: bool) -> None:
    path, frames = _plus_file(tmp_path, compressed=compressed)
    seq = read_sequence(path)
    np.testing.assert_array_equal(seq.frames, frames)
    assert seq.frames.dtype == np.uint8
    np.testing.assert_allclose(seq.timestamps_s, 5472.25 + np.arange(3) / 30, rtol=0, atol=1e-12)
    assert set(seq.transforms) == {"ProbeToTracker", "StylusToTracker"}
    for i in range(3):
        np.testing.assert_allclose(seq.transforms["ProbeToTracker"][i], _pose(i), atol=1e-15)
    np.testing.assert_array_equal(seq.transform_status["ProbeToTracker"], [True, False, True])
    np.testing.assert_array_equal(seq.transform_status["StylusToTracker"], [False] * 3)
    assert seq.frame_fields["FrameNumber"] == ["100", "101", "102"]
    assert float(seq.frame_fields["UnfilteredTimestamp"][2]) == pytest.approx(
        5472.25 + 2 / 30 + 0.0123
    )
    assert seq.orientation == "MF" and seq.image_type == "BRIGHTNESS"
    assert seq.spacing_mm == (1.0, 1.0)
    assert seq.header["AnatomicalOrientation"] == "RAI"
    assert seq.image_valid is not None and seq.image_valid.all()


def test_newer_plus_padded_dimsize_and_kinds_crlf(tmp_path: Path) -> None:
    """Newer PLUS/IGSIO pad DimSize/Kinds to a fixed width; a file may have CRLF endings."""
    path, frames = _plus_file(tmp_path, compressed=True, dimsize="5 4                  3")
    text = path.read_bytes().replace(
        b"DimSize = ", b"Kinds = domain domain                list\nDimSize = "
    )
    header, sep, payload = text.partition(b"ElementDataFile = LOCAL\n")
    path.write_bytes(header.replace(b"\n", b"\r\n") + sep.replace(b"\n", b"\r\n") + payload)
    seq = read_sequence(path)
    np.testing.assert_array_equal(seq.frames, frames)
    assert seq.transform_status["ProbeToTracker"].tolist() == [True, False, True]


def test_igsio_vector_kind_rgb_and_4d_dimsize(tmp_path: Path) -> None:
    """IGSIO writes colour as DimSize = 3 W H N with Kinds = vector domain domain list;
    PLUS with a z dimension writes NDims = 4, DimSize = W H 1 N."""
    rgb = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    frame_lines = [
        f"Seq_Frame{i:04d}_{k}"
        for i in range(2)
        for k in (
            f"Timestamp = {i * 0.5}",
            "ImageToReferenceTransform = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1",
            "ImageStatus = OK",
        )
    ]
    header = _mha_header(
        [
            "ObjectType = Image",
            "NDims = 3",
            "BinaryData = True",
            "CompressedData = False",
            "DimSize = 3 4 3 2",
            "ElementNumberOfChannels = 3",
            "ElementType = MET_UCHAR",
            "Kinds = vector domain domain list",
            "UltrasoundImageType = RGB_COLOR",
            *frame_lines,
            "ElementDataFile = LOCAL",
        ]
    )
    (tmp_path / "rgb.igs.mha").write_bytes(header + rgb.tobytes())
    seq = read_sequence(tmp_path / "rgb.igs.mha")
    np.testing.assert_array_equal(seq.frames, rgb)
    # no status field: a transform that is present counts as valid
    assert seq.transform_status["ImageToReference"].tolist() == [True, True]
    assert seq.spacing_mm is None and seq.image_type == "RGB_COLOR"

    grey = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4) * 1000
    header = _mha_header(
        [
            "ObjectType = Image",
            "NDims = 4",
            "BinaryData = True",
            "BinaryDataByteOrderMSB = True",
            "CompressedData = False",
            "DimSize = 4 3 1 2",
            "ElementSpacing = 0.2 0.3 1 1",
            "ElementType = MET_USHORT",
            "Seq_Frame0000_Timestamp = 1",
            "Seq_Frame0001_Timestamp = 2",
            "ElementDataFile = LOCAL",
        ]
    )
    (tmp_path / "be.seq.mha").write_bytes(header + grey.astype(">u2").tobytes())
    seq = read_sequence(tmp_path / "be.seq.mha")
    assert seq.frames.dtype == np.uint16 and seq.frames.dtype.isnative
    np.testing.assert_array_equal(seq.frames, grey)
    assert seq.spacing_mm == (0.2, 0.3) and seq.transforms == {}


def test_igsio_nrrd_header_and_detached_nhdr(tmp_path: Path) -> None:
    frames = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        "dimension: 3",
        "encoding: gz",
        "endian: little",
        "kinds: domain domain                 list",
        "sizes: 4 3                           2",
        "space dimension: 2",
        "space directions: (0.5,0) (0,0.75) none",
        "space origin: (0,0)",
        "type: uint8",
        "ultrasound image orientation:=UN",
        "ultrasound image type:=BRIGHTNESS",
    ]
    for i in range(2):
        lines += [
            f"Seq_Frame{i:04d}_ProbeToTrackerTransform:=1 0 0 {i} 0 1 0 0 0 0 1 0 0 0 0 1",
            f"Seq_Frame{i:04d}_ProbeToTrackerTransformStatus:={'OK' if i else 'OUT_OF_VIEW'}",
            f"Seq_Frame{i:04d}_Timestamp:={10 + i * 0.1}",
            f"Seq_Frame{i:04d}_Status:=OK",
        ]
    (tmp_path / "a.igs.nrrd").write_bytes(
        ("\n".join(lines) + "\n\n").encode() + gzip.compress(frames.tobytes())
    )
    seq = read_sequence(tmp_path / "a.igs.nrrd")
    np.testing.assert_array_equal(seq.frames, frames)
    assert seq.orientation == "UN" and seq.spacing_mm == (0.5, 0.75)
    assert seq.transform_status["ProbeToTracker"].tolist() == [False, True]
    assert seq.transforms["ProbeToTracker"][1, 0, 3] == 1.0
    assert "Status" not in seq.frame_fields

    raw_lines = [ln.replace("encoding: gz", "encoding: raw") for ln in lines]
    raw_lines.append("data file: a.raw")
    (tmp_path / "a.nhdr").write_text("\n".join(raw_lines) + "\n")
    (tmp_path / "a.raw").write_bytes(frames.tobytes())
    np.testing.assert_array_equal(read_sequence(tmp_path / "a.nhdr").frames, frames)


def test_detached_mhd(tmp_path: Path) -> None:
    path, frames = _plus_file(tmp_path, compressed=False, name="d.mhd")
    text = path.read_bytes().replace(b"ElementDataFile = LOCAL", b"ElementDataFile = d.raw")
    header, _, payload = text.partition(b"ElementDataFile = d.raw\n")
    path.write_bytes(header + b"ElementDataFile = d.raw\n")
    (tmp_path / "d.raw").write_bytes(payload)
    np.testing.assert_array_equal(read_sequence(path).frames, frames)
    (tmp_path / "d.raw").unlink()
    with pytest.raises(SequenceFileError, match=r"d\.raw"):
        read_sequence(path)


# ----------------------------------------------------------------------------------------
# damaged files: always SequenceFileError with a useful message


def _raises(path: Path, *patterns: str) -> SequenceFileError:
    with pytest.raises(SequenceFileError) as info:
        read_sequence(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert pattern in message, message
    return info.value


def test_truncated_uncompressed_data(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False)
    path.write_bytes(path.read_bytes()[:-7])
    _raises(path, "truncated", "60 bytes", "53")


def test_truncated_compressed_data(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=True)
    path.write_bytes(path.read_bytes()[:-5])
    _raises(path, "CompressedDataSize")


def test_bad_compressed_data_size(tmp_path: Path) -> None:
    raw_len = len(zlib.compress(bytes(range(256))))  # any value; only the header matters
    assert raw_len > 0
    path, _ = _plus_file(tmp_path, compressed=True, cds="10")
    _raises(path, "ends early", "CompressedDataSize")
    path, _ = _plus_file(tmp_path, compressed=True, cds="99999")
    _raises(path, "CompressedDataSize = 99999", "only")
    path, _ = _plus_file(tmp_path, compressed=True, cds="12x")
    err = _raises(path, "CompressedDataSize", "'12x'")
    assert err.line is not None


def test_corrupt_compressed_bytes(tmp_path: Path) -> None:
    path, frames = _plus_file(tmp_path, compressed=True)
    good = zlib.compress(frames.tobytes())
    bad = good[:2] + bytes(b ^ 0x5A for b in good[2:])
    path, _ = _plus_file(tmp_path, compressed=True, data=bad)
    _raises(path, "corrupt")


def test_garbage_in_matrix(tmp_path: Path) -> None:
    path, _ = _plus_file(
        tmp_path,
        compressed=False,
        replace=(
            "Seq_Frame0001_ProbeToTrackerTransform = ",
            "Seq_Frame0001_ProbeToTrackerTransform = 1 0 0 abc ",
        ),
    )
    err = _raises(path, "Seq_Frame0001_ProbeToTrackerTransform", "'abc'", "line")
    assert err.line is not None and err.line > 10
    path, _ = _plus_file(
        tmp_path,
        compressed=False,
        replace=(
            "Seq_Frame0000_ProbeToTrackerTransform = 1.0 ",
            "Seq_Frame0000_ProbeToTrackerTransform = ",
        ),
    )
    _raises(path, "Seq_Frame0000_ProbeToTrackerTransform", "expected 16 numbers, found 15")


def test_missing_dimsize(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False, drop="DimSize")
    _raises(path, "'DimSize' is missing")


def test_dimsize_does_not_match_data(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False, dimsize="5 3 3")
    _raises(path, "15 unexpected bytes", "DimSize")
    path, _ = _plus_file(tmp_path, compressed=False, dimsize="5 5 3")
    _raises(path, "truncated", "75 bytes")
    path, _ = _plus_file(tmp_path, compressed=True, dimsize="5 3 3")
    _raises(path, "more than", "DimSize")
    path, _ = _plus_file(tmp_path, compressed=True, dimsize="6 4 3")
    _raises(path, "holds 60 bytes but the header declares 72")
    path, _ = _plus_file(tmp_path, compressed=False, dimsize="5 4")
    _raises(path, "DimSize has 2 values but NDims = 3")
    path, _ = _plus_file(tmp_path, compressed=False, dimsize="5 four 3")
    _raises(path, "DimSize", "whole numbers")


def test_frame_field_beyond_dimsize(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False, n=3, dimsize="5 4 2", data=bytes(40))
    _raises(path, "Seq_Frame0002_", "2 frame(s)")


def test_missing_or_bad_timestamp(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False, drop="Seq_Frame0001_Timestamp")
    _raises(path, "frame 1 has no timestamp")
    path, _ = _plus_file(tmp_path, compressed=False, drop="Seq_Frame0001_Timestamp")
    text = path.read_bytes()
    path.write_bytes(text.replace(b"Seq_Frame0002_Timestamp = ", b"Seq_Frame0002_Timestamp = x"))
    _raises(path, "Timestamp")


def test_missing_element_type_and_unknown_type(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False, drop="ElementType")
    _raises(path, "'ElementType' is missing")
    path, _ = _plus_file(tmp_path, compressed=False, replace=("MET_UCHAR", "MET_QUUX"))
    _raises(path, "MET_QUUX")


def test_truncated_header(tmp_path: Path) -> None:
    path, _ = _plus_file(tmp_path, compressed=False)
    text = path.read_bytes()
    path.write_bytes(text[: text.index(b"Seq_Frame0001")])
    _raises(path, "ElementDataFile")


def test_not_a_sequence_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.seq.mha"
    _raises(missing, "not found")
    empty = tmp_path / "empty.seq.mha"
    empty.write_bytes(b"")
    _raises(empty, "empty")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(SequenceFileError):
        read_sequence(junk)
    png = tmp_path / "image.seq.mha"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(SequenceFileError):
        read_sequence(png)


def test_nrrd_errors(tmp_path: Path) -> None:
    seq = _sequence(n=2)
    path = tmp_path / "e.igs.nrrd"
    write_sequence(path, seq, compress=False)
    good = path.read_bytes()
    path.write_bytes(good.replace(b"type: uint8", b"type: block"))
    _raises(path, "type", "block")
    path.write_bytes(good.replace(b"encoding: raw", b"encoding: bz2"))
    _raises(path, "bz2", "not supported")
    path.write_bytes(good[: good.index(b"\n\n")])  # header without its blank line, no data
    _raises(path, "blank line")
    path.write_bytes(good.replace(b"sizes: 8 6 2", b"sizes: 8 6"))
    _raises(path, "sizes has 2 values but dimension is 3")
    path.write_bytes(good[:-3])
    _raises(path, "truncated")


def test_any_truncation_or_corruption_gives_sequence_file_error(tmp_path: Path) -> None:
    """Cut a valid file anywhere or flip header bytes: never a numpy/zlib exception."""
    for suffix, compress in ((".seq.mha", True), (".seq.mha", False), (".igs.nrrd", True)):
        src = tmp_path / f"ok{suffix}"
        write_sequence(src, _sequence(n=3), compress=compress)
        good = src.read_bytes()
        damaged = tmp_path / f"bad{suffix}"
        for cut in range(0, len(good) - 1, max(1, len(good) // 97)):
            damaged.write_bytes(good[:cut])
            with pytest.raises(SequenceFileError):
                read_sequence(damaged)
        rng = np.random.default_rng(1)
        for _ in range(200):
            data = bytearray(good)
            pos = int(rng.integers(0, len(good)))
            data[pos] = int(rng.integers(0, 256))
            damaged.write_bytes(bytes(data))
            try:
                read_sequence(damaged)
            except SequenceFileError:
                pass


# ----------------------------------------------------------------------------------------
# transform names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ProbeToTracker", ("Probe", "Tracker")),
        ("ProbeToTrackerTransform", ("Probe", "Tracker")),
        ("ImageToReference", ("Image", "Reference")),
        ("ToolToTracker", ("Tool", "Tracker")),
        ("StylusTipToStylus", ("StylusTip", "Stylus")),
        ("probeToTracker", ("Probe", "Tracker")),
        ("Marker1ToTracker", ("Marker1", "Tracker")),
    ],
)
def test_split_transform_name(name: str, expected: tuple[str, str]) -> None:
    assert split_transform_name(name) == expected
    assert transform_name(*expected) == (
        name.removesuffix("Transform")[0].upper() + name.removesuffix("Transform")[1:]
    )


@pytest.mark.parametrize("name", ["Probe", "ToTracker", "AToBToC", "ProbeTo", ""])
def test_split_transform_name_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        split_transform_name(name)


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Not mkstemp's 0600: a recording is meant to be opened by others (0666 & ~umask)."""
    import os
    import stat

    from us_acquisition.sequence_io import _umask

    p = tmp_path / "scan.igs.mha"
    write_sequence(p, TrackedSequence(frames=np.zeros((2, 4, 6), np.uint8),
                                      timestamps_s=np.arange(2.0)))  # fmt: skip
    mode = stat.S_IMODE(os.stat(p).st_mode)
    umask = os.umask(0o022)
    os.umask(umask)
    assert _umask() == umask
    assert mode == 0o666 & ~umask
