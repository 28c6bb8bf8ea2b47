"""GStreamerSource against real GStreamer pipelines (videotestsrc) and real failure paths.

Skipped as a whole only when the GStreamer Python bindings (PyGObject + gir1.2-gstreamer-1.0)
are not installed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from us_acquisition.sources import EndOfStream, SourceError
from us_acquisition.sources import gstreamer as gs
from us_acquisition.sources.gstreamer import GStreamerConfig, GStreamerSource

from us_frame_channel import PixelFormat

if not gs.gstreamer_available():
    pytest.skip(
        "GStreamer Python bindings not installed (pip PyGObject==3.50.2, "
        "apt gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base)",
        allow_module_level=True,
    )

Gst, _GstVideo, _GLib = gs.load_gstreamer()


def _open(**kwargs: Any) -> GStreamerSource:
    src = GStreamerSource(GStreamerConfig(**kwargs))
    src.open()
    return src


def _read(src: GStreamerSource, n: int) -> list[Any]:
    frames = []
    for _ in range(n):
        frame = src.read(2.0)
        assert frame is not None, "no frame within 2 s"
        frames.append(frame)
    return frames


@pytest.mark.parametrize(
    ("pixel_format", "shape", "dtype"),
    [
        ("uyvy", (48, 64, 2), np.uint8),
        ("bgra8", (48, 64, 4), np.uint8),
        ("mono8", (48, 64), np.uint8),
        ("bgr8", (48, 64, 3), np.uint8),
        ("mono16", (48, 64), np.uint16),
    ],
)
def test_test_kind_delivers_frames(pixel_format: str, shape: tuple[int, ...], dtype: Any) -> None:
    src = _open(kind="test", pixel_format=pixel_format, width=64, height=48, fps=100)
    try:
        info = src.info
        assert (info.width, info.height) == (64, 48)
        assert info.pixel_format is PixelFormat.parse(pixel_format)
        assert info.nominal_fps == pytest.approx(100.0)
        frames = _read(src, 12)
    finally:
        src.close()
    for f in frames:
        assert f.image.shape == shape
        assert f.image.dtype == dtype
        assert f.pixel_format is PixelFormat.parse(pixel_format)
    dev = np.array([f.device_timestamp_ns for f in frames], dtype=np.int64)
    host = np.array([f.host_timestamp_ns for f in frames], dtype=np.int64)
    assert np.all(np.diff(dev) > 0)
    assert np.all(np.diff(host) > 0)
    # 100 fps: successive delivered frames are a whole number of 10 ms periods apart
    steps = np.diff(dev) / 10_000_000
    assert np.allclose(steps, np.round(steps), atol=1e-3)
    assert src.stats.delivered == 12


def test_uyvy_byte_order_and_padded_mono8_stride() -> None:
    # black in limited-range UYVY is U=128, Y=16, V=128, Y=16
    src = _open(kind="test", pixel_format="uyvy", width=64, height=48, test_pattern="black")
    try:
        img = src.read(2.0)
        assert img is not None
        assert np.all(img.image[:, :, 0] == 128)  # chroma (U, V alternating)
        assert np.all(img.image[:, :, 1] == 16)  # luma
    finally:
        src.close()
    # GRAY8 rows are padded to 4 bytes by GStreamer: 322 px -> 324 B stride
    src = _open(kind="test", pixel_format="mono8", width=322, height=10, test_pattern="white")
    try:
        frame = src.read(2.0)
        assert frame is not None
        assert frame.image.shape == (10, 322)
        assert frame.image.strides == (324, 1)
        # every column filled (no padding garbage); videoconvert from the YUV test source
        # keeps limited-range luma (white = 235) in GStreamer 1.22, full range would be 255
        assert np.all(frame.image == frame.image[0, 0])
        assert int(frame.image[0, 0]) in (235, 255)
        assert not frame.image.flags.writeable
    finally:
        src.close()


def test_timestamps_are_monotonic_capture_times() -> None:
    src = _open(kind="test", pixel_format="mono8", width=32, height=32, fps=50)
    try:
        frames = []
        for _ in range(5):
            frame = src.read(2.0)
            assert frame is not None
            frames.append((frame, time.clock_gettime_ns(time.CLOCK_MONOTONIC), time.time_ns()))
    finally:
        src.close()
    for frame, mono_after, real_after in frames:
        # device clock = CLOCK_MONOTONIC at capture: a little before the read returned
        assert 0 <= mono_after - frame.device_timestamp_ns < 200_000_000
        # host time = the same instant in CLOCK_REALTIME
        assert 0 <= real_after - frame.host_timestamp_ns < 200_000_000
        age_dev = mono_after - frame.device_timestamp_ns
        age_host = real_after - frame.host_timestamp_ns
        assert abs(age_dev - age_host) < 5_000_000


def test_slow_consumer_drops_are_counted() -> None:
    # 200 fps into a 1-deep appsink that drops; reading every ~20 ms must lose frames
    src = _open(kind="test", pixel_format="mono8", width=64, height=48, fps=200, max_buffers=1)
    try:
        first = src.read(2.0)
        assert first is not None
        last = first
        t_end = time.monotonic() + 0.8
        while time.monotonic() < t_end:
            time.sleep(0.02)
            frame = src.read(2.0)
            assert frame is not None
            last = frame
    finally:
        src.close()
    produced = (last.device_timestamp_ns - first.device_timestamp_ns) // 5_000_000 + 1
    assert src.stats.dropped > 0
    assert src.stats.delivered + src.stats.dropped == produced
    assert src.stats.dropped > src.stats.delivered  # 200 fps vs ~50 reads / s


def test_fast_consumer_sees_no_drops() -> None:
    src = _open(kind="test", pixel_format="mono8", width=64, height=48, fps=60, max_buffers=4)
    try:
        _read(src, 20)
        assert src.stats.dropped == 0
    finally:
        src.close()


def test_caps_change_delivers_new_geometry() -> None:
    launch = (
        "videotestsrc is-live=true ! capsfilter name=cf "
        "caps=video/x-raw,width=64,height=48,framerate=100/1 ! videoconvert ! "
        "video/x-raw,format=UYVY ! appsink name=sink sync=false"
    )
    src = _open(kind="pipeline", pipeline=launch)
    try:
        assert src.info.width == 64
        _read(src, 3)
        assert src._pipeline is not None
        caps = Gst.Caps.from_string("video/x-raw,width=128,height=96,framerate=100/1")
        src._pipeline.get_by_name("cf").set_property("caps", caps)
        shapes = {f.image.shape for f in _read(src, 10)}
        assert (96, 128, 2) in shapes
        assert src.caps_changes == 1
        assert (src.info.width, src.info.height) == (128, 96)
        assert src.stats.dropped == 0
    finally:
        src.close()


def test_read_releases_gil_and_times_out() -> None:
    src = _open(kind="test", pixel_format="mono8", width=16, height=16, fps=1)
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1

    try:
        assert src.read(2.0) is not None  # the frame open() already pulled
        thread = threading.Thread(target=spin)
        thread.start()
        time.sleep(0.02)
        before = counter[0]
        t0 = time.monotonic()
        frame = src.read(0.3)  # next frame is ~1 s away
        waited = time.monotonic() - t0
        during = counter[0] - before
        stop.set()
        thread.join()
    finally:
        stop.set()
        src.close()
    assert frame is None
    assert 0.25 < waited < 0.8
    assert during > 10_000  # the other thread ran while read() waited


def test_close_from_another_thread_unblocks_read() -> None:
    src = _open(kind="test", pixel_format="mono8", width=16, height=16, fps=1)
    assert src.read(2.0) is not None
    result: list[Any] = []

    def reader() -> None:
        result.append(src.read(10.0))

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    src.close()
    thread.join(timeout=3.0)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 3.0
    assert result == [None]


def test_finite_pipeline_ends_with_end_of_stream() -> None:
    launch = "videotestsrc num-buffers=3 ! video/x-raw,format=GRAY8,width=32,height=8 ! appsink"
    src = _open(kind="pipeline", pipeline=launch)
    try:
        _read(src, 3)
        with pytest.raises(EndOfStream):
            src.read(2.0)
    finally:
        src.close()


def test_close_is_idempotent_and_read_after_close_raises() -> None:
    src = GStreamerSource(GStreamerConfig(kind="test"))
    src.close()  # never opened
    with src:
        assert src.is_open
        assert src.read(2.0) is not None
        info = src.open()  # opening twice keeps the pipeline
        assert info.width == 640 and info.height == 480
    assert not src.is_open
    src.close()
    src.close()
    with pytest.raises(SourceError, match="not open"):
        src.read(0.1)


def _assert_fails_fast(config: GStreamerConfig, match: str) -> SourceError:
    src = GStreamerSource(config)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=match) as info:
        src.open()
    assert time.monotonic() - t0 < 2.0
    assert not src.is_open
    src.close()
    return info.value


def test_decklink_without_card_or_driver_fails_clearly() -> None:
    err = _assert_fails_fast(GStreamerConfig(kind="decklink", device=0), "no DeckLink device 0")
    assert "Desktop Video" in str(err)


def test_decklink_with_driver_but_no_card_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # pretend libDeckLinkAPI.so is present: the real decklinkvideosrc then fails to acquire
    # the input and the state change fails without a bus error
    monkeypatch.setattr(gs, "_decklink_driver_present", lambda: True)
    err = _assert_fails_fast(
        GStreamerConfig(kind="decklink", device="1", connection="sdi", mode="1080p60"),
        "no DeckLink device 1: is Blackmagic Desktop Video installed and a card present",
    )
    assert "decklinkvideosrc" in str(err)


def test_decklink_bad_settings_are_rejected() -> None:
    _assert_fails_fast(GStreamerConfig(kind="decklink", mode="1080p61"), "mode='1080p61'")
    _assert_fails_fast(GStreamerConfig(kind="decklink", connection="usb"), "connection='usb'")
    _assert_fails_fast(GStreamerConfig(kind="decklink", device="card0"), "device number")


def test_missing_plugin_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find = Gst.ElementFactory.find

    def find(name: str) -> Any:
        return None if name == "decklinkvideosrc" else real_find(name)

    monkeypatch.setattr(Gst.ElementFactory, "find", staticmethod(find))
    _assert_fails_fast(GStreamerConfig(kind="decklink"), "apt-get install gstreamer1.0-plugins-bad")


def test_v4l2_missing_device_fails_clearly() -> None:
    _assert_fails_fast(GStreamerConfig(kind="v4l2", device="/dev/video97"), "/dev/video97")


def test_v4l2_non_video_device_fails_clearly() -> None:
    _assert_fails_fast(GStreamerConfig(kind="v4l2", device="/dev/null"), "v4l2 device /dev/null")


def test_bad_user_pipelines_fail_clearly() -> None:
    _assert_fails_fast(
        GStreamerConfig(kind="pipeline", pipeline="videotestsrc ! nosuchelement ! appsink"),
        "invalid GStreamer pipeline",
    )
    _assert_fails_fast(
        GStreamerConfig(kind="pipeline", pipeline="videotestsrc ! fakesink"),
        "invalid GStreamer pipeline",
    )
    two = "videotestsrc ! tee name=t ! queue ! appsink t. ! queue ! appsink"
    _assert_fails_fast(GStreamerConfig(kind="pipeline", pipeline=two), "no appsink")
    _assert_fails_fast(
        GStreamerConfig(
            kind="pipeline", pipeline="videotestsrc ! video/x-raw,format=I420 ! appsink"
        ),
        "delivers I420",
    )
    _assert_fails_fast(GStreamerConfig(kind="pipeline"), "needs a launch string")


def test_unsupported_settings_fail_clearly() -> None:
    _assert_fails_fast(GStreamerConfig(kind="test", pixel_format="v210"), "not supported")
    _assert_fails_fast(GStreamerConfig(kind="test", pixel_format="float32"), "cannot be captured")
    _assert_fails_fast(GStreamerConfig(kind="usb"), "unknown GStreamer source kind")
    _assert_fails_fast(GStreamerConfig(kind="test", fps=-1), "fps")


def test_config_from_dict() -> None:
    cfg = GStreamerConfig.from_dict({"kind": "v4l2", "device": "/dev/video2", "fps": 30.0})
    assert cfg.kind == "v4l2" and cfg.device == "/dev/video2"
    with pytest.raises(ValueError, match="frame_rate"):
        GStreamerConfig.from_dict({"frame_rate": 30})


def test_fps_fractions() -> None:
    assert gs._fps_fraction(30) == "30/1"
    assert gs._fps_fraction(59.94) == "60000/1001"
    assert gs._fps_fraction(29.97) == "30000/1001"
    assert gs._fps_fraction(12.5) == "12500/1000"


def test_source_side_pipeline_gets_conversion_and_appsink() -> None:
    launch = "videotestsrc is-live=true pattern=white ! video/x-raw,width=32,height=16"
    src = _open(kind="pipeline", pipeline=launch, pixel_format="mono8")
    try:
        assert src.launch_string.endswith("format=GRAY8 ! appsink name=sink")
        frames = _read(src, 3)
        assert frames[0].image.shape == (16, 32)
        assert src.info.pixel_format is PixelFormat.MONO8
    finally:
        src.close()


def test_from_node_params() -> None:
    params = {
        "source": "gst_test",
        "device": "",
        "decklink_connection": "auto",
        "video_mode": "auto",
        "pixel_format": "bgra8",
        "width": 48,
        "height": 32,
        "fps": 30.0,
        "gst_pipeline": "",
    }
    src = GStreamerSource.from_params(params)
    assert src.config.kind == "test"
    with src:
        frame = src.read(2.0)
        assert frame is not None
        assert frame.image.shape == (32, 48, 4)
    deck = GStreamerSource.from_params(
        {**params, "source": "decklink", "device": "1", "decklink_connection": "sdi"}
    )
    cfg = deck.config
    assert (cfg.kind, cfg.device, cfg.connection) == ("decklink", "1", "sdi")
    assert deck.config.width == 0  # decklink size comes from the signal
    with pytest.raises(SourceError, match="not a GStreamer source"):
        GStreamerSource.from_params({**params, "source": "sim"})
