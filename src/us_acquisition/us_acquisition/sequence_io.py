"""Read and write PLUS Toolkit / 3D Slicer tracked ultrasound sequence files.

Pure Python + numpy + zlib (no rclpy, no ITK/VTK). Supported containers:

* **MetaImage sequence metafiles** ``.seq.mha`` / ``.igs.mha`` (``.mhd`` with a detached
  ``.raw``/``.zraw`` data file for reading): a text header of ``Name = value`` lines,
  per-frame fields ``Seq_Frame0000_<Field> = value``, ``ElementDataFile = LOCAL`` as the
  last header line, then the pixels of all frames (one zlib stream over all frames when
  ``CompressedData = True``, ``CompressedDataSize`` bytes long).
* **NRRD sequence files** ``.seq.nrrd`` / ``.igs.nrrd`` (``.nhdr`` + detached data for
  reading) as written by PLUS/IGSIO: ``NRRD0004`` header, ``field: value`` lines,
  per-frame key/value pairs ``Seq_Frame0000_<Field>:=value``, a blank line, then raw or
  gzip-encoded pixels.

Frames are 2-D images: ``DimSize``/``sizes`` = ``W H N`` (optionally ``C W H N`` with a
``vector`` kind, or ``W H 1 N``). Pixels are returned exactly as stored in the file (row 0
first, no flipping by ``UltrasoundImageOrientation``).

Transform naming follows PLUS: the per-frame field ``ProbeToTrackerTransform`` holds 16
numbers, row-major, of the 4x4 homogeneous matrix ``T_tracker_probe`` that maps *probe*
coordinates into *tracker* coordinates (translation in mm); its validity is the field
``ProbeToTrackerTransformStatus`` (``OK`` = valid, anything else such as ``INVALID``,
``MISSING``, ``OUT_OF_VIEW`` = not valid). In :class:`TrackedSequence` transforms are keyed
by the name without the ``Transform`` suffix (``"ProbeToTracker"``).

Every problem with a file (corrupt or truncated data, inconsistent sizes, unparsable
numbers, missing required fields) raises :class:`SequenceFileError`, a ``ValueError``
whose message names the file, the line/field and what is wrong.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "SequenceFileError",
    "TrackedSequence",
    "read_sequence",
    "split_transform_name",
    "transform_name",
    "write_sequence",
]

#: Prefix of per-frame header fields.
FRAME_FIELD_PREFIX = "Seq_Frame"
#: Suffix PLUS appends to transform field names (``ProbeToTrackerTransform``).
TRANSFORM_SUFFIX = "Transform"
#: Suffix of transform status fields (``ProbeToTrackerTransformStatus``).
TRANSFORM_STATUS_SUFFIX = "TransformStatus"

_CHUNK = 1 << 20  # bytes read / decompressed per step
_MAX_HEADER_LINE = 1 << 16  # a longer "line" means binary data, not a text header
_ZLIB_MAX_RATIO = 1100  # deflate cannot expand by more than ~1032:1

# MetaImage element types -> numpy dtypes (little-endian; byte order fixed up on read).
_MET_TYPES: dict[str, str] = {
    "MET_CHAR": "i1",
    "MET_ASCII_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",  # MetaIO defines MET_LONG as 4 bytes
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}
_DTYPE_TO_MET: dict[str, str] = {
    "i1": "MET_CHAR",
    "u1": "MET_UCHAR",
    "i2": "MET_SHORT",
    "u2": "MET_USHORT",
    "i4": "MET_INT",
    "u4": "MET_UINT",
    "i8": "MET_LONG_LONG",
    "u8": "MET_ULONG_LONG",
    "f4": "MET_FLOAT",
    "f8": "MET_DOUBLE",
}
# NRRD "type" spellings (teem) -> numpy dtypes.
_NRRD_TYPES: dict[str, str] = {}
for _code, _names in {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
    ),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "f4": ("float",),
    "f8": ("double",),
}.items():
    for _name in _names:
        _NRRD_TYPES[_name] = _code
_DTYPE_TO_NRRD: dict[str, str] = {
    "i1": "int8",
    "u1": "uint8",
    "i2": "int16",
    "u2": "uint16",
    "i4": "int32",
    "u4": "uint32",
    "i8": "int64",
    "u8": "uint64",
    "f4": "float",
    "f8": "double",
}
# NRRD axis kinds that hold the components of one pixel.
_NRRD_VECTOR_KINDS = {
    "vector",
    "2-vector",
    "3-vector",
    "4-vector",
    "3-color",
    "4-color",
    "rgb-color",
    "rgba-color",
    "hsv-color",
    "xyz-color",
    "complex",
    "covariant-vector",
    "normal",
    "3-normal",
    "point",
    "stub",
    "scalar",
}
_FRAME_KINDS = {"list", "time"}

# Global fields the writers generate themselves; never copied from TrackedSequence.header.
_STRUCTURAL_KEYS = {
    k.lower()
    for k in (
        # MetaImage
        "ObjectType",
        "NDims",
        "BinaryData",
        "BinaryDataByteOrderMSB",
        "ElementByteOrderMSB",
        "CompressedData",
        "CompressedDataSize",
        "DimSize",
        "ElementSpacing",
        "ElementSize",
        "ElementType",
        "ElementNumberOfChannels",
        "ElementDataFile",
        "Kinds",
        "Offset",
        "Position",
        "Origin",
        "TransformMatrix",
        "Rotation",
        "Orientation",
        "CenterOfRotation",
        "AnatomicalOrientation",
        "HeaderSize",
        "ElementMin",
        "ElementMax",
        "Comment",
        "UltrasoundImageOrientation",
        "UltrasoundImageType",
        # NRRD
        "type",
        "dimension",
        "space",
        "space dimension",
        "sizes",
        "kinds",
        "endian",
        "encoding",
        "space directions",
        "space origin",
        "spacings",
        "data file",
        "datafile",
        "byte skip",
        "byteskip",
        "line skip",
        "lineskip",
        "content",
        "measurement frame",
        "thicknesses",
        "axis mins",
        "axismins",
        "axis maxs",
        "axismaxs",
        "centerings",
        "centers",
        "labels",
        "units",
        "space units",
        "old min",
        "oldmin",
        "old max",
        "oldmax",
        "sample units",
        "min",
        "max",
        "block size",
        "blocksize",
        "number",
        "ultrasound image orientation",
        "ultrasound image type",
    )
}

_IDENTITY = np.eye(4, dtype=np.float64)


class SequenceFileError(ValueError):
    """A sequence file cannot be read (or a sequence cannot be written).

    ``str(error)`` is ``"<path>[, line <n>]: <reason>"``; the parts are also available as
    :attr:`path`, :attr:`line` (1-based header line, or ``None``) and :attr:`reason`.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, *, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {reason}")


