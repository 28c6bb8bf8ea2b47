"""Temporal calibration recovers a known video delay on simulated sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from us_acquisition.poses import PoseBuffer
from us_acquisition.sequence_io import TrackedSequence, write_sequence
from us_acquisition.sim import (
    BModeParams,
    BModeSimulator,
    NeckPhantom,
    ProbeTrajectory,
    sample_frames,
    sample_tracker,
)
from us_reconstruction.temporal_calibration import (
    estimate_time_offset,
    image_motion_signal,
    lookup_time_offset_ns,
    main,
)

SEED = 5001  # a phantom seed outside the segmentation data (1000-1013, 4242)


def _sweep(video_lag_ms: float) -> tuple[np.ndarray, np.ndarray, object, ProbeTrajectory]:
    """Small frames of a freehand transverse sweep whose video lags by ``video_lag_ms``."""
    phantom = NeckPhantom.from_seed(SEED, spacing_mm=0.5)
    sim = BModeSimulator(phantom, BModeParams(width_px=128, height_px=96), seed=SEED)
    traj = ProbeTrajectory.freehand_transverse(phantom, seed=SEED)
    # simulator convention: the frame stamped t shows the pose at t + time_offset_ms
    frames = sample_frames(traj, 30.0, time_offset_ms=-video_lag_ms)
    images = np.stack([sim.render(T).image for T in frames.T_phantom_probe_true])
    return frames.timestamps_ns, images, sample_tracker(traj, 120.0, seed=SEED), traj


@pytest.mark.parametrize("lag_ms", [40.0, -25.0])
def test_recovers_known_offset(lag_ms: float) -> None:
    stamps, images, tracker, _ = _sweep(lag_ms)
    res = estimate_time_offset(
        stamps,
        images,
        tracker.timestamps_ns,
        tracker.T_phantom_probe,  # type: ignore[attr-defined]
    )
    assert res.offset_ms == pytest.approx(lag_ms, abs=8.0)
    assert res.score > 0.3
    assert not res.at_window_edge
    assert res.reliable
    assert lookup_time_offset_ns(res.offset_ms) == -round(res.offset_ms * 1e6)


def test_offset_corrects_pose_lookup() -> None:
    """Sign check: the returned offset, applied as documented, makes the looked-up pose the
    one the frame shows."""
    lag_ms = 40.0
    stamps, images, tracker, traj = _sweep(lag_ms)
    res = estimate_time_offset(
        stamps,
        images,
        tracker.timestamps_ns,
        tracker.T_phantom_probe,  # type: ignore[attr-defined]
    )
    buf = PoseBuffer()
    truth = traj.poses(np.arange(0, 8.0, 0.001))
    for k, T in enumerate(truth):
        buf.add("phantom", "probe", T, k * 1_000_000)
    k = 120
    shown = traj.pose(stamps[k] * 1e-9 - lag_ms / 1000)
    T = buf.lookup(
        "phantom",
        "probe",
        int(stamps[k]),
        max_gap_ns=10_000_000,
        time_offset_ns=lookup_time_offset_ns(res.offset_ms),
    )
    naive = buf.lookup("phantom", "probe", int(stamps[k]), max_gap_ns=10_000_000)
    err = np.linalg.norm(T[:3, 3] - shown[:3, 3])
    err_naive = np.linalg.norm(naive[:3, 3] - shown[:3, 3])
    assert err < 0.5 * err_naive


def test_cli_on_plus_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lag_ms = 40.0
    stamps, images, _, traj = _sweep(lag_ms)
    # PLUS stores the tracker pose at each frame's stamp
    poses = traj.poses(stamps * 1e-9)
    seq = TrackedSequence(
        frames=images,
        timestamps_s=stamps * 1e-9 + 100.0,
        transforms={"ProbeToTracker": poses},
        transform_status={"ProbeToTracker": np.ones(len(stamps), bool)},
        spacing_mm=(50.0 / 128, 40.0 / 96),
    )
    path = tmp_path / "sweep.igs.mha"
    write_sequence(path, seq)
    out = tmp_path / "result.json"
    assert main([str(path), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["offset_ms"] == pytest.approx(lag_ms, abs=8.0)
    assert summary["reliable"] is True
    assert "correlation" in json.loads(out.read_text())
    assert main([str(path), "--transform", "StylusToTracker"]) == 2
    assert main([str(tmp_path / "absent.igs.mha")]) == 2


def test_input_errors() -> None:
    with pytest.raises(ValueError):
        image_motion_signal(np.zeros((2, 8, 8), np.uint8), [0, 1])
    with pytest.raises(ValueError):
        image_motion_signal(np.zeros((3, 8, 8), np.uint8), [0, 2, 1])
    frames = np.zeros((10, 8, 8), np.uint8)
    stamps = np.arange(10) * 33_000_000
    with pytest.raises(ValueError, match="overlap"):
        estimate_time_offset(stamps, frames, stamps, np.tile(np.eye(4), (10, 1, 1)))
