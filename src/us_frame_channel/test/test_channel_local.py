"""Channel behaviour with producer and consumer in one process (same code path as IPC)."""

from __future__ import annotations

import ctypes
import time

import iceoryx2 as iox2
import numpy as np
import pytest
from us_frame_channel.layout import FrameHeader

from us_frame_channel import (
    BorrowLimitError,
    ChannelConfig,
    ChannelFullError,
    ChannelNotFoundError,
    FrameReader,
    FrameTooLargeError,
    FrameWriter,
    IncompatibleChannelError,
    LayoutVersionError,
    _iox,
)


def _cfg(name: str, **kw: int) -> ChannelConfig:
    return ChannelConfig.for_frames(name, 32, 16, "mono8", **kw)


def _frame(v: int) -> np.ndarray:
    return np.full((16, 32), v % 256, np.uint8)


def test_view_is_read_only_and_zero_copy(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)) as w, FrameReader(channel_name) as r:
        w.publish(_frame(7), "mono8")
        with r.read(2.0) as f:
            a = f.array
            assert not a.flags.writeable and not a.flags.owndata
            with pytest.raises(ValueError, match="read-only"):
                a[0, 0] = 1
            with pytest.raises(ValueError):
                a.setflags(write=True)
            # the view points into the sample's shared memory, not a copy
            addr = a.__array_interface__["data"][0]
            assert addr == f._sample.payload_ptr
            assert addr % 4096 == 0
        with pytest.raises(Exception, match="released"):
            _ = f.array


def test_every_mode_counts_gaps_as_drops(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name, buffer_frames=3)) as w, FrameReader(channel_name) as r:
        w.publish(_frame(0), "mono8")
        with r.read(2.0) as f:
            assert f.seq == 0
        for i in range(1, 11):  # 10 frames while the consumer does not read
            w.publish(_frame(i), "mono8")
        seqs = []
        while (f2 := r.try_read()) is not None:
            seqs.append(f2.seq)
            f2.release()
        assert seqs == [8, 9, 10]  # in order, oldest overwritten
        assert r.stats.dropped == 7
        assert r.stats.received == 4


def test_latest_mode_skips_to_newest(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)) as w, FrameReader(channel_name, mode="latest") as r:
        for i in range(3):
            w.publish(_frame(i), "mono8")
        with r.read(2.0) as f:
            assert f.seq == 2 and f.array[0, 0] == 2
        assert r.stats.skipped == 2 and r.stats.dropped == 0
        assert r.read(0.05) is None


def test_header_fields_round_trip(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)) as w, FrameReader(channel_name) as r:
        w.set_metadata({"device": "sim", "imaging_depth_mm": 40.0, "probe_model": "L12-5"})
        t0 = time.time_ns()
        seq = w.publish(
            _frame(3),
            "mono8",
            device_timestamp_ns=123456789,
            spacing_mm=(0.11, 0.12),
            roi=(2, 3, 20, 10),
            source_seq=41,
            source_epoch=99,
        )
        with r.read(2.0) as f:
            i = f.info
        assert (i.seq, i.source_seq, i.source_epoch) == (seq, 41, 99)
        assert i.producer_epoch == w.epoch != 0
        assert i.device_timestamp_ns == 123456789
        assert t0 <= i.host_timestamp_ns <= time.time_ns()
        assert (i.width, i.height, i.stride_bytes, i.payload_bytes) == (32, 16, 32, 512)
        assert (i.spacing_x_mm, i.spacing_y_mm) == (0.11, 0.12)
        assert i.roi == (2, 3, 20, 10)
        assert i.meta_revision == 1
        assert r.metadata() == {"device": "sim", "imaging_depth_mm": 40.0, "probe_model": "L12-5"}


def test_oversize_frame_is_refused_clearly(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)) as w:
        with pytest.raises(FrameTooLargeError, match="raise max_frame_bytes"):
            w.publish(np.zeros((17, 32), np.uint8), "mono8")
        assert w.seq == 0  # nothing was published