@dataclass
class TrackedSequence:
    """A tracked image sequence in memory.

    Attributes:
        frames: ``(N, H, W)`` or ``(N, H, W, C)`` pixels, native byte order, exactly as
            stored (row 0 = first row of the file; colour images in RGB(A) order).
        timestamps_s: ``(N,)`` float64 frame timestamps in seconds (PLUS ``Timestamp``;
            the clock origin is whatever the recorder used, often application start).
        transforms: name without the ``Transform`` suffix (``"ProbeToTracker"``) ->
            ``(N, 4, 4)`` float64 matrices; ``transforms["ProbeToTracker"][i]`` is
            ``T_tracker_probe`` at frame ``i`` (maps probe coords into tracker coords, mm).
            Frames where the transform is absent hold the identity and status ``False``.
        transform_status: same keys -> ``(N,)`` bool, ``True`` where the status is ``OK``.
        spacing_mm: ``(column, row)`` pixel spacing in mm/px from ``ElementSpacing`` or
            ``space directions``; ``None`` if the file does not state it. PLUS often writes
            a placeholder ``1 1 1`` and keeps the real scale in an ``ImageToProbe``
            calibration transform.
        orientation: ``UltrasoundImageOrientation`` (``"MF"``, ``"MN"``, ``"UF"``,
            ``"UN"``, ``"MFA"`` ...): M/U = marked/unmarked probe side at column 0, F/N =
            far/near (transducer) side at row 0. Informational; pixels are not flipped.
        image_type: ``UltrasoundImageType`` (``"BRIGHTNESS"``, ``"RGB_COLOR"``, ...).
        image_valid: ``(N,)`` bool, ``False`` where ``ImageStatus`` (NRRD: ``Status``) is
            not ``OK`` (the pixels of such frames are blank in PLUS files).
        frame_fields: every other per-frame field (``FrameNumber``,
            ``UnfilteredTimestamp``, ...) -> list of N strings (``""`` where absent).
        header: the global header fields as read (``DimSize``, ``ElementType``, custom
            fields ...). Writers regenerate the structural ones and copy the rest.
    """

    frames: npt.NDArray[Any]
    timestamps_s: npt.NDArray[np.float64]
    transforms: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    transform_status: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    spacing_mm: tuple[float, float] | None = None
    orientation: str = "MF"
    image_type: str = "BRIGHTNESS"
    image_valid: npt.NDArray[np.bool_] | None = None
    frame_fields: dict[str, list[str]] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_valid is None:
            self.image_valid = np.ones(len(self.frames), dtype=bool)

    @property
    def num_frames(self) -> int:
        """Number of frames N."""
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        """Image height H in px (rows)."""
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        """Image width W in px (columns)."""
        return int(self.frames.shape[2])

    @property
    def channels(self) -> int:
        """Components per pixel (1 for grey)."""
        return 1 if self.frames.ndim == 3 else int(self.frames.shape[3])

    @property
    def transform_names(self) -> tuple[str, ...]:
        """Names of the per-frame transforms (``"ProbeToTracker"``, ...)."""
        return tuple(self.transforms)


# --------------------------------------------------------------------------------------
# transform names


def split_transform_name(name: str) -> tuple[str, str]:
    """Split a PLUS transform name into ``(from_frame, to_frame)``.

    ``"ProbeToTracker"`` -> ``("Probe", "Tracker")``: the transform maps *Probe*
    coordinates into *Tracker* coordinates (``T_tracker_probe``). A trailing
    ``Transform`` is ignored (``"ImageToReferenceTransform"`` -> ``("Image",
    "Reference")``). As in PLUS, the separator is the one ``To`` followed by an upper-case
    character (or digit), so ``"ToolToTracker"`` -> ``("Tool", "Tracker")``; the first
    letters are capitalised. Raises ValueError when there is not exactly one such ``To``.
    """
    base = name.strip()
    if base.lower().endswith(TRANSFORM_SUFFIX.lower()) and len(base) > len(TRANSFORM_SUFFIX):
        base = base[: -len(TRANSFORM_SUFFIX)]
    positions = [
        m.start()
        for m in re.finditer("To", base)
        if m.start() + 2 < len(base) and base[m.start() + 2].upper() == base[m.start() + 2]
    ]
    if len(positions) != 1:
        raise ValueError(
            f"cannot parse transform name {name!r}: need exactly one 'To' followed by an "
            f"upper-case letter (e.g. 'ProbeToTracker'), found {len(positions)}"
        )
    pos = positions[0]
    if pos == 0:
        raise ValueError(f"cannot parse transform name {name!r}: no frame name before 'To'")
    from_frame, to_frame = base[:pos], base[pos + 2 :]
    return from_frame[0].upper() + from_frame[1:], to_frame[0].upper() + to_frame[1:]


def transform_name(from_frame: str, to_frame: str) -> str:
    """``transform_name("Probe", "Tracker")`` -> ``"ProbeToTracker"`` (T_tracker_probe)."""
    if not from_frame or not to_frame:
        raise ValueError("frame names must not be empty")
    return from_frame[0].upper() + from_frame[1:] + "To" + to_frame[0].upper() + to_frame[1:]


# --------------------------------------------------------------------------------------
# reading


@dataclass
class _Entry:
    value: str
    line: int


@dataclass
class _Header:
    fmt: str  # "mha" | "nrrd"
    fields: dict[str, _Entry]  # global fields, key as written
    lower: dict[str, str]  # lower-case key -> key as written
    frame: dict[str, dict[int, _Entry]]  # field name -> frame index -> entry
    data_offset: int  # byte offset of attached pixel data (end of the header)
    data_file: str | None  # detached data file name, None = attached

    def get(self, *names: str) -> _Entry | None:
        for name in names:
            key = self.lower.get(name.lower())
            if key is not None:
                return self.fields[key]
        return None


