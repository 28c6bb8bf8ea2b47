"""Tests of the interpolating pose buffer (no rclpy)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from us_acquisition.poses import (
    POSE_GAP,
    POSE_INVALID,
    POSE_MISSING,
    POSE_STALE,
    PoseBuffer,
    PoseLookupError,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp_quaternion,
    transform_from_ros,
    transform_to_ros,
)

MS = 1_000_000


def _T(rotvec_deg: tuple[float, float, float], t_mm: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()
    T[:3, 3] = t_mm
    return T


def _angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(Rotation.from_matrix(R).as_rotvec())))


def test_quaternion_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        R = Rotation.random(random_state=rng).as_matrix()
        q = matrix_to_quaternion(R)
        assert q[3] >= 0.0
        np.testing.assert_allclose(quaternion_to_matrix(*q), R, atol=1e-12)
    # agrees with scipy (same x, y, z, w order), up to sign
    R = Rotation.from_rotvec([0.3, -1.2, 2.9])
    q = matrix_to_quaternion(R.as_matrix())
    ref = R.as_quat()
    assert np.allclose(q, ref) or np.allclose(q, -ref)


def test_ros_conversion_metres_to_mm() -> None:
    q = Rotation.from_rotvec([0.0, 0.0, math.pi / 2]).as_quat()
    T = transform_from_ros([0.01, -0.02, 0.5], q)
    np.testing.assert_allclose(T[:3, 3], [10.0, -20.0, 500.0])
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    t_m, q2 = transform_to_ros(T)
    np.testing.assert_allclose(t_m, [0.01, -0.02, 0.5])
    assert np.allclose(q2, q) or np.allclose(q2, -q)
    # a quaternion far from unit norm is not silently fixed
    assert np.isnan(transform_from_ros([0, 0, 0], [0, 0, 0, 0.5])).any()


def test_slerp_halfway_angle() -> None:
    q0 = matrix_to_quaternion(np.eye(3))
    q1 = matrix_to_quaternion(Rotation.from_rotvec([0, 0, math.radians(170)]).as_matrix())
    qh = slerp_quaternion(q0, q1, 0.5)
    assert _angle_deg(quaternion_to_matrix(*qh)) == pytest.approx(85.0, abs=1e-9)


def test_interpolation_midpoint() -> None:
    buf = PoseBuffer()
    buf.add("world", "probe", _T((0, 0, 0), (0, 0, 0)), 1000 * MS)
    buf.add("world", "probe", _T((0, 60, 0), (10, -20, 40)), 1100 * MS)
    T = buf.lookup("world", "probe", 1050 * MS, max_gap_ns=200 * MS)
    np.testing.assert_allclose(T[:3, 3], [5, -10, 20], atol=1e-9)
    assert _angle_deg(T[:3, :3]) == pytest.approx(30.0, abs=1e-6)
    np.testing.assert_allclose(
        Rotation.from_matrix(T[:3, :3]).as_rotvec(), np.radians([0, 30, 0]), atol=1e-9
    )
    # exact sample stamps return the samples
    np.testing.assert_allclose(
        buf.lookup("world", "probe", 1100 * MS, max_gap_ns=1), _T((0, 60, 0), (10, -20, 40))
    )
    # inverse direction
    Ti = buf.lookup("probe", "world", 1050 * MS, max_gap_ns=200 * MS)
    np.testing.assert_allclose(Ti @ T, np.eye(4), atol=1e-12)


def test_out_of_order_inserts_and_history_trim() -> None:
    buf = PoseBuffer(max_history_ns=1000 * MS)
    for k in [3, 1, 2, 0, 4]:
        buf.add("world", "probe", _T((0, 0, 0), (k, 0, 0)), k * 100 * MS)
    T = buf.lookup("world", "probe", 250 * MS, max_gap_ns=100 * MS)
    assert T[0, 3] == pytest.approx(2.5)
    buf.add("world", "probe", _T((0, 0, 0), (20, 0, 0)), 2000 * MS)  # trims < 1000 ms
    with pytest.raises(PoseLookupError) as err:
        buf.lookup("world", "probe", 250 * MS, max_gap_ns=100 * MS)
    assert err.value.reason == POSE_STALE
    buf.add("world", "probe", _T((0, 0, 0), (0, 0, 0)), 10 * MS)  # too old: dropped
    assert buf.newest_stamp_ns("world", "probe") == 2000 * MS


def test_time_offset_applied() -> None:
    buf = PoseBuffer()
    buf.add("world", "probe", _T((0, 0, 0), (0, 0, 0)), 0)
    buf.add("world", "probe", _T((0, 0, 0), (100, 0, 0)), 100 * MS)
    # frame stamped 80 ms whose video lags the tracker by 40 ms: evaluate at 40 ms
    T = buf.lookup("world", "probe", 80 * MS, max_gap_ns=200 * MS, time_offset_ns=-40 * MS)
    assert T[0, 3] == pytest.approx(40.0)
    T = buf.lookup("world", "probe", 20 * MS, max_gap_ns=200 * MS, time_offset_ns=30 * MS)
    assert T[0, 3] == pytest.approx(50.0)


def test_chain_with_static_edge_and_common_ancestor() -> None:
    buf = PoseBuffer()
    T_tool_probe = _T((0, 0, 90), (0, 0, 25))
    buf.add("tool", "probe", T_tool_probe, 0, static=True)
    buf.add("tracker", "tool", _T((0, 0, 0), (0, 0, 0)), 0)
    buf.add("tracker", "tool", _T((0, 0, 0), (10, 0, 0)), 100 * MS)
    T_tracker_ref = _T((90, 0, 0), (1, 2, 3))
    buf.add("tracker", "reference", T_tracker_ref, 0)
    buf.add("tracker", "reference", T_tracker_ref, 100 * MS)
    T = buf.lookup("tracker", "probe", 50 * MS, max_gap_ns=200 * MS)
    np.testing.assert_allclose(T, _T((0, 0, 0), (5, 0, 0)) @ T_tool_probe, atol=1e-12)
    # via the common ancestor "tracker": reference <- tracker <- tool <- probe
    T_ref_probe = buf.lookup("reference", "probe", 50 * MS, max_gap_ns=200 * MS)
    expected = np.linalg.inv(T_tracker_ref) @ _T((0, 0, 0), (5, 0, 0)) @ T_tool_probe
    np.testing.assert_allclose(T_ref_probe, expected, atol=1e-12)
    # static edges alone are time-independent
    np.testing.assert_allclose(
        buf.lookup("tool", "probe", 10**15, max_gap_ns=0), T_tool_probe, atol=1e-12
    )
    np.testing.assert_allclose(buf.lookup("probe", "probe", 0, max_gap_ns=0), np.eye(4), atol=0)
    assert buf.frames() == {"tool", "probe", "tracker", "reference"}


def test_missing_reasons() -> None:
    buf = PoseBuffer()
    buf.add("world", "probe", np.eye(4), 0)
    buf.add("other_root", "robot", np.eye(4), 0)
    for target, source in [("world", "nowhere"), ("world", "robot")]:
        with pytest.raises(PoseLookupError) as err:
            buf.lookup(target, source, 0, max_gap_ns=10)
        assert err.value.reason == POSE_MISSING


def test_stale_reasons_and_max_age() -> None:
    buf = PoseBuffer()
    buf.add("world", "probe", _T((0, 0, 0), (1, 0, 0)), 100 * MS)
    buf.add("world", "probe", _T((0, 0, 0), (2, 0, 0)), 110 * MS)
    with pytest.raises(PoseLookupError) as err:  # newer than newest, no max_age
        buf.lookup("world", "probe", 111 * MS, max_gap_ns=50 * MS)
    assert err.value.reason == POSE_STALE
    # within max_age the newest sample is held (never extrapolated)
    T = buf.lookup("world", "probe", 115 * MS, max_gap_ns=50 * MS, max_age_ns=10 * MS)
    assert T[0, 3] == pytest.approx(2.0)
    with pytest.raises(PoseLookupError) as err:
        buf.lookup("world", "probe", 121 * MS, max_gap_ns=50 * MS, max_age_ns=10 * MS)
    assert err.value.reason == POSE_STALE
    with pytest.raises(PoseLookupError) as err:  # older than the history
        buf.lookup("world", "probe", 99 * MS, max_gap_ns=50 * MS)
    assert err.value.reason == POSE_STALE


def test_gap_reason() -> None:
    buf = PoseBuffer()
    buf.add("world", "probe", np.eye(4), 0)
    buf.add("world", "probe", np.eye(4), 500 * MS)  # tracker lost the probe for 0.5 s
    with pytest.raises(PoseLookupError) as err:
        buf.lookup("world", "probe", 250 * MS, max_gap_ns=100 * MS)
    assert err.value.reason == POSE_GAP
    assert buf.can_lookup("world", "probe", 250 * MS, max_gap_ns=600 * MS)


def test_invalid_reason() -> None:
    buf = PoseBuffer()
    buf.add("world", "probe", np.eye(4), 0)
    nan = np.full((4, 4), np.nan)
    assert buf.add("world", "probe", nan, 10 * MS) is False
    scaled = np.diag([2.0, 1.0, 1.0, 1.0])
    assert buf.add("world", "probe", scaled, 20 * MS) is False
    buf.add("world", "probe", np.eye(4), 30 * MS)
    for stamp in (5 * MS, 10 * MS, 25 * MS):
        with pytest.raises(PoseLookupError) as err:
            buf.lookup("world", "probe", stamp, max_gap_ns=100 * MS)
        assert err.value.reason == POSE_INVALID
    buf.add("tool", "probe2", scaled, 0, static=True)
    with pytest.raises(PoseLookupError) as err:
        buf.lookup("tool", "probe2", 0, max_gap_ns=0)
    assert err.value.reason == POSE_INVALID
    with pytest.raises(ValueError):
        buf.add("world", "probe", np.eye(3), 0)


def test_thread_safety_concurrent_add_and_lookup() -> None:
    buf = PoseBuffer(max_history_ns=200 * MS)
    buf.add("world", "probe", np.eye(4), 0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        for k in range(1, 3000):
            buf.add("world", "probe", _T((0, 0, k % 90), (k, 0, 0)), k * MS)
        stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                newest = buf.newest_stamp_ns("world", "probe") or 0
                try:
                    T = buf.lookup("world", "probe", newest - MS // 2, max_gap_ns=5 * MS)
                    assert np.isfinite(T).all()
                except PoseLookupError as exc:
                    assert exc.reason in (POSE_STALE, POSE_MISSING)
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
