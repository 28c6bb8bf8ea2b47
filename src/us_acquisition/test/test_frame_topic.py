"""Frames as us_interfaces/Frame messages: round trip per pixel format, malformed messages,
and the newest-only publisher thread (messages only, no rclpy node)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from us_acquisition.frame_topic import (
    ENCODINGS,
    FrameTopicError,
    TopicFramePublisher,
    fill_frame_ref,
    frame_from_msg,
    frame_msg,
)

from us_frame_channel import PixelFormat
from us_interfaces.msg import Frame, FrameRef

SHAPES = {
    PixelFormat.MONO8: ((48, 64), np.uint8),
    PixelFormat.MONO16: ((48, 64), np.uint16),
    PixelFormat.UYVY: ((48, 64, 2), np.uint8),
    PixelFormat.BGR8: ((48, 64, 3), np.uint8),
    PixelFormat.BGRA8: ((48, 64, 4), np.uint8),
    PixelFormat.FLOAT32: ((48, 64), np.float32),
    PixelFormat.LABEL8: ((48, 64), np.uint8),
}


def _ref(fmt: PixelFormat, image: np.ndarray, **kw: object) -> FrameRef:
    args: dict[str, object] = dict(
        channel="us/frames",
        frame_id="us_image",
        seq=41,
        epoch=123456789,
        device_timestamp_ns=5,
        host_timestamp_ns=time.time_ns() - 20_000_000,
        width=image.shape[1],
        height=image.shape[0],
        pixel_format=fmt,
        spacing_mm=(0.08, 0.09),
        roi=(4, 2, 56, 40),
        payload_bytes=image.nbytes,
    )
    args.update(kw)
    return fill_frame_ref(FrameRef(), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", list(SHAPES))
def test_round_trip_keeps_pixels_and_header(fmt: PixelFormat) -> None:
    shape, dtype = SHAPES[fmt]
    rng = np.random.default_rng(int(fmt))
    image = (rng.random(shape) * 250).astype(dtype)
    expected = image.copy()
    ref = _ref(fmt, image)
    msg = frame_msg(ref, image)
    assert msg.image.encoding == ENCODINGS[fmt]
    image[:] = 0  # the message holds a copy
    array, info = frame_from_msg(msg)
    np.testing.assert_array_equal(array, expected)
    assert array.shape == shape and array.dtype == dtype
    assert (info.seq, info.producer_epoch, info.source_seq, info.source_epoch) == (
        41,
        123456789,
        41,
        123456789,
    )
    assert info.pixel_format is fmt
    assert info.roi == (4, 2, 56, 40)
    assert (info.spacing_x_mm, info.spacing_y_mm) == (0.08, 0.09)
    assert info.host_timestamp_ns == ref.host_timestamp_ns
    # the capture time mapped onto the local monotonic clock: ~20 ms ago
    age_ms = (time.monotonic_ns() - info.publish_monotonic_ns) / 1e6
    assert 19.0 <= age_ms < 2000.0


def test_mask_messages_name_their_source_frame() -> None:
    labels = np.zeros((48, 64), np.uint8)
    ref = _ref(PixelFormat.LABEL8, labels, seq=7, epoch=99, source_seq=41, source_epoch=123)
    _, info = frame_from_msg(frame_msg(ref, labels))
    assert (info.seq, info.producer_epoch, info.source_seq, info.source_epoch) == (7, 99, 41, 123)


@pytest.mark.parametrize(
    "breakage, reason",
    [
        (lambda m: setattr(m.image, "encoding", "rgb8"), "encoding"),
        (lambda m: setattr(m.ref, "pixel_format", "yuv420"), "unknown pixel format"),
        (lambda m: setattr(m.ref, "width", 65), "header"),
        (lambda m: setattr(m.image, "step", 10), "row needs"),
        (lambda m: m.image.data.pop(), "bytes for"),
        (lambda m: setattr(m.ref.roi, "width", 64), "roi"),
    ],
)
def test_malformed_messages_get_a_clear_error(breakage, reason: str) -> None:  # type: ignore[no-untyped-def]
    image = np.zeros((48, 64), np.uint8)
    msg = frame_msg(_ref(PixelFormat.MONO8, image), image)
    breakage(msg)
    with pytest.raises(FrameTopicError, match=reason):
        frame_from_msg(msg)


def test_publisher_sends_nothing_without_subscribers() -> None:
    sent: list[Frame] = []
    subs = [0]
    pub = TopicFramePublisher(sent.append, lambda: subs[0])
    try:
        image = np.zeros((48, 64), np.uint8)
        assert not pub.offer(_ref(PixelFormat.MONO8, image), image)
        subs[0] = 1
        assert pub.offer(_ref(PixelFormat.MONO8, image, seq=8), image)
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [m.ref.seq for m in sent] == [8]
        assert pub.published == 1
    finally:
        pub.close()


def test_a_slow_network_skips_frames_instead_of_holding_up_capture() -> None:
    gate = threading.Event()
    sent: list[int] = []

    def slow_publish(m: Frame) -> None:
        gate.wait(5)
        sent.append(int(m.ref.seq))

    pub = TopicFramePublisher(slow_publish, lambda: 1)
    try:
        image = np.zeros((48, 64), np.uint8)
        t0 = time.perf_counter()
        for seq in range(20):
            assert pub.offer(_ref(PixelFormat.MONO8, image, seq=seq), image)
        offer_s = time.perf_counter() - t0
        gate.set()
        deadline = time.monotonic() + 5
        while (not sent or sent[-1] != 19) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert offer_s < 1.0  # offer never waited for the blocked publish
        assert sent[-1] == 19  # the newest frame went out
        assert len(sent) <= 2  # the one in flight + the newest
        assert pub.superseded == 20 - len(sent)
    finally:
        pub.close()


def test_a_failing_publish_is_counted_and_the_thread_goes_on() -> None:
    calls = [0]

    def flaky(m: Frame) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("publisher's context is not valid")

    pub = TopicFramePublisher(flaky, lambda: 1)
    try:
        image = np.zeros((48, 64), np.uint8)
        for seq in range(2):
            pub.offer(_ref(PixelFormat.MONO8, image, seq=seq), image)
            deadline = time.monotonic() + 5
            while calls[0] <= seq and time.monotonic() < deadline:
                time.sleep(0.005)
        assert pub.errors == 1 and pub.published == 1
        assert "context is not valid" in pub.last_error
    finally:
        pub.close()
