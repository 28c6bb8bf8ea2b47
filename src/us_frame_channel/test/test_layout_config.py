"""The layout and the configuration, without shared memory."""

import ctypes

import numpy as np
import pytest
from us_frame_channel.layout import (
    HEADER_BYTES,
    FrameHeader,
    MetadataRecord,
    infer_geometry,
)

from us_frame_channel import ChannelConfig, ChannelConfigError, PixelFormat, frame_bytes

# Offsets are normative (docs/shared-memory-layout.md): other languages read them.
EXPECTED_OFFSETS = {
    "magic": 0,
    "layout_version": 4,
    "header_bytes": 6,
    "seq": 8,
    "producer_epoch": 16,
    "source_seq": 24,
    "source_epoch": 32,
    "device_timestamp_ns": 40,
    "host_timestamp_ns": 48,
    "publish_monotonic_ns": 56,
    "width": 64,
    "height": 68,
    "stride_bytes": 72,
    "payload_bytes": 76,
    "pixel_format": 80,
    "flags": 84,
    "spacing_x_mm": 88,
    "spacing_y_mm": 96,
    "roi_x": 104,
    "roi_y": 108,
    "roi_width": 112,
    "roi_height": 116,
    "meta_revision": 120,
    "reserved0": 124,
    "reserved": 128,
}


def test_header_offsets_match_the_spec() -> None:
    assert ctypes.sizeof(FrameHeader) == HEADER_BYTES == 256
    for name, offset in EXPECTED_OFFSETS.items():
        assert getattr(FrameHeader, name).offset == offset, name


def test_metadata_record_layout() -> None:
    assert MetadataRecord.json.offset == 16
    assert ctypes.sizeof(MetadataRecord) == 16 + 16384


@pytest.mark.parametrize(
    ("fmt", "shape", "dtype", "nbytes"),
    [
        ("mono8", (480, 640), np.uint8, 640 * 480),
        ("mono16", (480, 640), np.uint16, 640 * 480 * 2),
        ("uyvy", (1080, 1920, 2), np.uint8, 1920 * 1080 * 2),
        ("bgr8", (480, 640, 3), np.uint8, 640 * 480 * 3),
        ("bgra8", (480, 640, 4), np.uint8, 640 * 480 * 4),
        ("float32", (480, 640), np.float32, 640 * 480 * 4),
        ("label8", (480, 640), np.uint8, 640 * 480),
    ],
)
def test_pixel_formats(fmt: str, shape: tuple[int, ...], dtype: type, nbytes: int) -> None:
    pf = PixelFormat.parse(fmt)
    w, h = infer_geometry(np.zeros(shape, dtype), pf)
    assert (w, h) == (shape[1], shape[0])
    assert frame_bytes(pf, w, h) == nbytes


def test_geometry_errors_are_explicit() -> None:
    with pytest.raises(ValueError, match="uint8"):
        infer_geometry(np.zeros((4, 4), np.float32), PixelFormat.MONO8)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        infer_geometry(np.zeros((4, 4), np.uint8), PixelFormat.BGR8)
    with pytest.raises(ValueError, match="even width"):
        infer_geometry(np.zeros((4, 3, 2), np.uint8), PixelFormat.UYVY)
    with pytest.raises(ValueError, match="unknown pixel format"):
        PixelFormat.parse("rgb565")


def test_config_from_dict_and_validation() -> None:
    cfg = ChannelConfig.from_dict(
        {"name": "us/frames", "width": 1920, "height": 1080, "pixel_format": "uyvy"}
    )
    assert cfg.max_frame_bytes == 1920 * 1080 * 2
    assert cfg.shared_memory_bytes() == cfg.max_frame_bytes * (4 * (4 + 2) + 2)
    bad = [
        ({"name": "/abs", "max_frame_bytes": 10}, "name"),
        ({"name": "a", "max_frame_bytes": 0}, "max_frame_bytes"),
        ({"name": "a", "max_frame_bytes": 10, "max_consumers": 0}, "max_consumers"),
        ({"name": "a", "max_frame_bytes": 10, "max_consumers": "4"}, "integer"),
        ({"name": "a", "max_frame_bytes": 10, "buffer_frames": 1000}, "buffer_frames"),
        ({"name": "a", "max_frame_bytes": 10, "colour": 1}, "unknown channel config keys"),
        ({"name": "a", "width": 10}, "missing"),
        ({"name": "a", "width": 10, "height": 10, "pixel_format": "rgb"}, "unknown pixel"),
        ({"name": "a", "max_frame_bytes": 10, "kind": "video"}, "kind"),
    ]
    for data, words in bad:
        with pytest.raises(ChannelConfigError, match=words):
            ChannelConfig.from_dict(data)
