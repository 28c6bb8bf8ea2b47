"""Capture loop, geometry, parameters and the synthetic source, without ROS."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from us_acquisition.capture import CaptureLoop, PublishedFrame
from us_acquisition.geometry import FrameGeometry, GeometryError
from us_acquisition.params import PARAMETERS, validate
from us_acquisition.sources.base import EndOfStream, SourceError
from us_acquisition.sources.synthetic import SyntheticSource

from us_frame_channel import ChannelConfig, ChannelConfigError, FrameReader


def _name() -> str:
    return f"test/acq-{uuid.uuid4().hex[:10]}"


def test_every_parameter_default_is_valid() -> None:
    for spec in PARAMETERS:
        assert validate(spec.name, spec.default) is None, spec.name


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("source", "firewire", "one of"),
        ("fps", 0.0, ">= 0.1"),
        ("fps", "30", "must be float"),
        ("width", 1.5, "must be int"),
        ("width", True, "must be int"),
        ("pixel_format", "rgb565", "one of"),
        ("roi", [1, 2, 3], "4 integers"),
        ("spacing_mm", [0.1], r"\[x, y\]"),
        ("spacing_mm", [0.1, -1.0], ">= 0"),
        ("preview_rate_hz", 100.0, "<= 30"),
    ],
)
def test_bad_parameter_values_are_rejected_with_a_reason(
    name: str, value: object, words: str
) -> None:
    reason = validate(name, value)
    assert reason is not None
    assert name in reason
    import re

    assert re.search(words, reason), reason


def test_geometry_spacing_per_depth_and_roi_checks() -> None:
    g = FrameGeometry.from_params(
        [10, 20, 300, 200], [0.1, 0.1], [30.0, 50.0], [0.05, 0.06, 0.08, 0.09], 50.0
    )
    assert g.spacing() == (0.08, 0.09)
    assert g.output_size(640, 480) == (300, 200)
    with pytest.raises(GeometryError, match="outside"):
        g.check_fits(200, 200)
    with pytest.raises(GeometryError, match="no spacing entry"):
        FrameGeometry.from_params([], [0.1, 0.1], [30.0], [0.05, 0.05], 40.0)
    with pytest.raises(GeometryError, match="2 values per depth"):
        FrameGeometry.from_params([], [0.1, 0.1], [30.0], [0.05], 30.0)
    with pytest.raises(GeometryError, match="size > 0"):
        FrameGeometry(roi=(0, 0, 0, 10))


def test_synthetic_source_paces_and_counts_missed_frames() -> None:
    src = SyntheticSource(64, 48, "uyvy", fps=200.0)
    info = src.open()
    assert (info.width, info.height, info.pixel_format.label) == (64, 48, "uyvy")
    f0 = src.read(1.0)
    assert f0 is not None and f0.image.shape == (48, 64, 2)
    time.sleep(0.1)  # a slow reader: ~20 frames were due meanwhile
    f1 = src.read(1.0)
    assert f1 is not None
    assert 10 <= src.stats.dropped <= 30
    assert f1.device_timestamp_ns - f0.device_timestamp_ns == pytest.approx(
        (src.stats.dropped + 1) * 5e6, abs=1
    )
    with pytest.raises(SourceError, match="even width"):
        SyntheticSource(63, 48, "uyvy")
    finite = SyntheticSource(32, 32, "mono8", realtime=False, count=2)
    finite.open()
    assert finite.read(0.1) is not None and finite.read(0.1) is not None
    with pytest.raises(EndOfStream):
        finite.read(0.1)


def test_capture_crops_roi_and_writes_geometry_into_headers() -> None:
    name = _name()
    got: list[PublishedFrame] = []
    geo = FrameGeometry(roi=(8, 4, 40, 30), spacing_mm=(0.12, 0.13))
    loop = CaptureLoop(
        SyntheticSource(64, 48, "mono8", fps=100.0),
        ChannelConfig(name, 1),
        geo,
        on_frame=got.append,
    )
    info = loop.open()
    assert info.width == 64
    with FrameReader(name) as reader:
        loop.start()
        f = reader.read(5.0)
        assert f is not None
        with f:
            assert f.array.shape == (30, 40)
            assert f.info.roi == (0, 0, 40, 30)
            assert (f.info.spacing_x_mm, f.info.spacing_y_mm) == (0.12, 0.13)
            src = got[0].frame.image if got and got[0].seq == f.seq else None
            if src is not None:
                assert np.array_equal(f.array, src[4:34, 8:48])
        assert reader.metadata()["source_roi"] == [8, 4, 40, 30]
        loop.set_geometry(FrameGeometry(roi=(8, 4, 40, 30), spacing_mm=(0.2, 0.2)))
        while True:  # frames after the change carry the new spacing
            f = reader.read(5.0)
            assert f is not None
            with f:
                if f.info.spacing_x_mm == 0.2:
                    break
        with pytest.raises(ValueError, match="configure"):
            loop.set_geometry(FrameGeometry(roi=(0, 0, 20, 20)))
        loop.pause()
        time.sleep(0.1)
        while reader.try_read() is not None:
            pass
        assert reader.read(0.2) is None  # paused: nothing is published
        snap = loop.snapshot()
        assert snap.state == "paused" and snap.produced >= 2 and snap.consumers == 1
    loop.close()
    assert loop.snapshot().state == "closed"


def test_roi_outside_the_source_frame_fails_at_open() -> None:
    loop = CaptureLoop(
        SyntheticSource(64, 48), ChannelConfig(_name(), 1), FrameGeometry(roi=(40, 0, 40, 10))
    )
    with pytest.raises(GeometryError, match="outside the 64x48"):
        loop.open()


def test_a_failing_callback_never_stops_capture() -> None:
    name = _name()

    def boom(_: PublishedFrame) -> None:
        raise RuntimeError("subscriber bug")

    loop = CaptureLoop(
        SyntheticSource(32, 32, fps=200.0), ChannelConfig(name, 1), FrameGeometry(), on_frame=boom
    )
    loop.open()
    with FrameReader(name) as reader:
        loop.start()
        for _ in range(5):
            f = reader.read(5.0)
            assert f is not None
            f.release()
    snap = loop.snapshot()
    loop.close()
    assert snap.callback_errors >= 5 and snap.state == "running"


def test_channel_config_errors_surface() -> None:
    with pytest.raises(ChannelConfigError):
        ChannelConfig("/bad name", 10)
