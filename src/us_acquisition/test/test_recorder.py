"""SequenceRecorder on real shared-memory channels (no ROS): every frame with its stamp, its
pose at that stamp (INVALID where the tracker had a gap or no sample yet), masks paired by
source seq into the label file, frames lost counted when the recorder falls behind, and the
file replayed by the sequence source."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from us_acquisition.poses import PoseBuffer
from us_acquisition.recorder import SequenceRecorder, check_output_path, labels_path_for
from us_acquisition.sequence_io import read_sequence
from us_acquisition.sources.recording import SequenceFileSource

from us_frame_channel import ChannelConfig, FrameWriter, PixelFormat

W, H = 64, 48
ROI = (4, 2, 56, 40)  # x, y, w, h (px)
SP = (0.3, 0.4)  # mm / px
T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def _wait(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def _pose(t_ns: int) -> np.ndarray:
    T = np.eye(4)
    T[2, 3] = (t_ns - T0) / MS * 0.1  # the probe slides 0.1 mm per ms along tracker z
    T[0, 3] = 5.0
    return T


def _frame(i: int) -> np.ndarray:
    return ((np.arange(W * H).reshape(H, W) + 7 * i) % 251).astype(np.uint8)


def test_records_frames_poses_and_masks(tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    fch, mch = f"test/recf-{uid}", f"test/recm-{uid}"
    fw = FrameWriter(ChannelConfig.for_frames(fch, W, H, "mono8", buffer_frames=32))
    mw = FrameWriter(ChannelConfig.for_frames(mch, W, H, "label8", buffer_frames=32))
    poses = PoseBuffer()
    for k in range(61):  # tracker at 100 Hz, T0 .. T0 + 600 ms, with a dropout 250-350 ms
        t = T0 + k * 10 * MS
        if not 250 * MS < t - T0 < 350 * MS:
            poses.add("tracker", "probe", _pose(t), t)
    out = tmp_path / "scan.igs.mha"
    rec = SequenceRecorder(
        out, poses, frames_channel=fch, mask_channel=mch, max_pose_gap_ms=50.0,
        pose_wait_ms=50.0, mask_wait_ms=1000.0,
    )  # fmt: skip
    try:
        rec.start()
        stamps = [T0 + (100 + 33 * i) * MS for i in range(12)] + [T0 + 900 * MS]
        masks: dict[int, np.ndarray] = {}
        for i, st in enumerate(stamps):
            seq = fw.seq
            lab = np.zeros((H, W), np.uint8)
            lab[ROI[1] + i : ROI[1] + i + 5, ROI[0] + 3 : ROI[0] + 9] = 1
            if i == 3:  # a mask that arrives before its frame
                mw.publish(lab, "label8", roi=ROI, source_seq=seq, source_epoch=fw.epoch)
            fw.publish(_frame(i), "mono8", host_timestamp_ns=st, spacing_mm=SP, roi=ROI)
            if i % 2 == 0:
                mw.publish(lab, "label8", roi=ROI, source_seq=seq, source_epoch=fw.epoch)
            if i % 2 == 0 or i == 3:
                masks[i] = lab
        assert _wait(lambda: rec.stats.frames_written == len(stamps), 10), rec.stats
        res = rec.stop()
    finally:
        fw.close()
        mw.close()
    assert res.path == out and res.frames_written == 13 and res.frames_lost == 0
    assert res.masks_written == len(masks)
    assert res.labels_path == tmp_path / "scan-labels.igs.mha"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan-labels.igs.mha", "scan.igs.mha"]

    seq = read_sequence(out)
    x, y, w, h = ROI
    assert seq.frames.shape == (13, h, w) and seq.frames.dtype == np.uint8
    for i in range(13):
        np.testing.assert_array_equal(seq.frames[i], _frame(i)[y : y + h, x : x + w])
    np.testing.assert_allclose(seq.timestamps_s, np.array(stamps) / 1e9, rtol=0, atol=1e-6)
    assert seq.spacing_mm == pytest.approx(SP)
    assert seq.frame_fields["FrameSeq"] == [str(i) for i in range(13)]
    ok = seq.transform_status["ProbeToTracker"]
    invalid = {5, 6, 7, 12}  # 265/298/331 ms fall in the 110 ms tracker gap; 900 ms: no pose
    assert [i for i in range(13) if not ok[i]] == sorted(invalid)
    for i in range(13):
        T = seq.transforms["ProbeToTracker"][i]
        want = _pose(stamps[i]) if ok[i] else np.eye(4)
        np.testing.assert_allclose(T, want, atol=1e-9)

    lab_seq = read_sequence(res.labels_path)
    assert lab_seq.frames.shape == (13, h, w)
    np.testing.assert_allclose(lab_seq.timestamps_s, seq.timestamps_s)
    np.testing.assert_array_equal(lab_seq.transform_status["ProbeToTracker"], ok)
    status = lab_seq.frame_fields["LabelStatus"]
    for i in range(13):
        if i in masks:
            assert status[i] == "OK"
            np.testing.assert_array_equal(lab_seq.frames[i], masks[i][y : y + h, x : x + w])
        else:
            assert status[i] == "MISSING" and not lab_seq.frames[i].any()

    # the acquisition's sequence source replays it: pixels, pose, validity
    src = SequenceFileSource(out, realtime=False)
    info = src.open()
    try:
        assert (info.width, info.height, info.pixel_format) == (w, h, PixelFormat.MONO8)
        got = [src.read(1.0) for _ in range(13)]
    finally:
        src.close()
    for i, f in enumerate(got):
        assert f is not None
        np.testing.assert_array_equal(f.image, seq.frames[i])
        (t,) = f.transforms
        assert (t.from_frame, t.to_frame, t.valid) == ("probe", "tracker", bool(ok[i]))


def test_counts_frames_lost_when_behind_and_writes_colour_nrrd(tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    fch = f"test/recc-{uid}"
    fw = FrameWriter(ChannelConfig.for_frames(fch, W, H, "bgr8", buffer_frames=2))
    poses = PoseBuffer()
    poses.add("tracker", "probe", np.eye(4), 0, static=True)  # a fixed probe: always valid
    out = tmp_path / "colour.seq.nrrd"
    rec = SequenceRecorder(out, poses, frames_channel=fch, mask_channel="", compress=True)
    rng = np.random.default_rng(3)
    sent = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(14)]
    try:
        rec.start()
        for i in range(2):
            fw.publish(sent[i], "bgr8")
        assert _wait(lambda: rec.stats.frames_written == 2, 10), rec.stats
        rec.pause()  # a stalled disk: the recorder reads nothing for a while
        assert _wait(lambda: rec.stats.state == "paused", 5)
        for i in range(2, 12):
            fw.publish(sent[i], "bgr8")  # never blocks the producer
        rec.resume()
        assert _wait(lambda: rec.stats.frames_written == 4, 10), rec.stats
        for i in range(12, 14):
            fw.publish(sent[i], "bgr8")
        assert _wait(lambda: rec.stats.frames_written == 6, 10), rec.stats
        res = rec.stop()
    finally:
        fw.close()
    assert res.frames_lost == 8 and res.frames_written == 6 and res.labels_path is None
    assert res.poses_valid == 6
    seq = read_sequence(out)
    kept = [0, 1, 10, 11, 12, 13]  # the channel buffer (2) kept the newest of the burst
    assert seq.frame_fields["FrameSeq"] == [str(i) for i in kept]
    assert seq.frames.shape == (6, H, W, 3) and seq.image_type == "RGB_COLOR"
    for j, i in enumerate(kept):
        np.testing.assert_array_equal(seq.frames[j], sent[i][..., ::-1])  # BGR -> RGB
    assert seq.header.get("RecordingFramesLost") == "8"
    assert seq.spacing_mm is None or seq.spacing_mm == (1.0, 1.0)


def test_guard_stops_taking_frames_and_empty_recording_writes_nothing(tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    fch = f"test/recg-{uid}"
    fw = FrameWriter(ChannelConfig.for_frames(fch, W, H, "mono8", buffer_frames=16))
    poses = PoseBuffer()
    limited = SequenceRecorder(
        tmp_path / "a.igs.mha", poses, frames_channel=fch, mask_channel="", max_frames=3,
        pose_wait_ms=0.0,
    )  # fmt: skip
    empty = SequenceRecorder(tmp_path / "b.igs.mha", poses, frames_channel=fch + "x")
    try:
        limited.start()
        empty.start()  # its channel does not exist: it waits, records nothing
        for i in range(6):
            fw.publish(_frame(i), "mono8")
        assert _wait(lambda: limited.limit_reached, 10), limited.stats
        res = limited.stop()
        assert empty.stats.state == "waiting"
        nothing = empty.stop()
    finally:
        fw.close()
    assert res.frames_written == 3 and "max_frames" in res.limit_reason and res.frames_lost == 0
    assert res.poses_invalid == 3  # no pose at all: INVALID, never a guess
    assert read_sequence(tmp_path / "a.igs.mha").num_frames == 3
    assert nothing.path is None and nothing.frames_written == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.igs.mha"]  # no temp files left


def test_output_path_checks(tmp_path: Path) -> None:
    assert labels_path_for("/x/scan.igs.mha") == Path("/x/scan-labels.igs.mha")
    assert labels_path_for("s.SEQ.NRRD") == Path("s-labels.SEQ.NRRD")
    assert check_output_path(tmp_path / "ok.igs.nrrd") == tmp_path / "ok.igs.nrrd"
    with pytest.raises(ValueError, match="unsupported extension"):
        check_output_path(tmp_path / "scan.mha")
    with pytest.raises(ValueError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "scan.igs.mha")
    (tmp_path / "old.igs.mha").write_bytes(b"")
    with pytest.raises(ValueError, match="already exists"):
        check_output_path(tmp_path / "old.igs.mha")
    with pytest.raises(ValueError, match="transform name"):
        SequenceRecorder(tmp_path / "t.igs.mha", PoseBuffer(), transform_name="probe")
