"""Tests of the replay sources (SequenceFileSource, VideoFileSource) on tiny files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from us_acquisition.sequence_io import TrackedSequence, write_sequence
from us_acquisition.sources import EndOfStream, FrameSource, SourceError, SourceFrame
from us_acquisition.sources.recording import (
    SequenceFileSource,
    VideoFileSource,
    default_frame_name,
)

from us_frame_channel import PixelFormat

FPS = 100.0


def _translation(x: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 3] = x
    return m


def _write(
    path: Path,
    n: int = 20,
    fps: float = FPS,
    dtype: str = "u1",
    channels: int = 1,
    image_valid: np.ndarray | None = None,
) -> TrackedSequence:
    shape: tuple[int, ...] = (n, 12, 16) if channels == 1 else (n, 12, 16, channels)
    frames = np.zeros(shape, dtype=dtype)
    for i in range(n):
        frames[i] = i + 1  # frame i is recognisable by its pixel value
    status = np.ones(n, dtype=bool)
    if n > 3:
        status[3] = False  # frame 3 has an invalid probe pose
    seq = TrackedSequence(
        frames=frames,
        timestamps_s=50.0 + np.arange(n) / fps,
        transforms={
            "ProbeToTracker": np.stack([_translation(float(i)) for i in range(n)]),
            "StylusTipToReference": np.tile(np.eye(4), (n, 1, 1)),
        },
        transform_status={"ProbeToTracker": status, "StylusTipToReference": np.ones(n, bool)},
        spacing_mm=(0.2, 0.3),
        image_valid=image_valid,
    )
    write_sequence(path, seq)
    return seq


def _drain(src: FrameSource, limit: int = 10_000) -> list[SourceFrame]:
    out: list[SourceFrame] = []
    for _ in range(limit):
        try:
            frame = src.read(1.0)
        except EndOfStream:
            return out
        assert frame is not None
        out.append(frame)
    raise AssertionError("no EndOfStream")


# ----------------------------------------------------------------------------------------
# SequenceFileSource


@pytest.mark.parametrize("suffix", [".seq.mha", ".igs.nrrd"])
def test_sequence_source_delivers_all_frames_in_order(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rec{suffix}"
    _write(path)
    src = SequenceFileSource(path, realtime=False)
    info = src.open()
    assert (info.width, info.height, info.pixel_format) == (16, 12, PixelFormat.MONO8)
    assert info.nominal_fps == pytest.approx(FPS)
    assert info.transform_names == ("ProbeToTracker", "StylusTipToReference")
    frames = _drain(src)
    src.close()
    assert len(frames) == 20 and src.stats.delivered == 20
    for i, f in enumerate(frames):
        assert f.image.shape == (12, 16) and f.image.dtype == np.uint8
        assert int(f.image[0, 0]) == i + 1
        assert f.pixel_format is PixelFormat.MONO8
        assert f.device_timestamp_ns == round((50.0 + i / FPS) * 1e9)
        assert f.spacing_mm == (0.2, 0.3)
        probe, stylus = f.transforms
        assert (probe.from_frame, probe.to_frame) == ("probe", "tracker")
        assert (stylus.from_frame, stylus.to_frame) == ("stylus_tip", "reference")
        assert probe.valid == (i != 3) and stylus.valid
        assert probe.matrix[0, 3] == float(i)
        assert probe.timestamp_ns == f.host_timestamp_ns
    host = np.array([f.host_timestamp_ns for f in frames])
    np.testing.assert_array_equal(np.diff(host), np.full(19, 10_000_000))
    assert abs(host[0] - time.time_ns()) < 5e9


def test_sequence_source_end_of_stream_repeats(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=2)
    with SequenceFileSource(tmp_path / "r.seq.mha", realtime=False) as src:
        assert src.read(0.1) is not None and src.read(0.1) is not None
        for _ in range(2):
            with pytest.raises(EndOfStream):
                src.read(0.1)


def test_sequence_source_transform_map(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=2)
    src = SequenceFileSource(
        tmp_path / "r.seq.mha", realtime=False, transform_map={"Probe": "us_probe"}
    )
    info = src.open()
    assert info.extra["frame_names"]["ProbeToTracker"] == ("us_probe", "tracker")
    frame = src.read(0.1)
    assert frame is not None
    assert [(t.from_frame, t.to_frame) for t in frame.transforms] == [
        ("us_probe", "tracker"),
        ("stylus_tip", "reference"),
    ]


def test_realtime_pacing(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=21)  # 20 intervals of 10 ms = 0.2 s
    with SequenceFileSource(tmp_path / "r.seq.mha") as src:
        t0 = time.monotonic()
        frames = _drain(src)
        elapsed = time.monotonic() - t0
    assert len(frames) == 21
    assert 0.17 < elapsed < 0.6, elapsed
    host = np.array([f.host_timestamp_ns for f in frames])
    assert np.all(np.diff(host) == 10_000_000)
    # delivery tracks the schedule: the last frame came ~0.2 s after the first
    assert (host[-1] - host[0]) / 1e9 == pytest.approx(0.2)


def test_realtime_speed_and_timeout(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=3, fps=2.0)  # frames 0.5 s apart
    with SequenceFileSource(tmp_path / "r.seq.mha", speed=2.0) as src:
        assert src.read(0.05) is not None  # first frame: immediately
        t0 = time.monotonic()
        assert src.read(0.05) is None  # next one is due in 0.25 s: timeout
        waited = time.monotonic() - t0
        assert 0.04 < waited < 0.2
        frame = src.read(1.0)
        assert frame is not None and int(frame.image[0, 0]) == 2
        assert time.monotonic() - t0 == pytest.approx(0.25, abs=0.1)


def test_close_wakes_a_waiting_reader(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=2, fps=0.1)  # second frame due after 10 s
    src = SequenceFileSource(tmp_path / "r.seq.mha")
    src.open()
    assert src.read(0.1) is not None
    result: list[object] = []

    def reader() -> None:
        try:
            result.append(src.read(30.0))
        except SourceError as exc:
            result.append(exc)

    thread = threading.Thread(target=reader)
    t0 = time.monotonic()
    thread.start()
    time.sleep(0.05)
    src.close()
    thread.join(2.0)
    assert not thread.is_alive() and time.monotonic() - t0 < 1.0
    assert len(result) == 1 and isinstance(result[0], SourceError)
    src.close()  # idempotent


def test_loop_keeps_timestamps_increasing(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=4)
    with SequenceFileSource(tmp_path / "r.seq.mha", realtime=False, loop=True) as src:
        frames = [src.read(0.1) for _ in range(10)]
    assert all(f is not None for f in frames)
    values = [int(f.image[0, 0]) for f in frames if f is not None]
    assert values == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
    host = np.array([f.host_timestamp_ns for f in frames if f is not None])
    device = np.array([f.device_timestamp_ns for f in frames if f is not None])
    # one period = 4 frames at 10 ms: the loop continues at the recorded rate
    np.testing.assert_array_equal(np.diff(host), np.full(9, 10_000_000))
    np.testing.assert_array_equal(np.diff(device), np.full(9, 10_000_000))


def test_realtime_loop(tmp_path: Path) -> None:
    _write(tmp_path / "r.seq.mha", n=5)
    with SequenceFileSource(tmp_path / "r.seq.mha", loop=True) as src:
        t0 = time.monotonic()
        frames = [src.read(1.0) for _ in range(15)]
        elapsed = time.monotonic() - t0
    assert all(f is not None for f in frames)
    assert 0.12 < elapsed < 0.6, elapsed  # 14 intervals of 10 ms


def test_invalid_images_are_skipped(tmp_path: Path) -> None:
    valid = np.array([True, False, True, True, False])
    _write(tmp_path / "r.seq.mha", n=5, image_valid=valid)
    with SequenceFileSource(tmp_path / "r.seq.mha", realtime=False) as src:
        frames = _drain(src)
    assert [int(f.image[0, 0]) for f in frames] == [1, 3, 4]


@pytest.mark.parametrize(
    ("dtype", "channels", "fmt"),
    [
        ("u2", 1, PixelFormat.MONO16),
        ("f4", 1, PixelFormat.FLOAT32),
        ("u1", 3, PixelFormat.BGR8),
        ("u1", 4, PixelFormat.BGRA8),
    ],
)
def test_pixel_formats(tmp_path: Path, dtype: str, channels: int, fmt: PixelFormat) -> None:
    seq = _write(tmp_path / "p.seq.mha", n=2, dtype=dtype, channels=channels)
    if channels > 1:  # distinct R, G, B(, A) in the file
        seq.frames[...] = np.arange(10, 10 + channels, dtype=dtype)
        write_sequence(tmp_path / "p.seq.mha", seq)
    src = SequenceFileSource(tmp_path / "p.seq.mha", realtime=False)
    assert src.open().pixel_format is fmt
    frame = src.read(0.1)
    assert frame is not None and frame.pixel_format is fmt
    assert frame.image.dtype == np.dtype(dtype)
    if channels > 1:
        expected = [12, 11, 10] + ([13] if channels == 4 else [])  # RGB(A) -> BGR(A)
        assert frame.image[5, 7].tolist() == expected


def test_unsupported_pixel_type(tmp_path: Path) -> None:
    _write(tmp_path / "p.seq.mha", n=2, dtype="i2")
    with pytest.raises(SourceError, match="int16"):
        SequenceFileSource(tmp_path / "p.seq.mha").open()


def test_open_errors_are_fast_and_clear(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="not found"):
        SequenceFileSource(tmp_path / "missing.seq.mha").open()
    bad = tmp_path / "bad.seq.mha"
    _write(bad, n=3)
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(SourceError, match="cannot replay sequence file"):
        SequenceFileSource(bad).open()
    assert time.monotonic() - t0 < 2.0
    src = SequenceFileSource(tmp_path / "missing.seq.mha")
    with pytest.raises(SourceError, match="not open"):
        src.read(0.1)
    with pytest.raises(ValueError, match="speed"):
        SequenceFileSource(bad, speed=0)


def test_default_frame_name() -> None:
    assert default_frame_name("Tracker") == "tracker"
    assert default_frame_name("StylusTip") == "stylus_tip"
    assert default_frame_name("USProbe") == "us_probe"
    assert default_frame_name("Marker1") == "marker1"


# ----------------------------------------------------------------------------------------
# VideoFileSource (PyAV)


VIDEO_FPS = 50
VIDEO_FRAMES = 12


def _write_video(path: Path, codec: str, pix_fmt: str, n: int = VIDEO_FRAMES) -> np.ndarray:
    av = pytest.importorskip("av")
    grey = np.zeros((n, 24, 32), dtype=np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 24, pix_fmt
        for i in range(n):
            grey[i] = 16 + 16 * i
            frame = av.VideoFrame.from_ndarray(
                np.repeat(grey[i][..., None], 3, axis=2), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return grey


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"), [("v.mkv", "ffv1", "gray"), ("v.avi", "mpeg4", "yuv420p")]
)
def test_video_source_frames(tmp_path: Path, name: str, codec: str, pix_fmt: str) -> None:
    grey = _write_video(tmp_path / name, codec, pix_fmt)
    src = VideoFileSource(tmp_path / name, realtime=False)
    info = src.open()
    assert (info.width, info.height, info.pixel_format) == (32, 24, PixelFormat.MONO8)
    assert info.nominal_fps == pytest.approx(VIDEO_FPS)
    frames = _drain(src)
    src.close()
    assert len(frames) == VIDEO_FRAMES and src.stats.delivered == VIDEO_FRAMES
    assert src.stats.dropped == 0
    for i, f in enumerate(frames):
        assert f.image.shape == (24, 32) and f.image.dtype == np.uint8
        assert f.pixel_format is PixelFormat.MONO8
        assert f.device_timestamp_ns == i * 20_000_000
        if codec == "ffv1":  # lossless
            np.testing.assert_array_equal(f.image, grey[i])
        else:
            assert abs(float(f.image.mean()) - float(grey[i].mean())) < 6


def test_video_source_bgr_loop_and_pacing(tmp_path: Path) -> None:
    _write_video(tmp_path / "v.mkv", "ffv1", "gray")
    with VideoFileSource(tmp_path / "v.mkv", realtime=False, loop=True, pixel_format="bgr8") as src:
        frames = [src.read(1.0) for _ in range(30)]
    assert all(f is not None and f.image.shape == (24, 32, 3) for f in frames)
    device = np.array([f.device_timestamp_ns for f in frames if f is not None])
    np.testing.assert_array_equal(np.diff(device), np.full(29, 20_000_000))
    host = np.array([f.host_timestamp_ns for f in frames if f is not None])
    assert np.all(np.diff(host) > 0)

    with VideoFileSource(tmp_path / "v.mkv") as src:  # real time: 11 intervals of 20 ms
        t0 = time.monotonic()
        frames2 = _drain(src)
        elapsed = time.monotonic() - t0
    assert len(frames2) == VIDEO_FRAMES
    assert 0.19 < elapsed < 0.7, elapsed


def test_video_source_errors(tmp_path: Path) -> None:
    pytest.importorskip("av")
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "missing.mp4").open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    with pytest.raises(SourceError, match=r"junk\.mp4"):
        VideoFileSource(junk).open()
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(SourceError, match="video replay delivers"):
        VideoFileSource(junk, pixel_format="float32")


def test_video_source_delivers_uyvy(tmp_path: Path) -> None:
    grey = _write_video(tmp_path / "v.mkv", "ffv1", "gray")
    with VideoFileSource(tmp_path / "v.mkv", realtime=False, pixel_format="uyvy") as src:
        frames = _drain(src)
    assert len(frames) == VIDEO_FRAMES
    for i, f in enumerate(frames):
        assert f.pixel_format is PixelFormat.UYVY and f.image.shape == (24, 32, 2)
        # byte 1 of every pixel is luma (video range 16-235), byte 0 neutral chroma
        expected_y = 16 + float(grey[i].mean()) * 219 / 255
        assert abs(float(f.image[..., 1].mean()) - expected_y) < 3
        assert abs(float(f.image[..., 0].mean()) - 128) < 3
