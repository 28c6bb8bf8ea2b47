"""LiveReconstructor on real shared-memory channels (no ROS): frames paired with their masks
by seq, placed by interpolated poses, skipped and counted when poses are missing, stale or
gapped, and the thyroid measured from the label volume."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from us_acquisition.poses import POSE_GAP, POSE_STALE, PoseBuffer
from us_reconstruction.compounding import Compounder
from us_reconstruction.live import ImagePlacement, LiveReconstructor, top_center_T_probe_image

from us_frame_channel import ChannelConfig, FrameWriter, PixelFormat

W, H = 64, 48
SP = (0.5, 0.5)  # mm / px
T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def _wait(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _pose(z_mm: float) -> np.ndarray:
    T = np.eye(4)
    T[2, 3] = z_mm  # the probe slides along tracker z; image plane = tracker x-y
    return T


def _setup(mask: bool) -> tuple[FrameWriter, FrameWriter | None, PoseBuffer, LiveReconstructor]:
    uid = uuid.uuid4().hex[:8]
    fch, mch = f"test/rf-{uid}", f"test/rm-{uid}"
    fw = FrameWriter(ChannelConfig.for_frames(fch, W, H, "mono8", buffer_frames=64))
    mw = (
        FrameWriter(ChannelConfig.for_frames(mch, W, H, "label8", buffer_frames=64))
        if mask
        else None
    )
    poses = PoseBuffer()
    live = LiveReconstructor(
        Compounder(spacing_mm=0.5, auto_grow=True, grow_margin_mm=2.0),
        poses,
        ImagePlacement(),
        frames_channel=fch,
        mask_channel=mch if mask else "",
        max_pose_gap_ms=50.0,
        pose_wait_ms=0.0,
        mask_wait_ms=2000.0,
        surface_period_s=3600.0,
    )
    return fw, mw, poses, live


def test_frames_placed_by_pose_and_paired_with_masks() -> None:
    fw, mw, poses, live = _setup(mask=True)
    assert mw is not None
    # tracker at 100 Hz over 0..400 ms, probe moving 0.5 mm per 10 ms along z
    for k in range(41):
        poses.add("tracker", "probe", _pose(0.5 * k), T0 + k * 10 * MS)
    img = np.full((H, W), 100, np.uint8)
    lab = np.zeros((H, W), np.uint8)
    lab[10:30, 20:40] = 1  # a 10 x 10 mm square "thyroid"
    try:
        live.start()
        assert _wait(lambda: fw.consumer_count() == 1 and mw.consumer_count() == 1, 10)
        seqs = []
        for k in range(0, 40, 2):  # frames every 20 ms (5 ms past each pose: interpolated)
            stamp = T0 + k * 10 * MS + 5 * MS
            seq = fw.publish(img, "mono8", host_timestamp_ns=stamp, spacing_mm=SP)
            mw.publish(lab, "label8", host_timestamp_ns=stamp, spacing_mm=SP, source_seq=seq,
                       source_epoch=fw.epoch)  # fmt: skip
            seqs.append(seq)
        assert _wait(lambda: live.stats.frames_used == 20, 10), live.stats
        assert live.stats.frames_skipped == 0 and live.stats.unlabelled == 0
        grid = live.compounder.grid
        assert grid is not None
        frac = live.compounder.label_fraction(1)
        # the square sits at x in [-6, 4) mm (top-centre convention: u=20 -> -5.75 mm centre)
        pts = grid.index_to_world(np.argwhere(frac > 0.5).astype(float))
        assert abs(pts[:, 0].min() - (20 + 0.5 - W / 2) * SP[0]) <= 0.5
        assert abs(pts[:, 1].min() - (10 + 0.5) * SP[1]) <= 0.5
        # z covers the sweep: first frame at 0.25 mm, last at 19.25 mm (interpolated poses)
        assert abs(pts[:, 2].min() - 0.25) <= 0.5 and abs(pts[:, 2].max() - 19.25) <= 0.5
        res = live.update_surface()
        assert res is not None
        # 10 x 10 x ~19.5 mm box = 1.95 mL, within a voxel layer on each side
        assert 1.6 < res.volume_ml < 2.3, res.volume_ml
    finally:
        live.close()
        fw.close()
        mw.close()


def test_missing_stale_and_gapped_poses_are_skipped_and_counted() -> None:
    fw, _, poses, live = _setup(mask=False)
    poses.add("tracker", "probe", _pose(0.0), T0)
    poses.add("tracker", "probe", _pose(1.0), T0 + 10 * MS)
    poses.add("tracker", "probe", _pose(2.0), T0 + 200 * MS)  # a 190 ms tracker dropout
    img = np.full((H, W), 80, np.uint8)
    try:
        live.start()
        assert _wait(lambda: fw.consumer_count() == 1, 10)
        fw.publish(img, "mono8", host_timestamp_ns=T0 + 5 * MS, spacing_mm=SP)  # ok
        fw.publish(img, "mono8", host_timestamp_ns=T0 + 100 * MS, spacing_mm=SP)  # gap
        fw.publish(img, "mono8", host_timestamp_ns=T0 + 900 * MS, spacing_mm=SP)  # stale
        fw.publish(img, "mono8", host_timestamp_ns=T0 - 10**12, spacing_mm=SP)  # older
        assert _wait(lambda: live.stats.frames_used + live.stats.frames_skipped == 4, 10)
        st = live.stats
        assert st.frames_used == 1
        assert st.skipped.get(POSE_GAP) == 1
        assert st.skipped.get(POSE_STALE, 0) == 2, st.skipped
    finally:
        live.close()
        fw.close()


def test_frames_without_mask_go_in_without_labels() -> None:
    fw, mw, poses, live = _setup(mask=True)
    assert mw is not None
    for k in range(11):
        poses.add("tracker", "probe", _pose(float(k)), T0 + k * 10 * MS)
    img = np.full((H, W), 120, np.uint8)
    lab = np.ones((H, W), np.uint8)
    try:
        live.start()
        assert _wait(lambda: fw.consumer_count() == 1 and mw.consumer_count() == 1, 10)
        s0 = fw.publish(img, "mono8", host_timestamp_ns=T0 + 10 * MS, spacing_mm=SP)
        fw.publish(img, "mono8", host_timestamp_ns=T0 + 50 * MS, spacing_mm=SP)  # skipped by seg
        s2 = fw.publish(img, "mono8", host_timestamp_ns=T0 + 90 * MS, spacing_mm=SP)
        for s, ts in ((s0, 10), (s2, 90)):
            mw.publish(lab, "label8", host_timestamp_ns=T0 + ts * MS, spacing_mm=SP,
                       source_seq=s, source_epoch=fw.epoch)  # fmt: skip
        # the middle frame's mask will never come (a later frame has one): no 2 s wait
        assert _wait(lambda: live.stats.frames_used == 3, 1.5), live.stats
        assert live.stats.unlabelled == 1
        frac = live.compounder.label_fraction(1)
        w = live.compounder.weights()
        # the unlabelled plane has intensity but its voxels carry no label votes
        assert (w > 0).sum() > (frac > 0).sum()
    finally:
        live.close()
        fw.close()
        mw.close()


def test_top_center_convention_matches_the_simulator() -> None:
    from us_acquisition.sim import BModeSimulator, NeckPhantom
    from us_acquisition.sim.bmode import BModeParams

    sim = BModeSimulator(NeckPhantom.from_seed(3), BModeParams(width_px=160, height_px=120))
    T = top_center_T_probe_image(160, sim.pixel_spacing_mm)
    np.testing.assert_allclose(T, sim.T_probe_image(), atol=1e-12)


def test_masks_handed_in_by_a_feed_pair_like_channel_masks() -> None:
    """mask_feed (masks from a segmentation on another host, via a topic): same pairing by
    (source epoch, source seq) as the mask channel; masks for another producer run are
    not used."""
    from us_frame_channel.layout import FrameInfo

    uid = uuid.uuid4().hex[:8]
    fw = FrameWriter(ChannelConfig.for_frames(f"test/rf-{uid}", W, H, "mono8", buffer_frames=64))
    poses = PoseBuffer()
    live = LiveReconstructor(
        Compounder(spacing_mm=0.5, auto_grow=True, grow_margin_mm=2.0),
        poses,
        ImagePlacement(),
        frames_channel=f"test/rf-{uid}",
        mask_feed=True,
        max_pose_gap_ms=50.0,
        pose_wait_ms=0.0,
        mask_wait_ms=300.0,
        surface_period_s=3600.0,
    )
    for k in range(41):
        poses.add("tracker", "probe", _pose(0.5 * k), T0 + k * 10 * MS)
    img = np.full((H, W), 100, np.uint8)
    lab = np.zeros((H, W), np.uint8)
    lab[10:30, 20:40] = 1

    def mask_info(seq: int, epoch: int, stamp: int) -> FrameInfo:
        return FrameInfo(
            seq=seq, producer_epoch=1, source_seq=seq, source_epoch=epoch,
            device_timestamp_ns=0, host_timestamp_ns=stamp, publish_monotonic_ns=0,
            width=W, height=H, stride_bytes=W, payload_bytes=W * H,
            pixel_format=PixelFormat.LABEL8, spacing_x_mm=SP[0], spacing_y_mm=SP[1],
            roi=(0, 0, W, H), meta_revision=0, flags=0,
        )  # fmt: skip

    try:
        assert live.uses_masks and live.mask_channel == ""
        live.start()
        assert _wait(lambda: fw.consumer_count() == 1, 10)
        for k in range(0, 20, 2):
            stamp = T0 + k * 10 * MS + 5 * MS
            seq = fw.publish(img, "mono8", host_timestamp_ns=stamp, spacing_mm=SP)
            # even frames: their mask; odd: a mask naming another producer run (ignored)
            epoch = fw.epoch if (k // 2) % 2 == 0 else fw.epoch + 1
            live.put_mask(mask_info(seq, epoch, stamp), lab)
        assert _wait(lambda: live.stats.frames_used == 10, 10), live.stats
        assert live.stats.unlabelled == 5  # waited mask_wait_ms, then went in without labels
        assert live.compounder.label_fraction(1).max() > 0.5
    finally:
        live.close()
        fw.close()


def test_background_thread_priority_is_lowered_for_that_thread_only() -> None:
    import os
    import sys
    import threading

    from us_reconstruction.live import lower_thread_priority

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are a Linux feature")
    me = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int | None] = {}

    def worker() -> None:
        tid = threading.get_native_id()
        seen["returned"] = lower_thread_priority(3)
        seen["now"] = os.getpriority(os.PRIO_PROCESS, tid)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["returned"] == seen["now"] == min(19, me + 3)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == me  # caller unchanged
    assert lower_thread_priority(0) is None
