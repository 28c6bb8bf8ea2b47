"""Tests of probe trajectories, tracker and frame sampling."""

from __future__ import annotations

import numpy as np
import pytest
from us_acquisition.sim.motion import (
    ProbeTrajectory,
    longitudinal_pose,
    sample_frames,
    sample_tracker,
    transverse_pose,
)
from us_acquisition.sim.phantom import NeckPhantom


@pytest.fixture(scope="module")
def phantom() -> NeckPhantom:
    return NeckPhantom.from_seed(5, spacing_mm=1.0)


def _is_rigid(T: np.ndarray) -> bool:
    R = T[..., :3, :3]
    eye = np.broadcast_to(np.eye(3), R.shape)
    return bool(
        np.allclose(R @ np.swapaxes(R, -1, -2), eye, atol=1e-9)
        and np.allclose(np.linalg.det(R), 1.0)
        and np.allclose(T[..., 3, :], [0, 0, 0, 1])
    )


def test_base_orientations() -> None:
    T = transverse_pose(1.0, 2.0)
    assert np.allclose(T[:3, :3], np.eye(3)) and np.allclose(T[:3, 3], [1, 0, 2])
    L = longitudinal_pose(0.0, 0.0)
    assert np.allclose(L[:3, 0], [0, 0, -1])  # image left (-x_p) is cranial (+z)
    assert np.allclose(L[:3, 1], [0, 1, 0])
    assert _is_rigid(transverse_pose(0, 0, 0, 10, -5, 3))


def test_freehand_transverse_sweep(phantom: NeckPhantom) -> None:
    traj = ProbeTrajectory.freehand_transverse(phantom, seed=1, duration_s=8.0)
    t = np.linspace(0, 8.0, 2001)
    T = traj.poses(t)
    assert T.shape == (2001, 4, 4) and _is_rigid(T)
    z = T[:, 2, 3]
    z0, z1 = phantom.landmarks.lobe_z_range_mm
    assert z[0] < z0 and z[-1] > z1  # caudal -> cranial over the whole gland
    # speed varies but the sweep keeps progressing (smoothed over 0.25 s)
    zs = np.convolve(z, np.ones(63) / 63, mode="valid")
    v = np.diff(zs[::62]) / (62 * (t[1] - t[0]))
    assert (v > 0).all() and v.max() / v.min() > 1.2
    # tremor: high-frequency lateral motion present; tilts of a few degrees
    dx = np.diff(T[:, 0, 3])
    assert np.std(dx) > 1e-4
    assert np.abs(np.degrees(np.arcsin(T[:, 2, 1]))).max() > 0.5
    # deterministic
    T2 = ProbeTrajectory.freehand_transverse(phantom, seed=1, duration_s=8.0).poses(t)
    assert np.array_equal(T, T2)
    T3 = ProbeTrajectory.freehand_transverse(phantom, seed=2, duration_s=8.0).poses(t)
    assert not np.allclose(T, T3)


def test_freehand_longitudinal_crosses_lobe(phantom: NeckPhantom) -> None:
    traj = ProbeTrajectory.freehand_longitudinal(phantom, side="right", seed=0)
    T = traj.poses(np.linspace(0, traj.duration_s, 300))
    assert _is_rigid(T)
    cx = phantom.landmarks.lobe_centre_mm["right"][0]
    x = T[:, 0, 3]
    assert x.min() < cx < x.max()
    assert np.allclose(T[:, :3, 0] @ np.array([0, 0, -1.0]), 1.0, atol=0.05)


def test_robot_raster_constant_speed(phantom: NeckPhantom) -> None:
    traj = ProbeTrajectory.robot_raster(phantom, n_lines=3, line_spacing_mm=10.0, speed_mm_s=12.0)
    t = np.linspace(0, traj.duration_s, 4001)
    p = traj.poses(t)[:, :3, 3]
    speed = np.linalg.norm(np.diff(p, axis=0), axis=1) / np.diff(t)
    # constant speed everywhere except the few samples that cut a corner
    assert (np.abs(speed - 12.0) < 0.05).mean() > 0.99
    assert speed.max() < 12.0 + 1e-6
    assert np.allclose(traj.poses(t)[:, :3, :3], np.eye(3))  # no tilt
    xs = np.unique(np.round(p[:, 0], 6))
    assert {-10.0, 0.0, 10.0} <= set(xs.tolist())


def test_tracker_rate_and_noise(phantom: NeckPhantom) -> None:
    traj = ProbeTrajectory.freehand_transverse(phantom, seed=3, duration_s=4.0)
    clean = sample_tracker(traj, rate_hz=120.0, noise_mm=0.0, noise_deg=0.0, t0_ns=10**9)
    assert clean.timestamps_ns.dtype == np.int64 and clean.timestamps_ns.size == 481
    assert clean.timestamps_ns[0] == 10**9
    assert np.allclose(np.diff(clean.timestamps_ns), 1e9 / 120, atol=1)
    assert np.allclose(clean.T_phantom_probe, traj.poses((clean.timestamps_ns - 10**9) / 1e9))
    noisy = sample_tracker(traj, rate_hz=120.0, noise_mm=0.2, noise_deg=0.5, seed=1)
    assert _is_rigid(noisy.T_phantom_probe)
    d = noisy.T_phantom_probe[:, :3, 3] - clean.T_phantom_probe[:, :3, 3]
    assert np.std(d) == pytest.approx(0.2, rel=0.15)
    rel = np.swapaxes(clean.T_phantom_probe[:, :3, :3], 1, 2) @ noisy.T_phantom_probe[:, :3, :3]
    ang = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    # |rotvec| with N(0, s) per axis: RMS = sqrt(3) * s
    assert np.sqrt(np.mean(ang**2)) == pytest.approx(np.sqrt(3) * 0.5, rel=0.15)


def test_frame_time_offset_applied(phantom: NeckPhantom) -> None:
    traj = ProbeTrajectory.freehand_transverse(phantom, seed=4, duration_s=4.0)
    f0 = sample_frames(traj, fps=30.0, time_offset_ms=0.0)
    f1 = sample_frames(traj, fps=30.0, time_offset_ms=-45.0)
    assert f0.timestamps_ns.size == 121 and np.array_equal(f0.timestamps_ns, f1.timestamps_ns)
    assert np.allclose(np.diff(f0.timestamps_ns), 1e9 / 30, atol=1)
    t = f1.timestamps_ns / 1e9
    # frame stamped t shows the true pose at t + offset
    assert np.allclose(f1.T_phantom_probe_true[10:], traj.poses(t[10:] - 0.045))
    assert not np.allclose(f1.T_phantom_probe_true[10:], f0.T_phantom_probe_true[10:])
    # equivalently: the offset frame k equals the zero-offset pose 45 ms earlier
    assert np.allclose(f1.T_phantom_probe_true[30], traj.pose(1.0 - 0.045))