def test_consumer_limit_is_a_clear_error(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name, max_consumers=2)) as w:
        r1, r2 = FrameReader(channel_name), FrameReader(channel_name)
        with pytest.raises(ChannelFullError, match="allows 2 consumers"):
            FrameReader(channel_name)
        r1.close()
        with FrameReader(channel_name) as r3:  # a freed place can be taken
            w.publish(_frame(1), "mono8")
            assert r3.read(2.0) is not None
        r2.close()


def test_borrow_limit_is_a_clear_error(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name, max_borrowed=2)) as w, FrameReader(channel_name) as r:
        for i in range(3):
            w.publish(_frame(i), "mono8")
        held = [r.read(1.0), r.read(1.0)]
        with pytest.raises(BorrowLimitError, match="release frames"):
            r.read(1.0)
        for f in held:
            assert f is not None
            f.release()
        assert r.read(1.0) is not None


def test_missing_channel_times_out_with_a_reason(channel_name: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(ChannelNotFoundError, match="no producer"):
        FrameReader(channel_name, wait_s=0.3)
    assert time.monotonic() - t0 < 3.0


def test_consumer_expecting_another_size_refuses(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)):
        with pytest.raises(IncompatibleChannelError, match="max_frame_bytes=512"):
            FrameReader(channel_name, expect_max_frame_bytes=1024)


def test_producer_joining_with_another_size_refuses(channel_name: str) -> None:
    w = FrameWriter(_cfg(channel_name))
    r = FrameReader(channel_name)  # keeps the channel alive without its producer
    w.close()
    with pytest.raises(IncompatibleChannelError, match="max_frame_bytes=512"):
        FrameWriter(ChannelConfig.for_frames(channel_name, 64, 16, "mono8"))
    with FrameWriter(_cfg(channel_name)) as w2:  # the same size joins and streams
        w2.publish(_frame(5), "mono8")
        with r.read(2.0) as f:
            assert f.array[0, 0] == 5
    assert r.stats.producer_restarts == 0  # first frame seen came from w2
    r.close()


def test_second_producer_is_refused(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)):
        with pytest.raises(ChannelFullError, match="already has a producer"):
            FrameWriter(_cfg(channel_name))


def test_other_layout_version_is_refused(channel_name: str) -> None:
    # A future producer: same service, attribute layout_version=2.
    node = _iox.create_node("future")
    svc = (
        _iox.frame_service_builder(node, channel_name)
        .max_publishers(1)
        .create_with_attributes(_iox.attribute_specifier(2, 512, "frames"))
    )
    with pytest.raises(LayoutVersionError, match="layout version 2"):
        FrameReader(channel_name, wait_s=1.0)
    with pytest.raises(LayoutVersionError, match="layout version 2"):
        FrameWriter(_cfg(channel_name))
    del svc, node


def test_frame_with_foreign_header_is_refused(channel_name: str) -> None:
    with FrameWriter(_cfg(channel_name)) as w, FrameReader(channel_name) as r:
        slot = w.loan(32, 16, "mono8")
        slot.array[:] = 1
        # bypass send(): publish a header that claims layout version 9
        h: FrameHeader = slot._sample.user_header().contents
        ctypes.memset(ctypes.addressof(h), 0, ctypes.sizeof(h))
        h.magic, h.layout_version, h.pixel_format = 0x52465355, 9, 1
        slot._sample.assume_init().send()
        w._notifier.notify_with_custom_event_id(iox2.EventId.new(0))
        with pytest.raises(LayoutVersionError, match="version 9"):
            r.read(1.0)
        w.publish(_frame(2), "mono8")  # the reader goes on with good frames
        with r.read(1.0) as f:
            assert f.array[0, 0] == 2


def test_latest_mode_skips_with_one_frame_held(channel_name: str) -> None:
    """Skipping to the newest frame must not need extra borrows: the caller holds one."""
    with FrameWriter(_cfg(channel_name, max_borrowed=2)) as w:
        with FrameReader(channel_name, mode="latest") as r:
            w.publish(_frame(0), "mono8")
            held = r.read(2.0)  # e.g. kept for temporal smoothing
            assert held is not None
            for i in range(1, 4):
                w.publish(_frame(i), "mono8")
            with r.read(2.0) as f:
                assert f.seq == 3
            assert r.stats.skipped == 2
            held.release()
