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