def read_sequence(path: str | os.PathLike[str]) -> TrackedSequence:
    """Read a PLUS/Slicer sequence file (``.seq.mha``, ``.igs.mha``, ``.mhd``,
    ``.seq.nrrd``, ``.igs.nrrd``, ``.nhdr``).

    The format is recognised by content (``NRRD000x`` magic, ``Name = value`` header) and
    falls back to the extension. Pixels are read eagerly into one array (compressed data is
    decompressed in chunks straight into it, so peak memory is about the size of the
    frames). Raises :class:`SequenceFileError` for anything wrong with the file, including
    when it does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise SequenceFileError(p, "file not found")
    if not p.is_file():
        raise SequenceFileError(p, "not a regular file")
    try:
        with open(p, "rb") as f:
            header = _read_header(p, f)
            return _build_sequence(p, f, header)
    except OSError as exc:
        raise SequenceFileError(p, f"cannot read file: {exc.strerror or exc}") from exc


def _read_header(path: Path, f: IO[bytes]) -> _Header:
    first = f.read(8)
    f.seek(0)
    if not first:
        raise SequenceFileError(path, "file is empty")
    if first.startswith(b"NRRD"):
        return _read_nrrd_header(path, f)
    name = path.name.lower()
    text_start = first.lstrip()
    if name.endswith((".nrrd", ".nhdr")):
        raise SequenceFileError(path, "not a NRRD file (missing 'NRRD000x' magic line)")
    if name.endswith((".mha", ".mhd")) or b"=" in first or text_start[:1].isalpha():
        return _read_mha_header(path, f)
    raise SequenceFileError(
        path, "not a sequence file: expected a MetaImage ('ObjectType = Image') or NRRD header"
    )


def _header_lines(path: Path, f: IO[bytes]) -> Iterable[tuple[int, str]]:
    """Yield ``(line number, text)`` of header lines (without line terminator)."""
    lineno = 0
    while True:
        raw = f.readline(_MAX_HEADER_LINE + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > _MAX_HEADER_LINE and not raw.endswith(b"\n"):
            raise SequenceFileError(
                path,
                "header line too long (binary data where a text header was expected?)",
                line=lineno,
            )
        if b"\x00" in raw:
            raise SequenceFileError(
                path, "binary data in the header (truncated or corrupt header?)", line=lineno
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        yield lineno, text.rstrip("\r\n")


def _add_frame_field(
    path: Path, frame: dict[str, dict[int, _Entry]], key: str, value: str, lineno: int
) -> None:
    rest = key[len(FRAME_FIELD_PREFIX) :]
    index_text, sep, name = rest.partition("_")
    if not sep or not name or not index_text.isdigit():
        raise SequenceFileError(
            path,
            f"malformed per-frame field name {key!r} (expected 'Seq_Frame<number>_<Field>')",
            line=lineno,
        )
    frame.setdefault(name, {})[int(index_text)] = _Entry(value, lineno)


def _read_mha_header(path: Path, f: IO[bytes]) -> _Header:
    fields: dict[str, _Entry] = {}
    lower: dict[str, str] = {}
    frame: dict[str, dict[int, _Entry]] = {}
    for lineno, text in _header_lines(path, f):
        if not text.strip():
            continue
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise SequenceFileError(
                path,
                f"expected 'Name = value' in the MetaImage header, got {text[:60]!r}",
                line=lineno,
            )
        if key.startswith(FRAME_FIELD_PREFIX):
            _add_frame_field(path, frame, key, value, lineno)
            continue
        fields[key] = _Entry(value, lineno)
        lower[key.lower()] = key
        if key.lower() == "elementdatafile":
            data_file = None if value.upper() == "LOCAL" else value
            if data_file is not None and (
                data_file.upper() == "LIST" or "%" in data_file or " " in data_file.strip()
            ):
                raise SequenceFileError(
                    path,
                    f"ElementDataFile = {value}: only LOCAL or a single detached file is supported",
                    line=lineno,
                )
            return _Header("mha", fields, lower, frame, f.tell(), data_file)
    raise SequenceFileError(
        path,
        "MetaImage header has no 'ElementDataFile' line (truncated file or not a "
        "MetaImage sequence)",
    )


def _read_nrrd_header(path: Path, f: IO[bytes]) -> _Header:
    fields: dict[str, _Entry] = {}
    lower: dict[str, str] = {}
    frame: dict[str, dict[int, _Entry]] = {}
    data_offset = -1
    saw_magic = False
    for lineno, text in _header_lines(path, f):
        if lineno == 1:
            if not re.fullmatch(r"NRRD000[1-9]", text.strip()):
                raise SequenceFileError(path, f"bad NRRD magic {text[:20]!r}", line=1)
            saw_magic = True
            continue
        if not text.strip():
            data_offset = f.tell()
            break
        if text.startswith("#"):
            continue
        kv = text.find(":=")
        colon = text.find(":")
        if colon < 0:
            raise SequenceFileError(
                path,
                f"expected 'field: value' or 'key:=value' in the NRRD header, got {text[:60]!r}",
                line=lineno,
            )
        if kv >= 0 and kv == colon:
            key, value = text[:kv].strip(), text[kv + 2 :].strip()
        else:
            key, value = text[:colon].strip(), text[colon + 1 :].strip()
        if not key:
            raise SequenceFileError(path, "empty field name in the NRRD header", line=lineno)
        if key.startswith(FRAME_FIELD_PREFIX):
            _add_frame_field(path, frame, key, value, lineno)
            continue
        fields[key] = _Entry(value, lineno)
        lower[key.lower()] = key
    if not saw_magic:
        raise SequenceFileError(path, "file is empty")
    data_file_entry = None
    for name in ("data file", "datafile"):
        if name in lower:
            data_file_entry = fields[lower[name]]
    data_file: str | None = None
    if data_file_entry is not None:
        value = data_file_entry.value
        if value.upper().startswith("LIST") or len(value.split()) != 1:
            raise SequenceFileError(
                path,
                f"data file: {value}: only a single detached data file is supported",
                line=data_file_entry.line,
            )
        data_file = value
    elif data_offset < 0:
        raise SequenceFileError(
            path,
            "NRRD header is not terminated by a blank line and names no 'data file' "
            "(truncated file?)",
        )
    return _Header("nrrd", fields, lower, frame, max(data_offset, 0), data_file)


def _parse_ints(path: Path, entry: _Entry, name: str) -> list[int]:
    try:
        values = [int(t) for t in entry.value.split()]
    except ValueError:
        raise SequenceFileError(
            path, f"{name} = {entry.value!r}: expected whole numbers", line=entry.line
        ) from None
    if any(v < 0 for v in values):
        raise SequenceFileError(path, f"{name} = {entry.value!r}: negative size", line=entry.line)
    return values


def _parse_floats(path: Path, entry: _Entry, name: str, count: int | None = None) -> list[float]:
    tokens = entry.value.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise SequenceFileError(path, f"{name}: {bad!r} is not a number", line=entry.line) from None
    if count is not None and len(values) != count:
        raise SequenceFileError(
            path, f"{name}: expected {count} numbers, found {len(values)}", line=entry.line
        )
    if not all(math.isfinite(v) for v in values):
        raise SequenceFileError(path, f"{name}: non-finite number", line=entry.line)
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


@dataclass
class _Layout:
    width: int
    height: int
    frames: int
    channels: int
    dtype: np.dtype[Any]  # with the file's byte order
    encoding: str  # "raw" | "zlib" | "gzip"
    compressed_size: int | None
    spacing: tuple[float, float] | None
    orientation: str
    image_type: str


def _axes_from_kinds(
    path: Path, kinds: list[str], sizes: list[int], entry: _Entry
) -> tuple[int, int, int, int | None]:
    """Map axis kinds onto (W, H, N, channels or None)."""
    domains: list[int] = []
    frames = 1
    channels: int | None = None
    for kind, size in zip(kinds, sizes, strict=True):
        k = kind.lower()
        if k in ("domain", "space"):
            domains.append(size)
        elif k in _FRAME_KINDS:
            frames = size
        elif k in _NRRD_VECTOR_KINDS:
            channels = size
        else:
            raise SequenceFileError(path, f"unsupported axis kind {kind!r}", line=entry.line)
    if len(domains) < 2:
        raise SequenceFileError(
            path, f"need two image axes (kind 'domain'), found {len(domains)}", line=entry.line
        )
    if len(domains) > 3 or (len(domains) == 3 and domains[2] > 1):
        raise SequenceFileError(
            path,
            f"image sizes {domains}: only 2-D frames are supported (no volume sequences)",
            line=entry.line,
        )
    return domains[0], domains[1], frames, channels


def _mha_layout(path: Path, h: _Header) -> _Layout:
    ndims_entry = h.get("NDims")
    dim_entry = h.get("DimSize")
    if dim_entry is None:
        raise SequenceFileError(path, "required field 'DimSize' is missing")
    sizes = _parse_ints(path, dim_entry, "DimSize")
    if ndims_entry is not None:
        try:
            ndims = int(ndims_entry.value)
        except ValueError:
            raise SequenceFileError(
                path, f"NDims = {ndims_entry.value!r} is not a whole number", line=ndims_entry.line
            ) from None
        if ndims not in (2, 3, 4):
            raise SequenceFileError(
                path, f"NDims = {ndims}: must be 2, 3 or 4", line=ndims_entry.line
            )
    else:
        ndims = len(sizes)
    kinds_entry = h.get("Kinds")
    if kinds_entry is not None:
        kinds = kinds_entry.value.split()
        if len(kinds) != len(sizes):
            raise SequenceFileError(
                path,
                f"Kinds has {len(kinds)} entries but DimSize has {len(sizes)} "
                f"({dim_entry.value.strip()!r})",
                line=kinds_entry.line,
            )
    else:
        if len(sizes) != ndims:
            raise SequenceFileError(
                path, f"DimSize has {len(sizes)} values but NDims = {ndims}", line=dim_entry.line
            )
        kinds = ["domain", "domain"] if ndims == 2 else ["domain"] * (ndims - 1) + ["list"]
    width, height, frames, vec_channels = _axes_from_kinds(path, kinds, sizes, dim_entry)

    channels = 1
    ch_entry = h.get("ElementNumberOfChannels")
    if ch_entry is not None:
        try:
            channels = int(ch_entry.value)
        except ValueError:
            raise SequenceFileError(
                path,
                f"ElementNumberOfChannels = {ch_entry.value!r} is not a whole number",
                line=ch_entry.line,
            ) from None
        if channels < 1:
            raise SequenceFileError(
                path, f"ElementNumberOfChannels = {channels}: must be >= 1", line=ch_entry.line
            )
    if vec_channels is not None and vec_channels != channels:
        if ch_entry is not None:
            raise SequenceFileError(
                path,
                f"DimSize has {vec_channels} vector components but "
                f"ElementNumberOfChannels = {channels}",
                line=ch_entry.line,
            )
        channels = vec_channels

    type_entry = h.get("ElementType")
    if type_entry is None:
        raise SequenceFileError(path, "required field 'ElementType' is missing")
    code = _MET_TYPES.get(type_entry.value.strip().upper())
    if code is None:
        raise SequenceFileError(
            path,
            f"ElementType = {type_entry.value!r} is not supported (known: "
            f"{', '.join(sorted(_MET_TYPES))})",
            line=type_entry.line,
        )
    msb = h.get("BinaryDataByteOrderMSB", "ElementByteOrderMSB")
    big = msb is not None and msb.value.strip().lower() == "true"
    dtype = np.dtype(("<" if not big else ">") + code)

    binary = h.get("BinaryData")
    if binary is not None and binary.value.strip().lower() != "true":
        raise SequenceFileError(
            path, "BinaryData = False (ASCII pixel data) is not supported", line=binary.line
        )
    comp = h.get("CompressedData")
    compressed = comp is not None and comp.value.strip().lower() == "true"
    compressed_size: int | None = None
    if compressed:
        size_entry = h.get("CompressedDataSize")
        if size_entry is not None:
            try:
                compressed_size = int(size_entry.value.strip())
            except ValueError:
                raise SequenceFileError(
                    path,
                    f"CompressedDataSize = {size_entry.value.strip()!r} is not a whole number",
                    line=size_entry.line,
                ) from None
            if compressed_size <= 0 and width * height * frames > 0:
                raise SequenceFileError(
                    path,
                    f"CompressedDataSize = {compressed_size}: must be positive",
                    line=size_entry.line,
                )

    spacing = None
    sp_entry = h.get("ElementSpacing", "ElementSize")
    if sp_entry is not None:
        values = _parse_floats(path, sp_entry, "ElementSpacing")
        if len(values) < 2:
            raise SequenceFileError(
                path,
                f"ElementSpacing: expected at least 2 numbers, found {len(values)}",
                line=sp_entry.line,
            )
        spacing = (values[0], values[1])
    orient = h.get("UltrasoundImageOrientation")
    itype = h.get("UltrasoundImageType")
    return _Layout(
        width,
        height,
        frames,
        channels,
        dtype,
        "zlib" if compressed else "raw",
        compressed_size,
        spacing,
        orient.value.strip() if orient else "MF",
        itype.value.strip() if itype else "BRIGHTNESS",
    )


def _nrrd_layout(path: Path, h: _Header) -> _Layout:
    sizes_entry = h.get("sizes")
    if sizes_entry is None:
        raise SequenceFileError(path, "required NRRD field 'sizes' is missing")
    sizes = _parse_ints(path, sizes_entry, "sizes")
    dim_entry = h.get("dimension")
    if dim_entry is None:
        raise SequenceFileError(path, "required NRRD field 'dimension' is missing")
    try:
        dimension = int(dim_entry.value)
    except ValueError:
        raise SequenceFileError(
            path, f"dimension: {dim_entry.value!r} is not a whole number", line=dim_entry.line
        ) from None
    if dimension != len(sizes):
        raise SequenceFileError(
            path,
            f"sizes has {len(sizes)} values but dimension is {dimension}",
            line=sizes_entry.line,
        )
    kinds_entry = h.get("kinds")
    if kinds_entry is not None:
        kinds = kinds_entry.value.split()
        if len(kinds) != len(sizes):
            raise SequenceFileError(
                path,
                f"kinds has {len(kinds)} entries but sizes has {len(sizes)}",
                line=kinds_entry.line,
            )
    elif dimension in (2, 3):
        kinds = ["domain"] * 2 + (["list"] if dimension == 3 else [])
    else:
        raise SequenceFileError(path, f"'kinds' is missing (needed for dimension {dimension})")
    width, height, frames, channels = _axes_from_kinds(path, kinds, sizes, sizes_entry)

    type_entry = h.get("type")
    if type_entry is None:
        raise SequenceFileError(path, "required NRRD field 'type' is missing")
    code = _NRRD_TYPES.get(" ".join(type_entry.value.lower().split()))
    if code is None:
        raise SequenceFileError(
            path, f"type: {type_entry.value!r} is not supported", line=type_entry.line
        )
    endian = h.get("endian")
    big = endian is not None and endian.value.strip().lower() == "big"
    dtype = np.dtype(("<" if not big else ">") + code)

    enc_entry = h.get("encoding")
    if enc_entry is None:
        raise SequenceFileError(path, "required NRRD field 'encoding' is missing")
    enc = enc_entry.value.strip().lower()
    if enc == "raw":
        encoding = "raw"
    elif enc in ("gz", "gzip"):
        encoding = "gzip"
    else:
        raise SequenceFileError(
            path,
            f"encoding: {enc_entry.value!r} is not supported (use raw or gzip)",
            line=enc_entry.line,
        )
    for skip_name in ("byte skip", "byteskip", "line skip", "lineskip"):
        skip = h.get(skip_name)
        if skip is not None and skip.value.strip() not in ("0", ""):
            raise SequenceFileError(
                path, f"{skip_name}: {skip.value.strip()} is not supported", line=skip.line
            )

    spacing = _nrrd_spacing(path, h, kinds)
    orient = h.get("ultrasound image orientation", "UltrasoundImageOrientation")
    itype = h.get("ultrasound image type", "UltrasoundImageType")
    return _Layout(
        width,
        height,
        frames,
        channels or 1,
        dtype,
        encoding,
        None,
        spacing,
        orient.value.strip() if orient else "MF",
        itype.value.strip() if itype else "BRIGHTNESS",
    )


def _nrrd_spacing(path: Path, h: _Header, kinds: list[str]) -> tuple[float, float] | None:
    domain_axes = [i for i, k in enumerate(kinds) if k.lower() in ("domain", "space")]
    dirs = h.get("space directions")
    if dirs is not None:
        tokens = re.findall(r"\([^)]*\)|none", dirs.value)
        if len(tokens) != len(kinds):
            raise SequenceFileError(
                path,
                f"space directions has {len(tokens)} entries, expected {len(kinds)}",
                line=dirs.line,
            )
        norms: list[float] = []
        for axis in domain_axes[:2]:
            tok = tokens[axis]
            if tok == "none":
                raise SequenceFileError(
                    path, f"space directions: image axis {axis} is 'none'", line=dirs.line
                )
            try:
                vec = [float(v) for v in tok.strip("()").split(",")]
            except ValueError:
                raise SequenceFileError(
                    path,
                    f"space directions: {tok!r} is not a vector of numbers",
                    line=dirs.line,
                ) from None
            norms.append(math.sqrt(sum(v * v for v in vec)))
        return norms[0], norms[1]
    spacings = h.get("spacings")
    if spacings is not None:
        tokens = spacings.value.split()
        if len(tokens) != len(kinds):
            raise SequenceFileError(
                path,
                f"spacings has {len(tokens)} entries, expected {len(kinds)}",
                line=spacings.line,
            )
        try:
            return float(tokens[domain_axes[0]]), float(tokens[domain_axes[1]])
        except ValueError:
            raise SequenceFileError(path, "spacings: not a number", line=spacings.line) from None
    return None


def _build_sequence(path: Path, f: IO[bytes], h: _Header) -> TrackedSequence:
    layout = _mha_layout(path, h) if h.fmt == "mha" else _nrrd_layout(path, h)
    n = layout.frames

    for name, entries in h.frame.items():
        bad = [i for i in entries if i >= n]
        if bad:
            e = entries[bad[0]]
            raise SequenceFileError(
                path,
                f"field Seq_Frame{bad[0]:04d}_{name} refers to frame {bad[0]} but the "
                f"size declares {n} frame(s)",
                line=e.line,
            )

    frames = _read_pixels(path, f, h, layout)

    # timestamps
    ts_entries = h.frame.get("Timestamp")
    if not ts_entries:
        raise SequenceFileError(
            path, "no per-frame timestamps (required field Seq_Frame0000_Timestamp missing)"
        )
    timestamps = np.empty(n, dtype=np.float64)
    for i in range(n):
        ts_e = ts_entries.get(i)
        if ts_e is None:
            raise SequenceFileError(
                path, f"frame {i} has no timestamp (field Seq_Frame{i:04d}_Timestamp missing)"
            )
        try:
            timestamps[i] = float(ts_e.value)
        except ValueError:
            raise SequenceFileError(
                path, f"Seq_Frame{i:04d}_Timestamp: {ts_e.value!r} is not a number", line=ts_e.line
            ) from None
        if not math.isfinite(timestamps[i]):
            raise SequenceFileError(
                path, f"Seq_Frame{i:04d}_Timestamp: {ts_e.value!r} is not finite", line=ts_e.line
            )

    # transforms and statuses
    used: set[str] = {"Timestamp"}
    transforms: dict[str, npt.NDArray[np.float64]] = {}
    statuses: dict[str, npt.NDArray[np.bool_]] = {}
    for fname in h.frame:
        low = fname.lower()
        if not low.endswith(TRANSFORM_SUFFIX.lower()) or len(fname) <= len(TRANSFORM_SUFFIX):
            continue
        name = fname[: -len(TRANSFORM_SUFFIX)]
        entries = h.frame[fname]
        mats = np.tile(_IDENTITY, (n, 1, 1))
        present = np.zeros(n, dtype=bool)
        for i, e in entries.items():
            values = _parse_floats(path, e, f"Seq_Frame{i:04d}_{fname}", 16)
            mats[i] = np.asarray(values, dtype=np.float64).reshape(4, 4)
            present[i] = True
        status_field = next((k for k in h.frame if k.lower() == (fname + "Status").lower()), None)
        valid = present.copy()
        if status_field is not None:
            used.add(status_field)
            for i, e in h.frame[status_field].items():
                valid[i] = present[i] and e.value.strip().upper() == "OK"
        transforms[name] = mats
        statuses[name] = valid
        used.add(fname)

    image_valid = np.ones(n, dtype=bool)
    for status_name in ("ImageStatus", "Status"):
        if status_name in h.frame:
            used.add(status_name)
            for i, e in h.frame[status_name].items():
                image_valid[i] = e.value.strip().upper() == "OK"

    frame_fields: dict[str, list[str]] = {}
    for fname, entries in h.frame.items():
        if fname in used:
            continue
        texts = [""] * n
        for i, e in entries.items():
            texts[i] = e.value
        frame_fields[fname] = texts

    return TrackedSequence(
        frames=frames,
        timestamps_s=timestamps,
        transforms=transforms,
        transform_status=statuses,
        spacing_mm=layout.spacing,
        orientation=layout.orientation,
        image_type=layout.image_type,
        image_valid=image_valid,
        frame_fields=frame_fields,
        header={k: e.value for k, e in h.fields.items()},
    )


def _read_pixels(path: Path, f: IO[bytes], h: _Header, layout: _Layout) -> npt.NDArray[Any]:
    shape: tuple[int, ...] = (layout.frames, layout.height, layout.width)
    if layout.channels > 1:
        shape = (*shape, layout.channels)
    out = np.empty(shape, dtype=layout.dtype)
    total = out.nbytes
    if h.data_file is None:
        data_path, offset, src = path, h.data_offset, f
    else:
        data_path = path.parent / h.data_file
        offset = 0
        if not data_path.is_file():
            raise SequenceFileError(path, f"detached data file {h.data_file!r} not found")
        src = open(data_path, "rb")  # closed in the finally below
    try:
        if total > 0:
            size = os.fstat(src.fileno()).st_size
            available = size - offset
            buf = out.data.cast("B")
            if layout.encoding == "raw":
                _read_raw(path, src, offset, buf, available, layout, h)
            else:
                _read_compressed(path, src, offset, buf, available, layout)
    finally:
        if src is not f:
            src.close()
    if not out.dtype.isnative:
        out = out.byteswap(inplace=True).view(out.dtype.newbyteorder("="))
    return out


def _size_text(layout: _Layout) -> str:
    return (
        f"{layout.frames} frame(s) x {layout.height} rows x {layout.width} columns x "
        f"{layout.channels} channel(s) x {layout.dtype.itemsize} byte(s)"
    )


def _read_raw(
    path: Path,
    src: IO[bytes],
    offset: int,
    buf: memoryview,
    available: int,
    layout: _Layout,
    h: _Header,
) -> None:
    total = buf.nbytes
    if available < total:
        raise SequenceFileError(
            path,
            f"pixel data truncated: the header declares {total} bytes "
            f"({_size_text(layout)}) but only {max(available, 0)} follow the header",
        )
    if available > total and h.data_file is None:
        raise SequenceFileError(
            path,
            f"{available - total} unexpected bytes after the pixel data: the header "
            f"declares {total} bytes ({_size_text(layout)}) but {available} follow it "
            "(wrong DimSize/ElementType?)",
        )
    src.seek(offset)
    pos = 0
    while pos < total:
        n = src.readinto(buf[pos : min(total, pos + _CHUNK)])  # type: ignore[attr-defined]
        if not n:
            raise SequenceFileError(path, f"pixel data truncated after {pos} of {total} bytes")
        pos += n


def _read_compressed(
    path: Path, src: IO[bytes], offset: int, buf: memoryview, available: int, layout: _Layout
) -> None:
    total = buf.nbytes
    csize = layout.compressed_size
    if csize is not None and csize > available:
        raise SequenceFileError(
            path,
            f"CompressedDataSize = {csize} but only {max(available, 0)} bytes follow the "
            "header (truncated file or wrong CompressedDataSize)",
        )
    limit = csize if csize is not None else available
    if total > limit * _ZLIB_MAX_RATIO + (1 << 20):
        raise SequenceFileError(
            path,
            f"the header declares {total} bytes of pixels ({_size_text(layout)}) but "
            f"{limit} compressed bytes cannot hold that much (wrong DimSize?)",
        )
    what = "CompressedDataSize" if layout.encoding == "zlib" else "gzip data"
    wbits = zlib.MAX_WBITS | (32 if layout.encoding == "gzip" else 0)
    d = zlib.decompressobj(wbits)
    src.seek(offset)
    remaining = limit
    pos = 0
    try:
        while remaining > 0 and not d.eof:
            chunk = src.read(min(_CHUNK, remaining))
            if not chunk:
                raise SequenceFileError(path, "compressed pixel data truncated")
            remaining -= len(chunk)
            data = chunk
            while data:
                piece = d.decompress(data, total - pos + 1)
                if len(piece) > total - pos:
                    raise SequenceFileError(
                        path,
                        f"compressed pixel data holds more than the {total} bytes the "
                        f"header declares ({_size_text(layout)}; wrong DimSize/ElementType?)",
                    )
                buf[pos : pos + len(piece)] = piece
                pos += len(piece)
                if d.eof:
                    extra = d.unused_data
                    if layout.encoding == "gzip" and extra[:2] == b"\x1f\x8b" and pos < total:
                        d = zlib.decompressobj(wbits)  # next gzip member
                        data = extra
                        continue
                    break
                data = d.unconsumed_tail
    except zlib.error as exc:
        raise SequenceFileError(
            path,
            f"compressed pixel data is corrupt (zlib: {exc}) after {pos} of {total} "
            "decompressed bytes",
        ) from None
    if pos < total or not d.eof:
        if not d.eof:
            raise SequenceFileError(
                path,
                f"compressed pixel data ends early: decompressed {pos} of {total} bytes "
                f"({_size_text(layout)}); the file is truncated or the {what} size is wrong",
            )
        raise SequenceFileError(
            path,
            f"compressed pixel data holds {pos} bytes but the header declares {total} "
            f"({_size_text(layout)}; wrong DimSize/ElementType?)",
        )


# --------------------------------------------------------------------------------------
# writing


def _fmt(value: float) -> str:
    """Shortest round-trip text of a float; integral values without '.0' (as PLUS)."""
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _check_text(what: str, text: str) -> str:
    if any(c in text for c in "\r\n\x00"):
        raise ValueError(f"{what} must not contain line breaks or NUL: {text!r}")
    return text


def _validate(seq: TrackedSequence) -> tuple[int, int, int, int]:
    frames = np.asarray(seq.frames)
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (N, H, W) or (N, H, W, C), got shape {frames.shape}")
    n, height, width = (int(s) for s in frames.shape[:3])
    channels = 1 if frames.ndim == 3 else int(frames.shape[3])
    if n < 1 or height < 1 or width < 1 or channels < 1:
        raise ValueError(f"frames must not be empty, got shape {frames.shape}")
    if frames.dtype.kind not in "iuf" or frames.dtype.str[1:] not in _DTYPE_TO_MET:
        raise ValueError(f"unsupported pixel dtype {frames.dtype}")
    if np.shape(seq.timestamps_s) != (n,):
        raise ValueError(f"timestamps_s must have shape ({n},), got {np.shape(seq.timestamps_s)}")
    if not np.all(np.isfinite(seq.timestamps_s)):
        raise ValueError("timestamps_s must be finite")
    for name, mats in seq.transforms.items():
        split_transform_name(name)
        if np.shape(mats) != (n, 4, 4):
            raise ValueError(
                f"transform {name!r} must have shape ({n}, 4, 4), got {np.shape(mats)}"
            )
        status = seq.transform_status.get(name)
        if status is not None and np.shape(status) != (n,):
            raise ValueError(f"transform_status[{name!r}] must have shape ({n},)")
    for name, values in seq.frame_fields.items():
        _check_text("frame field name", name)
        if len(values) != n:
            raise ValueError(f"frame field {name!r} must have {n} values, got {len(values)}")
    if seq.image_valid is not None and np.shape(seq.image_valid) != (n,):
        raise ValueError(f"image_valid must have shape ({n},)")
    return n, height, width, channels


def _frame_lines(seq: TrackedSequence, n: int, image_status_name: str) -> Iterable[tuple[str, str]]:
    """Per-frame ``(key, value)`` pairs in PLUS order (alphabetical, image status last)."""
    names = set(seq.frame_fields) | {"Timestamp"}
    for name in seq.transforms:
        names.add(name + TRANSFORM_SUFFIX)
        names.add(name + TRANSFORM_STATUS_SUFFIX)
    if "FrameNumber" not in seq.frame_fields:
        names.add("FrameNumber")
    ordered = sorted(names)
    valid_img = seq.image_valid if seq.image_valid is not None else np.ones(n, dtype=bool)
    for i in range(n):
        prefix = f"{FRAME_FIELD_PREFIX}{i:04d}_"
        for name in ordered:
            if name == "Timestamp":
                value = _fmt(float(seq.timestamps_s[i]))
            elif name in seq.frame_fields:
                value = _check_text(f"frame field {name}", str(seq.frame_fields[name][i]))
                if value == "":
                    continue
            elif name == "FrameNumber":
                value = str(i)
            elif name.endswith(TRANSFORM_STATUS_SUFFIX) and name[:-15] in seq.transforms:
                status = seq.transform_status.get(name[:-15])
                value = "OK" if status is None or bool(status[i]) else "INVALID"
            else:
                tname = name[: -len(TRANSFORM_SUFFIX)]
                mat = np.asarray(seq.transforms[tname][i], dtype=np.float64)
                status = seq.transform_status.get(tname)
                if not np.all(np.isfinite(mat)):
                    if status is None or bool(status[i]):
                        raise ValueError(f"transform {tname!r} of frame {i} is not finite")
                    mat = _IDENTITY
                value = " ".join(_fmt(v) for v in mat.reshape(16))
            yield prefix + name, value
        yield prefix + image_status_name, "OK" if bool(valid_img[i]) else "INVALID"


def _extra_header(seq: TrackedSequence) -> list[tuple[str, str]]:
    out = []
    for key, value in seq.header.items():
        if key.lower() in _STRUCTURAL_KEYS or key.startswith(FRAME_FIELD_PREFIX):
            continue
        if not key or any(c in key for c in ":=#\r\n") or any(c in value for c in "#\r\n"):
            continue
        out.append((key, value))
    return out


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would set it for every
    thread for a moment); 0o022 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_sequence(
    path: str | os.PathLike[str], seq: TrackedSequence, compress: bool = True
) -> None:
    """Write ``seq`` as a PLUS/Slicer sequence file; the format follows the extension.

    * ``.mha`` (``.seq.mha``, ``.igs.mha``): MetaImage sequence metafile as PLUS writes it
      (``NDims = 3``, ``DimSize = W H N``, ``Kinds = domain domain list``,
      ``ElementNumberOfChannels``, ``ImageStatus`` per frame, data ``LOCAL``); with
      ``compress`` one zlib stream over all frames and ``CompressedDataSize``.
    * ``.nrrd`` (``.seq.nrrd``, ``.igs.nrrd``): NRRD as IGSIO writes it (``kinds: domain
      domain list``, or ``vector domain domain list`` for colour; per-frame
      ``Seq_Frame0000_...:=`` key/values, image status field ``Status``); ``compress``
      selects ``encoding: gz`` (gzip) instead of ``raw``.

    Pixels are written as given (RGB order for colour, as PLUS/VTK expect), little-endian.
    The file is written to a temporary name and renamed, so readers never see a partial
    file. Raises ValueError for inconsistent data (shapes, dtypes, non-finite values) and
    OSError for I/O problems.
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".mha"):
        fmt = "mha"
    elif name.endswith(".nrrd"):
        fmt = "nrrd"
    else:
        raise ValueError(
            f"{p}: unsupported extension; use .seq.mha, .igs.mha, .seq.nrrd or .igs.nrrd"
        )
    n, height, width, channels = _validate(seq)
    frames = np.ascontiguousarray(seq.frames)
    code = frames.dtype.str[1:]
    if frames.dtype.byteorder == ">" or (frames.dtype.byteorder == "=" and not _little()):
        frames = frames.astype(frames.dtype.newbyteorder("<"))
    spacing = seq.spacing_mm if seq.spacing_mm is not None else (1.0, 1.0)
    orientation = _check_text("orientation", seq.orientation or "MF")
    image_type = _check_text("image_type", seq.image_type or "BRIGHTNESS")

    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w+b") as out:
            if fmt == "mha":
                _write_mha(
                    out,
                    seq,
                    frames,
                    n,
                    height,
                    width,
                    channels,
                    code,
                    spacing,
                    orientation,
                    image_type,
                    compress,
                )
            else:
                _write_nrrd(
                    out,
                    seq,
                    frames,
                    n,
                    height,
                    width,
                    channels,
                    code,
                    spacing,
                    orientation,
                    image_type,
                    compress,
                )
            out.flush()
            # mkstemp creates 0600; give the file the mode a plain open() would (0666 & ~umask)
            os.fchmod(out.fileno(), 0o666 & ~_umask())
            os.fsync(out.fileno())
        os.replace(tmp_name, p)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise


def _little() -> bool:
    return bool(np.little_endian)


def _write_data(out: IO[bytes], frames: npt.NDArray[Any], compressor: Any | None) -> int:
    """Write the pixels of all frames (one stream); return the number of bytes written."""
    written = 0
    for frame in frames:
        data = np.ascontiguousarray(frame).data.cast("B")
        if compressor is None:
            out.write(data)
            written += data.nbytes
        else:
            for start in range(0, data.nbytes, _CHUNK):
                piece = compressor.compress(data[start : start + _CHUNK])
                out.write(piece)
                written += len(piece)
    if compressor is not None:
        tail = compressor.flush()
        out.write(tail)
        written += len(tail)
    return written


_CDS_WIDTH = 20  # digits reserved for CompressedDataSize, patched after compressing


def _write_mha(
    out: IO[bytes],
    seq: TrackedSequence,
    frames: npt.NDArray[Any],
    n: int,
    height: int,
    width: int,
    channels: int,
    code: str,
    spacing: tuple[float, float],
    orientation: str,
    image_type: str,
    compress: bool,
) -> None:
    lines: list[tuple[str, str]] = [
        ("ObjectType", "Image"),
        ("NDims", "3"),
        ("AnatomicalOrientation", "RAI"),
        ("BinaryData", "True"),
        ("BinaryDataByteOrderMSB", "False"),
        ("CenterOfRotation", "0 0 0"),
        ("CompressedData", "True" if compress else "False"),
    ]
    if compress:
        lines.append(("CompressedDataSize", " " * _CDS_WIDTH))
    lines += [
        ("DimSize", f"{width} {height} {n}"),
        ("ElementNumberOfChannels", str(channels)),
        ("ElementSpacing", f"{_fmt(spacing[0])} {_fmt(spacing[1])} 1"),
        ("ElementType", _DTYPE_TO_MET[code]),
        ("Kinds", "domain domain list"),
        ("Offset", "0 0 0"),
        ("TransformMatrix", "1 0 0 0 1 0 0 0 1"),
        ("UltrasoundImageOrientation", orientation),
        ("UltrasoundImageType", image_type),
    ]
    lines += _extra_header(seq)
    lines += list(_frame_lines(seq, n, "ImageStatus"))
    lines.append(("ElementDataFile", "LOCAL"))
    cds_pos = -1
    for key, value in lines:
        if key == "CompressedDataSize":
            cds_pos = out.tell() + len(key) + 3
        out.write(f"{key} = {value}\n".encode())
    compressor = (
        zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, zlib.MAX_WBITS)
        if compress
        else None
    )
    written = _write_data(out, frames, compressor)
    if compress:
        text = str(written)
        if len(text) > _CDS_WIDTH:  # pragma: no cover - 10^20 bytes
            raise ValueError("compressed data too large")
        out.seek(cds_pos)
        out.write(text.ljust(_CDS_WIDTH).encode())
        out.seek(0, os.SEEK_END)


