"""Producer and consumers in separate processes: what the graph does in production."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest
from us_frame_channel.testing import pattern_frame

from us_frame_channel import ChannelConfig, FrameReader, FrameWriter, PixelFormat


@pytest.mark.parametrize("fmt", [p.label for p in PixelFormat])
def test_every_pixel_format_round_trips_across_processes(
    fmt: str, channel_name: str, spawn: Any
) -> None:
    w, h, n = 64, 24, 6
    prod = spawn(
        "produce",
        "--name",
        channel_name,
        "--size",
        f"{w}x{h}",
        "--format",
        fmt,
        "--fps",
        "200",
        "--count",
        str(n),
        "--wait-consumers",
        "1",
        "--linger",
        "5",
    )
    with FrameReader(channel_name, wait_s=20.0) as r:
        got = []
        while len(got) < n:
            f = r.read(10.0)
            assert f is not None, "producer stopped sending"
            with f:
                want = pattern_frame(PixelFormat.parse(fmt), w, h, f.seq % 8)
                assert f.array.dtype == want.dtype and f.array.shape == want.shape
                assert np.array_equal(f.array, want)
                assert f.info.spacing_x_mm == pytest.approx(0.1)
                assert f.info.device_timestamp_ns == f.seq * 1000
                got.append(f.seq)
        assert got == list(range(n))
        assert r.stats.dropped == 0
        assert r.metadata()["device"] == "us-channel produce"
    prod.kill()


def test_sigkilled_consumer_neither_stalls_producer_nor_keeps_its_place(
    channel_name: str, spawn: Any
) -> None:
    cfg = ChannelConfig.for_frames(channel_name, 320, 240, "mono8", max_consumers=1)
    frame = np.zeros((240, 320), np.uint8)
    with FrameWriter(cfg) as w:
        # the consumer holds every frame 50 ms: it is mid-read when killed
        victim = spawn(
            "consume",
            "--name",
            channel_name,
            "--count",
            "100000",
            "--hold-s",
            "0.05",
            "--timeout",
            "60",
        )
        victim.wait_event("ready")
        deadline = time.monotonic() + 10
        while w.consumer_count() < 1:
            assert time.monotonic() < deadline
            w.publish(frame, "mono8")
        for _ in range(20):
            w.publish(frame, "mono8")
        victim.kill()  # SIGKILL while it holds a borrowed frame
        # the producer goes on without waiting; the dead consumer's place is freed
        deadline = time.monotonic() + 5.0
        worst = 0.0
        while w.consumer_count() > 0:
            assert time.monotonic() < deadline, "dead consumer never cleaned up"
            t0 = time.perf_counter()
            w.publish(frame, "mono8")
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.01)
        assert worst < 0.5  # never blocked on the dead consumer (a stall would be seconds)
        with FrameReader(channel_name) as r:  # the single place can be taken again
            w.publish(frame, "mono8")
            assert r.read(2.0) is not None


def test_consumers_resume_when_the_producer_restarts(channel_name: str, spawn: Any) -> None:
    args = (
        "produce",
        "--name",
        channel_name,
        "--size",
        "64x48",
        "--format",
        "mono8",
        "--fps",
        "100",
    )
    first = spawn(*args)
    first.wait_event("ready")
    with FrameReader(channel_name, wait_s=10.0) as r:
        f = r.read(5.0)
        assert f is not None
        epoch1 = f.info.producer_epoch
        f.release()
        first.kill()  # SIGKILL: no clean shutdown
        while r.read(0.3) is not None:  # drain what it sent
            pass
        second = spawn(*args)
        started = second.wait_event("ready")
        t_ready = time.monotonic()
        f = r.read(5.0)
        assert f is not None, "consumer did not resume"
        assert time.monotonic() - t_ready < 1.0
        assert f.info.producer_epoch == started["epoch"] != epoch1
        f.release()
        assert r.stats.producer_restarts == 1


def _iox_files() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("iox2_")}


def test_sigkilled_producer_leaves_nothing_for_the_next_start(
    channel_name: str, spawn: Any
) -> None:
    before = _iox_files()
    prod = spawn("produce", "--name", channel_name, "--size", "64x48", "--fps", "100")
    prod.wait_event("ready")
    assert _iox_files() - before, "the producer should have created shared memory"
    prod.kill()
    # the next producer of the same channel starts cleanly over the stale state ...
    with FrameWriter(ChannelConfig.for_frames(channel_name, 64, 48, "mono8")) as w:
        with FrameReader(channel_name) as r:
            w.publish(np.ones((48, 64), np.uint8), "mono8")
            assert r.read(2.0) is not None
    # ... and once everyone has left, no shared memory of the crashed run remains
    leftover = _iox_files() - before
    assert not leftover, leftover
