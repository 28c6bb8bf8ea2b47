"""LiveSegmenter on real shared-memory channels: mask <-> frame linkage, skipping instead of
queueing, temporal smoothing, format conversion (no ROS)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from us_frame_channel.imageops import grey_roi
from us_frame_channel.layout import FrameInfo
from us_segmentation.inference import SegmentationResult, Segmenter
from us_segmentation.live import (
    LiveSegmenter,
    MaskResult,
    TemporalSmoother,
    TopicInput,
    summarise,
)

from us_frame_channel import ChannelConfig, FrameReader, FrameWriter, PixelFormat

W, H = 96, 64


def _frame(seq: int) -> np.ndarray:
    """A frame whose content depends on its seq: a bright disc that moves with seq."""
    yy, xx = np.mgrid[0:H, 0:W]
    cx = 20 + (seq * 7) % 56
    img = np.full((H, W), 40, np.uint8)
    img[(xx - cx) ** 2 + (yy - 32) ** 2 < 15**2] = 200
    return img


def _channels() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"test/segf-{uid}", f"test/segm-{uid}"


def _wait(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_mask_header_links_to_the_source_frame(tiny_model_dir: Path) -> None:
    fin, fmask = _channels()
    seg = Segmenter(tiny_model_dir, device="cpu", threads=1)
    results: list[MaskResult] = []
    writer = FrameWriter(ChannelConfig.for_frames(fin, W, H, "mono8", buffer_frames=4))
    live = LiveSegmenter(
        seg,
        fin,
        ChannelConfig.for_frames(fmask, W, H, "label8", buffer_frames=64),
        on_result=results.append,
    )
    sent: dict[int, tuple[int, np.ndarray]] = {}
    try:
        live.start()
        masks = FrameReader(fmask, mode="every", wait_s=5.0)
        assert _wait(lambda: live.stats.state in ("waiting", "running", "idle"), 5)
        # one frame at a time, each distinct: every mask must be the segmentation of the
        # frame its header names
        for i in range(6):
            ts = 1_700_000_000_000_000_000 + i * 33_000_000
            seq = writer.publish(
                _frame(i),
                "mono8",
                host_timestamp_ns=ts,
                spacing_mm=(0.2, 0.3),
                device_timestamp_ns=i + 1,
            )
            sent[seq] = (ts, _frame(i))
            assert _wait(lambda n=i + 1: len(results) >= n, 10), live.stats.last_error
        got = 0
        while (m := masks.read(1.0)) is not None:
            with m:
                info = m.info
                assert info.pixel_format is PixelFormat.LABEL8
                assert info.source_epoch == writer.epoch
                ts, img = sent[info.source_seq]
                assert info.host_timestamp_ns == ts
                assert info.device_timestamp_ns == info.source_seq + 1
                assert (info.spacing_x_mm, info.spacing_y_mm) == (0.2, 0.3)
                np.testing.assert_array_equal(m.array, seg.segment(img).labels)
                got += 1
            if got == len(sent):
                break
        assert got == len(sent)
        assert [r.source_seq for r in results] == sorted(sent)
        assert live.stats.skipped == 0
        r = results[-1]
        assert r.class_names == ("background", "thyroid")
        assert sum(r.class_areas_mm2) == pytest.approx(W * H * 0.2 * 0.3)
        masks.close()
    finally:
        live.close()
        writer.close()


class SlowSegmenter:
    """A model that takes 60 ms per frame (slower than the 100 fps producer)."""

    def __init__(self, inner: Segmenter) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def classes(self) -> tuple[str, ...]:
        return self.inner.classes

    def segment(
        self,
        frame: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        smoother: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> SegmentationResult:
        self.calls += 1
        time.sleep(0.06)
        return self.inner.segment(frame, spacing_mm, smoother)


def test_slow_model_skips_frames_instead_of_queueing(tiny_model_dir: Path) -> None:
    fin, fmask = _channels()
    slow = SlowSegmenter(Segmenter(tiny_model_dir, device="cpu", threads=1))
    results: list[MaskResult] = []
    writer = FrameWriter(ChannelConfig.for_frames(fin, W, H, "mono8", buffer_frames=8))
    live = LiveSegmenter(
        slow, fin, ChannelConfig.for_frames(fmask, W, H, "label8"), on_result=results.append
    )
    stop = threading.Event()
    published: list[int] = []

    def produce() -> None:
        i = 0
        while not stop.is_set():
            published.append(writer.publish(_frame(i), "mono8"))
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=produce)
    try:
        live.start()
        t.start()
        assert _wait(lambda: len(results) >= 12, 20), live.stats.last_error
    finally:
        stop.set()
        t.join()
        live.close()
        writer.close()
    st = live.stats
    assert st.skipped > 0  # frames superseded while the model was busy, counted
    seqs = [r.source_seq for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # never more than ~one inference behind: no backlog builds up
    assert all(r.latency_ms < 500 for r in results[2:]), [r.latency_ms for r in results]
    # every frame published while running is either segmented or counted as skipped
    first = seqs[0]
    seen = [s for s in published if first <= s <= seqs[-1]]
    assert st.frames_in + st.skipped >= len(seen) - 1
    assert slow.calls == st.frames_in


def _topic_info(seq: int, epoch: int = 77) -> FrameInfo:
    return FrameInfo(
        seq=seq,
        producer_epoch=epoch,
        source_seq=seq,
        source_epoch=epoch,
        device_timestamp_ns=0,
        host_timestamp_ns=1_700_000_000_000_000_000 + seq * 33_000_000,
        publish_monotonic_ns=time.monotonic_ns(),
        width=W,
        height=H,
        stride_bytes=W,
        payload_bytes=W * H,
        pixel_format=PixelFormat.MONO8,
        spacing_x_mm=0.2,
        spacing_y_mm=0.3,
        roi=(0, 0, W, H),
        meta_revision=0,
        flags=0,
    )


def test_topic_input_masks_link_to_the_frames_handed_in(tiny_model_dir: Path) -> None:
    """Frames from a callback (a ROS topic from another host) instead of shared memory:
    same masks, same linkage; frames handed in while the model is busy are skipped."""
    _, fmask = _channels()
    seg = Segmenter(tiny_model_dir, device="cpu", threads=1)
    results: list[MaskResult] = []
    inp = TopicInput("/us/acquisition/frames")
    live = LiveSegmenter(
        seg, inp, ChannelConfig.for_frames(fmask, W, H, "label8"), on_result=results.append
    )
    try:
        live.start()
        assert _wait(lambda: live.stats.state == "waiting", 5)
        assert "/us/acquisition/frames" in live.stats.last_error
        for i in range(4):
            inp.put(_frame(i), _topic_info(i))
            assert _wait(lambda n=i + 1: len(results) >= n, 10), live.stats.last_error
        assert [r.source_seq for r in results] == [0, 1, 2, 3]
        assert all(r.source_epoch == 77 for r in results)
        for r, i in zip(results, range(4), strict=True):
            np.testing.assert_array_equal(r.labels, seg.segment(_frame(i)).labels)
        assert live.stats.skipped == 0 and live.stats.last_error == ""
        # a burst while the model is busy with frame 10: 11..13 are superseded by 14
        gate, entered = threading.Event(), threading.Event()
        inner = live.segmenter

        class Gated:
            classes = inner.classes

            def segment(self, *a: object, **kw: object) -> SegmentationResult:
                entered.set()
                gate.wait(10)
                return inner.segment(*a, **kw)  # type: ignore[arg-type]

        live.segmenter = Gated()
        inp.put(_frame(10), _topic_info(10))
        assert entered.wait(10)
        for i in range(11, 15):
            inp.put(_frame(i), _topic_info(i))
        gate.set()
        assert _wait(lambda: results[-1].source_seq == 14, 10)
        assert [r.source_seq for r in results[4:]] == [10, 14]
        assert live.stats.skipped == 3
    finally:
        live.close()


def test_temporal_smoother_blends_and_resets() -> None:
    sm = TemporalSmoother(current_weight=0.5, max_gap_ms=100)
    a = np.zeros((2, 4, 4), np.float32)
    a[0] = 1.0
    b = np.zeros((2, 4, 4), np.float32)
    b[1] = 1.0
    np.testing.assert_array_equal(sm(a, 0, "e"), a)  # first frame passes unchanged
    out = sm(b, 33_000_000, "e")
    np.testing.assert_allclose(out[1], 0.5)  # current frame weighs 0.5, at once
    np.testing.assert_allclose(sm(b, 200_000_000, "e"), b)  # 167 ms gap: restart
    np.testing.assert_allclose(sm(a, 233_000_000, "other"), a)  # producer restarted
    assert sm.resets == 2
    with pytest.raises(ValueError, match="current_weight"):
        TemporalSmoother(current_weight=0.0)


def test_smoothing_keeps_a_still_image_unchanged(tiny_model_dir: Path) -> None:
    seg = Segmenter(tiny_model_dir, device="cpu", threads=1)
    sm = TemporalSmoother(0.6)
    img = _frame(3)
    plain = seg.segment(img).labels
    for k in range(4):
        smoothed = seg.segment(img, None, lambda p, k=k: sm(p, k * 33_000_000, 1)).labels
        np.testing.assert_array_equal(smoothed, plain)


def _info(fmt: PixelFormat, w: int, h: int, roi: tuple[int, int, int, int]) -> FrameInfo:
    return FrameInfo(
        seq=0, producer_epoch=1, source_seq=0, source_epoch=1, device_timestamp_ns=0,
        host_timestamp_ns=0, publish_monotonic_ns=0, width=w, height=h, stride_bytes=0,
        payload_bytes=0, pixel_format=fmt, spacing_x_mm=0.1, spacing_y_mm=0.1, roi=roi,
        meta_revision=0, flags=0,
    )  # fmt: skip


def test_grey_roi_formats() -> None:
    uyvy = np.zeros((4, 6, 2), np.uint8)
    uyvy[..., 1] = 77
    assert (grey_roi(uyvy, _info(PixelFormat.UYVY, 6, 4, (0, 0, 6, 4))) == 77).all()
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 1] = 100
    assert (grey_roi(bgr, _info(PixelFormat.BGR8, 6, 4, (2, 1, 3, 2))) == 59).all()
    m16 = np.full((4, 6), 0x8000, np.uint16)
    g = grey_roi(m16, _info(PixelFormat.MONO16, 6, 4, (0, 0, 0, 0)))
    assert g.shape == (4, 6) and (g == 128).all()


def test_summarise_centroid_and_areas() -> None:
    lab = np.zeros((10, 20), np.uint8)
    lab[6:8, 14:16] = 1  # pixels span [i, i+1): centroid (u=15, v=7) -> (15-10)*0.5, 7*0.2 mm
    conf = np.full((10, 20), 0.8, np.float32)
    areas, c, found, lateral, depth = summarise(lab, conf, (0.5, 0.2), 2)
    assert found and lateral == pytest.approx(2.5) and depth == pytest.approx(1.4)
    assert areas[1] == pytest.approx(4 * 0.1) and c == pytest.approx(0.8)
    _, _, found, _, _ = summarise(np.zeros_like(lab), conf, (0.5, 0.2), 2)
    assert not found