def _write_nrrd(
    out: IO[bytes],
    seq: TrackedSequence,
    frames: npt.NDArray[Any],
    n: int,
    height: int,
    width: int,
    channels: int,
    code: str,
    spacing: tuple[float, float],
    orientation: str,
    image_type: str,
    compress: bool,
) -> None:
    vec = channels > 1
    sizes = ([str(channels)] if vec else []) + [str(width), str(height), str(n)]
    kinds = (["vector"] if vec else []) + ["domain", "domain", "list"]
    directions = (["none"] if vec else []) + [
        f"({_fmt(spacing[0])},0)",
        f"(0,{_fmt(spacing[1])})",
        "none",
    ]
    text = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        f"type: {_DTYPE_TO_NRRD[code]}",
        f"dimension: {len(sizes)}",
        "space dimension: 2",
        f"sizes: {' '.join(sizes)}",
        f"space directions: {' '.join(directions)}",
        f"kinds: {' '.join(kinds)}",
        "endian: little",
        f"encoding: {'gz' if compress else 'raw'}",
        "space origin: (0,0)",
        f"ultrasound image orientation:={orientation}",
        f"ultrasound image type:={image_type}",
    ]
    text += [f"{k}:={v}" for k, v in _extra_header(seq)]
    for key, value in _frame_lines(seq, n, "Status"):
        if "#" in value:
            raise ValueError(f"NRRD header values must not contain '#': {key}={value!r}")
        text.append(f"{key}:={value}")
    out.write(("\n".join(text) + "\n\n").encode())
    compressor = (
        zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        if compress
        else None
    )
    _write_data(out, frames, compressor)
