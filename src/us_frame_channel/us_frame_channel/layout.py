"""Binary layout of the shared-memory frame channel, version 1.

This module is the normative reference next to ``docs/shared-memory-layout.md``. Every
frame travels as one iceoryx2 sample of a publish-subscribe service:

* user header: :class:`FrameHeader`, 256 bytes, little-endian, naturally aligned;
* payload: ``payload_bytes`` bytes of pixels, rows of ``stride_bytes``, aligned to
  :data:`PAYLOAD_ALIGNMENT` bytes.

A reader that meets a different ``magic`` or ``layout_version`` must refuse the frame.
Adding a pixel format or using a reserved field keeps the version; changing the meaning,
size or offset of an existing field bumps it.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: b"USFR" read as a little-endian u32.
FRAME_MAGIC = 0x52465355
#: Version of the FrameHeader layout and of the service settings below.
LAYOUT_VERSION = 1
#: Size of :class:`FrameHeader` in bytes.
HEADER_BYTES = 256
#: Alignment of the pixel payload in shared memory, bytes (a page).
PAYLOAD_ALIGNMENT = 4096
#: iceoryx2 type name of the user header; part of the service's type identity.
HEADER_TYPE_NAME = "us_frame_channel::FrameHeader"

#: b"USMD" read as a little-endian u32.
METADATA_MAGIC = 0x444D5355
#: Capacity of the metadata JSON document, bytes (UTF-8).
METADATA_CAPACITY = 16384
METADATA_TYPE_NAME = "us_frame_channel::MetadataRecord"

# iceoryx2 service attributes written by the producer; a reader verifies them on open.
ATTR_LAYOUT_VERSION = "us.layout_version"
ATTR_MAX_FRAME_BYTES = "us.max_frame_bytes"
ATTR_KIND = "us.kind"

# Event ids on the channel's event service.
EVENT_FRAME = 0
EVENT_PRODUCER_ONLINE = 1
EVENT_METADATA = 2
EVENT_ID_MAX = 7


class PixelFormat(enum.IntEnum):
    """Pixel formats a channel carries; the value is stored in ``FrameHeader.pixel_format``."""

    MONO8 = 1  # (H, W) uint8 grey
    MONO16 = 2  # (H, W) uint16 grey
    UYVY = 3  # (H, W, 2) uint8, 4:2:2 (U Y0 V Y1 per pixel pair), W even
    BGR8 = 4  # (H, W, 3) uint8
    BGRA8 = 5  # (H, W, 4) uint8
    FLOAT32 = 6  # (H, W) float32, e.g. class probabilities
    LABEL8 = 7  # (H, W) uint8 class ids (segmentation masks)

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | PixelFormat) -> PixelFormat:
        """Accept ``"mono8"``, ``PixelFormat.MONO8`` or ``1``; raise ValueError otherwise."""
        if isinstance(value, PixelFormat):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                names = ", ".join(p.label for p in cls)
                raise ValueError(f"unknown pixel format {value!r}; known: {names}") from None
        try:
            return cls(int(value))
        except ValueError:
            raise ValueError(f"unknown pixel format code {value!r}") from None


@dataclass(frozen=True)
class PixelLayout:
    """How a pixel format maps onto numpy: dtype and channels per pixel."""

    dtype: np.dtype[np.generic]
    channels: int  # values per pixel; 1 means a 2-D (H, W) array

    @property
    def bytes_per_pixel(self) -> int:
        return int(self.dtype.itemsize * self.channels)


PIXEL_LAYOUTS: dict[PixelFormat, PixelLayout] = {
    PixelFormat.MONO8: PixelLayout(np.dtype(np.uint8), 1),
    PixelFormat.MONO16: PixelLayout(np.dtype("<u2"), 1),
    PixelFormat.UYVY: PixelLayout(np.dtype(np.uint8), 2),
    PixelFormat.BGR8: PixelLayout(np.dtype(np.uint8), 3),
    PixelFormat.BGRA8: PixelLayout(np.dtype(np.uint8), 4),
    PixelFormat.FLOAT32: PixelLayout(np.dtype("<f4"), 1),
    PixelFormat.LABEL8: PixelLayout(np.dtype(np.uint8), 1),
}


def array_shape(pixel_format: PixelFormat, width: int, height: int) -> tuple[int, ...]:
    """numpy shape of a frame: ``(H, W)`` or ``(H, W, C)``."""
    channels = PIXEL_LAYOUTS[pixel_format].channels
    return (height, width) if channels == 1 else (height, width, channels)


def frame_bytes(pixel_format: PixelFormat, width: int, height: int) -> int:
    """Bytes of a tightly packed frame (stride = width x bytes per pixel)."""
    return width * height * PIXEL_LAYOUTS[pixel_format].bytes_per_pixel


def infer_geometry(array: npt.NDArray[np.generic], pixel_format: PixelFormat) -> tuple[int, int]:
    """Return ``(width, height)`` of ``array`` for ``pixel_format`` or raise ValueError."""
    layout = PIXEL_LAYOUTS[pixel_format]
    if array.dtype != layout.dtype:
        raise ValueError(
            f"{pixel_format.label} frames are {layout.dtype} arrays, got {array.dtype}"
        )
    expected = 2 if layout.channels == 1 else 3
    if array.ndim != expected or (expected == 3 and array.shape[2] != layout.channels):
        want = "(H, W)" if expected == 2 else f"(H, W, {layout.channels})"
        raise ValueError(f"{pixel_format.label} frames have shape {want}, got {tuple(array.shape)}")
    height, width = int(array.shape[0]), int(array.shape[1])
    if width == 0 or height == 0:
        raise ValueError("frame has zero width or height")
    if pixel_format is PixelFormat.UYVY and width % 2:
        raise ValueError(f"uyvy frames need an even width, got {width}")
    return width, height


class FrameHeader(ctypes.LittleEndianStructure):
    """Per-frame header (iceoryx2 user header). 256 bytes; offsets in the docs."""

    _fields_ = [
        ("magic", ctypes.c_uint32),  # 0   FRAME_MAGIC
        ("layout_version", ctypes.c_uint16),  # 4   LAYOUT_VERSION
        ("header_bytes", ctypes.c_uint16),  # 6   HEADER_BYTES
        ("seq", ctypes.c_uint64),  # 8   +1 per published frame, from 0
        ("producer_epoch", ctypes.c_uint64),  # 16  random per producer run, never 0
        ("source_seq", ctypes.c_uint64),  # 24  derived channels: seq of the source frame
        ("source_epoch", ctypes.c_uint64),  # 32  derived channels: epoch of the source
        ("device_timestamp_ns", ctypes.c_int64),  # 40  device clock, 0 = none
        ("host_timestamp_ns", ctypes.c_int64),  # 48  CLOCK_REALTIME at capture, ns
        ("publish_monotonic_ns", ctypes.c_int64),  # 56  CLOCK_MONOTONIC at send, ns
        ("width", ctypes.c_uint32),  # 64  px
        ("height", ctypes.c_uint32),  # 68  px
        ("stride_bytes", ctypes.c_uint32),  # 72  bytes per row
        ("payload_bytes", ctypes.c_uint32),  # 76  stride_bytes * height
        ("pixel_format", ctypes.c_uint32),  # 80  PixelFormat
        ("flags", ctypes.c_uint32),  # 84  reserved, 0
        ("spacing_x_mm", ctypes.c_double),  # 88  mm per px along columns, 0 = unknown
        ("spacing_y_mm", ctypes.c_double),  # 96  mm per px along rows (depth)
        ("roi_x", ctypes.c_uint32),  # 104 ultrasound image region, px
        ("roi_y", ctypes.c_uint32),  # 108
        ("roi_width", ctypes.c_uint32),  # 112
        ("roi_height", ctypes.c_uint32),  # 116
        ("meta_revision", ctypes.c_uint32),  # 120 metadata revision in force
        ("reserved0", ctypes.c_uint32),  # 124
        ("reserved", ctypes.c_uint8 * 128),  # 128 zero
    ]

    @staticmethod
    def type_name() -> str:
        return HEADER_TYPE_NAME


assert ctypes.sizeof(FrameHeader) == HEADER_BYTES, ctypes.sizeof(FrameHeader)


class MetadataRecord(ctypes.LittleEndianStructure):
    """Per-channel metadata: a UTF-8 JSON object (device, probe, depth, key/values)."""

    _fields_ = [
        ("magic", ctypes.c_uint32),  # METADATA_MAGIC
        ("layout_version", ctypes.c_uint16),
        ("reserved0", ctypes.c_uint16),
        ("revision", ctypes.c_uint32),  # +1 per change, from 1
        ("json_bytes", ctypes.c_uint32),  # length of the document
        ("json", ctypes.c_char * METADATA_CAPACITY),
    ]

    @staticmethod
    def type_name() -> str:
        return METADATA_TYPE_NAME


@dataclass(frozen=True)
class FrameInfo:
    """A Python copy of a frame's header fields (see :class:`FrameHeader` for units)."""

    seq: int
    producer_epoch: int
    source_seq: int
    source_epoch: int
    device_timestamp_ns: int
    host_timestamp_ns: int
    publish_monotonic_ns: int
    width: int
    height: int
    stride_bytes: int
    payload_bytes: int
    pixel_format: PixelFormat
    spacing_x_mm: float
    spacing_y_mm: float
    roi: tuple[int, int, int, int]  # x, y, width, height (px)
    meta_revision: int
    flags: int

    @classmethod
    def from_header(cls, h: FrameHeader) -> FrameInfo:
        return cls(
            seq=h.seq,
            producer_epoch=h.producer_epoch,
            source_seq=h.source_seq,
            source_epoch=h.source_epoch,
            device_timestamp_ns=h.device_timestamp_ns,
            host_timestamp_ns=h.host_timestamp_ns,
            publish_monotonic_ns=h.publish_monotonic_ns,
            width=h.width,
            height=h.height,
            stride_bytes=h.stride_bytes,
            payload_bytes=h.payload_bytes,
            pixel_format=PixelFormat(h.pixel_format),
            spacing_x_mm=h.spacing_x_mm,
            spacing_y_mm=h.spacing_y_mm,
            roi=(h.roi_x, h.roi_y, h.roi_width, h.roi_height),
            meta_revision=h.meta_revision,
            flags=h.flags,
        )
