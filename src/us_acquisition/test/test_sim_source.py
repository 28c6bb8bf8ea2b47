"""The simulator as an acquisition source: frames, ground truth, tracker samples, offset."""

from __future__ import annotations

import numpy as np
import pytest
from us_acquisition.sources.base import EndOfStream, SourceError
from us_acquisition.sources.sim_source import SimulatorSource

from us_frame_channel import PixelFormat


def _source(**kw: object) -> SimulatorSource:
    args: dict[str, object] = dict(
        seed=3,
        width=160,
        height=120,
        fps=30.0,
        realtime=False,
        phantom_spacing_mm=0.5,
        sweep_duration_s=2.0,
    )
    args.update(kw)
    return SimulatorSource(**args)  # type: ignore[arg-type]


def test_frames_carry_labels_spacing_and_tracker_samples() -> None:
    src = _source(tracker_rate_hz=120.0)
    info = src.open()
    assert info.transform_names == ("ProbeToTracker",)
    assert 5.0 <= info.extra["thyroid_volume_ml"] <= 30.0
    frames = [src.read(1.0) for _ in range(10)]
    n_tracker = 0
    for f in frames:
        assert f is not None
        assert f.image.shape == (120, 160) and f.image.dtype == np.uint8
        assert f.labels is not None and f.labels.shape == f.image.shape
        assert f.spacing_mm is not None and min(f.spacing_mm) > 0
        for t in f.transforms:
            assert (t.from_frame, t.to_frame, t.valid) == ("probe", "tracker", True)
            assert t.name == "ProbeToTracker"
            assert t.timestamp_ns <= f.host_timestamp_ns
        n_tracker += len(f.transforms)
    # 120 Hz tracker vs 30 fps video: 4 samples per frame (+1 at t=0)
    assert n_tracker == 9 * 4 + 1
    stamps = np.array([f.host_timestamp_ns for f in frames if f is not None])
    assert np.all(np.diff(stamps) == pytest.approx(1e9 / 30, abs=1))
    assert np.any(frames[-1].labels == 1)  # type: ignore[union-attr]


def test_time_offset_shows_the_pose_of_a_later_time() -> None:
    a, b = _source(time_offset_ms=0.0), _source(time_offset_ms=100.0)
    a.open()
    b.open()
    frames_a = [a.read(1.0) for _ in range(6)]
    frame_b0 = b.read(1.0)
    assert frame_b0 is not None
    # b's frame 0 (t=0, offset 100 ms) shows the pose a shows at t=100 ms: frame 3
    fa3 = frames_a[3]
    assert fa3 is not None
    assert np.array_equal(frame_b0.image, fa3.image)
    assert not np.array_equal(frame_b0.image, frames_a[0].image)  # type: ignore[union-attr]


def test_pixel_formats_and_end_of_sweep() -> None:
    src = _source(pixel_format="uyvy", loop=False, sweep_duration_s=0.2)
    src.open()
    f = src.read(1.0)
    assert f is not None and f.pixel_format is PixelFormat.UYVY and f.image.shape == (120, 160, 2)
    with pytest.raises(EndOfStream):
        for _ in range(100):
            src.read(1.0)
    with pytest.raises(SourceError, match="sim_sweep"):
        SimulatorSource(sweep="circular")
    with pytest.raises(SourceError, match="mono8, uyvy"):
        SimulatorSource(pixel_format="mono16")


def test_screen_mode_reports_its_roi() -> None:
    src = _source(width=1920, height=1080)
    info = src.open()
    x, y, w, h = info.extra["roi"]
    assert 0 < x and 0 < y and x + w <= 1920 and y + h <= 1080
    f = src.read(1.0)
    assert f is not None and f.image.shape == (1080, 1920)


class _Clock:
    """A monotonic clock the test moves; ``sleep`` advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += max(0.0, s)


@pytest.mark.parametrize(("queue", "lost"), [(2, 2), (1, 3), (4, 0)])
def test_a_late_reader_loses_frames_only_past_the_grabber_queue(
    monkeypatch: pytest.MonkeyPatch, queue: int, lost: int
) -> None:
    """Frames captured while the reader was busy wait in a queue of ``queue_frames``,
    keep their capture stamps, and only the ones beyond it are lost (and counted)."""
    import us_acquisition.sources.sim_source as mod

    clock = _Clock()
    monkeypatch.setattr(mod.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(mod.time, "sleep", clock.sleep)
    fps = 8.0  # period 0.125 s: exact in binary
    src = _source(fps=fps, realtime=True, queue_frames=queue)
    src.open()
    first = src.read(1.0)
    assert first is not None and first.device_timestamp_ns == 0
    # the reader is busy for 4 periods and 0.01 s: frames 1..4 were captured meanwhile
    clock.now += 4 / fps + 0.01
    stamps = []
    for _ in range(5 - lost):
        f = src.read(1.0)
        assert f is not None
        stamps.append(f.device_timestamp_ns)
    assert src.stats.dropped == lost
    # the oldest waiting frames are the lost ones; the rest arrive with their capture stamps
    assert stamps == [round(k / fps * 1e9) for k in range(1 + lost, 6)]
    assert clock.now == pytest.approx(1000.0 + 5 / fps)  # caught up: frame 5 on time


def test_queue_frames_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="queue_frames"):
        _source(queue_frames=0)
