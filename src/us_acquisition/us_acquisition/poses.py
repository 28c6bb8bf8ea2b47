"""Interpolating rigid-transform buffer (a small tf2-like buffer without ROS).

Pure numpy, no rclpy: used when ``tf2_ros`` is not available (it is not on PyPI).

Conventions
-----------
* A transform ``T_parent_child`` (``float64 (4, 4)``, translation in **mm**) maps coordinates
  expressed in ``child`` into ``parent``: ``p_parent = T_parent_child @ p_child``.  This is the
  direction of a ROS ``TransformStamped`` with ``header.frame_id = parent`` and
  ``child_frame_id = child``.
* :meth:`PoseBuffer.lookup` ``(target, source, ...)`` returns ``T_target_source`` (maps source
  coordinates into target), like ``tf2_ros.Buffer.lookup_transform(target, source, time)``.
* Stamps are integer nanoseconds.  ``time_offset_ns`` is **added** to the query stamp: the
  poses are evaluated at ``stamp_ns + time_offset_ns``.  A video stream whose frames lag the
  tracker by ``L`` ns (the frame stamped ``t`` was captured at ``t - L``; temporal calibration
  reports ``offset_ms = L / 1e6``) is therefore corrected with ``time_offset_ns = -L``.  This
  is the same sign as PLUS ``LocalTimeOffsetSec`` and the simulator's
  ``video_time_offset_ms``.
* Quaternions are ``(x, y, z, w)`` (ROS order); ROS translations are metres.

Interpolation: each dynamic edge of the frame tree is interpolated separately at the query
time between the two samples that bracket it, translation linearly and rotation by
spherical linear interpolation (slerp); static edges are time-independent.  Nothing is ever
extrapolated: a query newer than the newest sample is answered with the newest sample only
if it is at most ``max_age_ns`` newer (default 0: exactly the newest stamp), otherwise it
fails with :data:`POSE_STALE`.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "POSE_GAP",
    "POSE_INVALID",
    "POSE_MISSING",
    "POSE_REASONS",
    "POSE_STALE",
    "PoseBuffer",
    "PoseLookupError",
    "is_rigid",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "slerp_quaternion",
    "transform_from_ros",
    "transform_to_ros",
]

POSE_MISSING = "pose_missing"
"""Unknown frame, no path between the frames, or no sample on an edge of the path."""
POSE_STALE = "pose_stale"
"""Query newer than the newest sample by more than ``max_age_ns``, or older than the history."""
POSE_GAP = "pose_gap"
"""The two samples bracketing the query are further apart than ``max_gap_ns``."""
POSE_INVALID = "pose_invalid"
"""A sample used by the query is not a finite rigid transform (NaN, scaling, shear, ...)."""
POSE_REASONS = (POSE_MISSING, POSE_STALE, POSE_GAP, POSE_INVALID)

_RIGID_TOL = 1e-3  # max |R^T R - I| and |det R - 1| accepted as rigid (float32 quaternions)
_QUAT_NORM_TOL = 0.01  # like tf2: a quaternion whose norm is off by more is rejected


class PoseLookupError(LookupError):
    """A pose could not be looked up; ``reason`` is one of :data:`POSE_REASONS`.

    Args:
        reason: machine-readable reason (``"pose_missing"``, ``"pose_stale"``, ``"pose_gap"``,
            ``"pose_invalid"``), used to count skipped frames.
        detail: human-readable explanation (frames, stamps).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in POSE_REASONS:
            raise ValueError(f"unknown pose lookup reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


# --------------------------------------------------------------------------- quaternions


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> NDArray[np.float64]:
    """3x3 rotation matrix of the unit quaternion ``(x, y, z, w)`` (normalised first).

    Returns a matrix of NaN if the quaternion is not finite or has zero norm.
    """
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or n < 1e-12:
        return np.full((3, 3), np.nan)
    x, y, z, w = (q / n).tolist()
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: ArrayLike) -> NDArray[np.float64]:
    """Unit quaternion ``(x, y, z, w)`` with ``w >= 0`` of a 3x3 rotation matrix.

    Shepperd's method (numerically stable for all angles); the upper-left 3x3 of a 4x4 is
    accepted too.
    """
    m = np.asarray(R, dtype=np.float64)[:3, :3]
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 0.0))
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 0.0))
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 0.0))
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    out = np.array(q, dtype=np.float64)
    out /= np.linalg.norm(out)
    if out[3] < 0.0:
        out = -out
    return out


def slerp_quaternion(q0: ArrayLike, q1: ArrayLike, alpha: float) -> NDArray[np.float64]:
    """Spherical linear interpolation between unit quaternions ``(x, y, z, w)``.

    ``alpha`` in [0, 1]: 0 gives ``q0``, 1 gives ``q1``; the shorter arc is taken.
    """
    a = np.asarray(q0, dtype=np.float64)
    b = np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(a, b))
    if dot < 0.0:
        b = -b
        dot = -dot
    if dot > 0.9995:  # nearly parallel: normalised lerp is exact enough and stable
        q = a + alpha * (b - a)
        return q / np.linalg.norm(q)
    theta = math.acos(min(dot, 1.0))
    sin_theta = math.sin(theta)
    wa = math.sin((1.0 - alpha) * theta) / sin_theta
    wb = math.sin(alpha * theta) / sin_theta
    return wa * a + wb * b


def is_rigid(T: NDArray[np.float64], tol: float = _RIGID_TOL) -> bool:
    """True if ``T`` (4x4) is finite, its rotation part orthonormal with det +1 (within ``tol``)
    and its last row ``[0, 0, 0, 1]``."""
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    if np.max(np.abs(R.T @ R - np.eye(3))) > tol:
        return False
    if abs(float(np.linalg.det(R)) - 1.0) > tol:
        return False
    return bool(np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9))


def transform_from_ros(
    translation_m: Sequence[float] | ArrayLike, quaternion_xyzw: Sequence[float] | ArrayLike
) -> NDArray[np.float64]:
    """4x4 transform (mm) from a ROS translation in **metres** and a quaternion ``(x, y, z, w)``.

    The quaternion is normalised if its norm is within 1 % of 1 (as tf2 accepts); otherwise
    (or if anything is NaN) the rotation part is NaN so that :func:`is_rigid` rejects it and a
    :class:`PoseBuffer` reports :data:`POSE_INVALID` for lookups that need it.
    """
    t = np.asarray(translation_m, dtype=np.float64).reshape(3)
    q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
    T = np.eye(4)
    n = float(np.linalg.norm(q))
    if math.isfinite(n) and abs(n - 1.0) <= _QUAT_NORM_TOL:
        T[:3, :3] = quaternion_to_matrix(*q.tolist())
    else:
        T[:3, :3] = np.nan
    T[:3, 3] = t * 1000.0
    return T


def transform_to_ros(T: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(translation_m (3,), quaternion_xyzw (4,))`` of a rigid 4x4 transform in mm."""
    M = np.asarray(T, dtype=np.float64)
    return M[:3, 3] / 1000.0, matrix_to_quaternion(M[:3, :3])


def _invert_rigid(T: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of a rigid 4x4 transform (``R^T``, ``-R^T t``)."""
    out = np.eye(4)
    Rt = T[:3, :3].T
    out[:3, :3] = Rt
    out[:3, 3] = -Rt @ T[:3, 3]
    return out


# --------------------------------------------------------------------------- buffer


@dataclass
class _Edge:
    """History of ``T_parent_child`` for one child frame (a frame has one parent)."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    matrices: list[NDArray[np.float64]] = field(default_factory=list)
    quats: list[NDArray[np.float64]] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)


class PoseBuffer:
    """Thread-safe buffer of stamped transforms forming a frame tree, with interpolation.

    Each child frame has exactly one parent (as in tf2); adding ``child`` under a new parent
    replaces its history.  Dynamic edges keep ``max_history_ns`` of samples (relative to the
    newest sample of that edge), may be inserted out of order, and a sample with the same
    stamp replaces the previous one.  Static edges hold a single time-independent transform.
    Non-rigid or NaN samples are stored flagged invalid (a lost tracker is often published
    as NaN) and make every lookup that needs them fail with :data:`POSE_INVALID`.

    Args:
        max_history_ns: history kept per dynamic edge, ns (default 10 s).
    """

    def __init__(self, max_history_ns: int = 10_000_000_000) -> None:
        if max_history_ns <= 0:
            raise ValueError(f"max_history_ns must be > 0, got {max_history_ns}")
        self.max_history_ns = int(max_history_ns)
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing
    def add(
        self,
        parent: str,
        child: str,
        T_parent_child: ArrayLike,
        stamp_ns: int,
        static: bool = False,
    ) -> bool:
        """Add ``T_parent_child`` (4x4 float64, mm; maps child coordinates into parent).

        Args:
            parent: parent frame id.
            child: child frame id (must differ from ``parent``).
            T_parent_child: ``(4, 4)`` transform in mm.
            stamp_ns: sample time, ns (ignored for static edges).
            static: time-independent transform (e.g. a tool -> probe mount).

        Returns:
            True if the sample is a valid rigid transform (it is stored either way).

        Raises:
            ValueError: wrong shape or ``parent == child`` (programming errors).
        """
        T = np.array(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError(f"T_parent_child must be (4, 4), got {T.shape}")
        if not parent or not child or parent == child:
            raise ValueError(f"invalid edge {parent!r} -> {child!r}")
        valid = is_rigid(T)
        quat = matrix_to_quaternion(T[:3, :3]) if valid else np.full(4, np.nan)
        stamp = int(stamp_ns)
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != bool(static):
                edge = _Edge(parent=parent, static=bool(static))
                self._edges[child] = edge
            if static:
                edge.stamps[:] = [stamp]
                edge.matrices[:] = [T]
                edge.quats[:] = [quat]
                edge.valid[:] = [valid]
                return valid
            newest = edge.stamps[-1] if edge.stamps else stamp
            if stamp < newest - self.max_history_ns:
                return valid  # older than the history kept: dropped
            i = bisect.bisect_left(edge.stamps, stamp)
            if i < len(edge.stamps) and edge.stamps[i] == stamp:
                edge.matrices[i], edge.quats[i], edge.valid[i] = T, quat, valid
            else:
                edge.stamps.insert(i, stamp)
                edge.matrices.insert(i, T)
                edge.quats.insert(i, quat)
                edge.valid.insert(i, valid)
            cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.max_history_ns)
            if cut > 0:
                del edge.stamps[:cut], edge.matrices[:cut], edge.quats[:cut], edge.valid[:cut]
        return valid

    def clear(self) -> None:
        """Forget every frame and sample."""
        with self._lock:
            self._edges.clear()

    # ------------------------------------------------------------------ reading
    def frames(self) -> set[str]:
        """All known frame ids (parents and children)."""
        with self._lock:
            return set(self._edges) | {e.parent for e in self._edges.values()}

    def parent_of(self, frame: str) -> str | None:
        """Parent frame id of ``frame``, or None for a root / unknown frame."""
        with self._lock:
            edge = self._edges.get(frame)
            return edge.parent if edge is not None else None

    def newest_stamp_ns(self, parent: str, child: str) -> int | None:
        """Newest sample stamp (ns) of the direct edge ``parent -> child``, or None."""
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or not edge.stamps:
                return None
            return edge.stamps[-1]

    def can_lookup(
        self,
        target: str,
        source: str,
        stamp_ns: int,
        *,
        max_gap_ns: int,
        max_age_ns: int | None = None,
        time_offset_ns: int = 0,
    ) -> bool:
        """True if :meth:`lookup` with the same arguments would succeed."""
        try:
            self.lookup(
                target,
                source,
                stamp_ns,
                max_gap_ns=max_gap_ns,
                max_age_ns=max_age_ns,
                time_offset_ns=time_offset_ns,
            )
        except PoseLookupError:
            return False
        return True

    def lookup(
        self,
        target: str,
        source: str,
        stamp_ns: int,
        *,
        max_gap_ns: int,
        max_age_ns: int | None = None,
        time_offset_ns: int = 0,
    ) -> NDArray[np.float64]:
        """``T_target_source`` (4x4 float64, mm) at time ``stamp_ns + time_offset_ns``.

        Composes along the frame tree through the frames' common ancestor (inverting the
        edges walked from the target side); every dynamic edge is interpolated at the query
        time (linear translation, slerp rotation).

        Args:
            target: frame the result maps into (e.g. ``"world"``).
            source: frame the result maps from (e.g. ``"probe"``).
            stamp_ns: query stamp, ns (e.g. the frame's capture stamp).
            max_gap_ns: largest allowed spacing (ns) of the two samples bracketing the
                query; a larger one (tracker dropout) raises :data:`POSE_GAP`.
            max_age_ns: a query at most this much newer than an edge's newest sample gets
                that newest sample (held, not extrapolated); None or 0 means the query must
                be bracketed or equal the newest stamp.
            time_offset_ns: added to ``stamp_ns`` before the lookup (see module docstring).

        Raises:
            PoseLookupError: with ``reason`` :data:`POSE_MISSING`, :data:`POSE_STALE`,
                :data:`POSE_GAP` or :data:`POSE_INVALID`.
        """
        t = int(stamp_ns) + int(time_offset_ns)
        age = 0 if max_age_ns is None else int(max_age_ns)
        if age < 0 or max_gap_ns < 0:
            raise ValueError("max_gap_ns and max_age_ns must be >= 0")
        with self._lock:
            up_source = self._chain_to_root(source)
            up_target = self._chain_to_root(target)
            if up_source is None or up_target is None:
                unknown = source if up_source is None else target
                raise PoseLookupError(POSE_MISSING, f"unknown frame {unknown!r}")
            # frames on the way up, starting with the frame itself
            path_s = [source, *[self._edges[c].parent for c in up_source]]
            path_t = [target, *[self._edges[c].parent for c in up_target]]
            in_t = {f: i for i, f in enumerate(path_t)}
            common_i = next((i for i, f in enumerate(path_s) if f in in_t), None)
            if common_i is None:
                raise PoseLookupError(
                    POSE_MISSING, f"no path between {target!r} and {source!r} (different trees)"
                )
            common_j = in_t[path_s[common_i]]
            T_anc_source = np.eye(4)
            for child in reversed(path_s[:common_i]):  # ancestor ... -> source
                T_anc_source = T_anc_source @ self._edge_at(child, t, max_gap_ns, age)
            T_anc_target = np.eye(4)
            for child in reversed(path_t[:common_j]):
                T_anc_target = T_anc_target @ self._edge_at(child, t, max_gap_ns, age)
        return _invert_rigid(T_anc_target) @ T_anc_source

    # ------------------------------------------------------------------ internals
    def _chain_to_root(self, frame: str) -> list[str] | None:
        """Child frames of the edges from ``frame`` up to its root (``[]`` for a root), or None
        if ``frame`` is unknown.  Caller holds the lock."""
        known = frame in self._edges or any(e.parent == frame for e in self._edges.values())
        if not known:
            return None
        chain: list[str] = []
        f = frame
        while f in self._edges:
            chain.append(f)
            f = self._edges[f].parent
            if len(chain) > len(self._edges):  # a cycle (re-parenting) cannot be composed
                return None
        return chain

    def _edge_at(self, child: str, t: int, max_gap_ns: int, age: int) -> NDArray[np.float64]:
        """Interpolated ``T_parent_child`` of one edge at ``t`` ns.  Caller holds the lock."""
        e = self._edges[child]
        name = f"{e.parent} -> {child}"
        if not e.stamps:
            raise PoseLookupError(POSE_MISSING, f"no sample for {name}")
        if e.static:
            if not e.valid[0]:
                raise PoseLookupError(POSE_INVALID, f"static {name} is not rigid")
            return e.matrices[0]
        stamps = e.stamps
        newest, oldest = stamps[-1], stamps[0]
        if t >= newest:
            if t - newest > age:
                raise PoseLookupError(
                    POSE_STALE, f"{name}: query {t} ns is {t - newest} ns after newest sample"
                )
            return self._sample(e, len(stamps) - 1, name)
        if t < oldest:
            raise PoseLookupError(
                POSE_STALE, f"{name}: query {t} ns is {oldest - t} ns before the oldest sample"
            )
        i = bisect.bisect_right(stamps, t) - 1  # stamps[i] <= t < stamps[i + 1]
        if stamps[i] == t:
            return self._sample(e, i, name)
        t0, t1 = stamps[i], stamps[i + 1]
        if t1 - t0 > max_gap_ns:
            raise PoseLookupError(
                POSE_GAP, f"{name}: samples around {t} ns are {t1 - t0} ns apart (> {max_gap_ns})"
            )
        if not (e.valid[i] and e.valid[i + 1]):
            raise PoseLookupError(POSE_INVALID, f"{name}: sample around {t} ns is not rigid")
        alpha = (t - t0) / (t1 - t0)
        out = np.eye(4)
        q = slerp_quaternion(e.quats[i], e.quats[i + 1], alpha)
        out[:3, :3] = quaternion_to_matrix(*q.tolist())
        out[:3, 3] = (1.0 - alpha) * e.matrices[i][:3, 3] + alpha * e.matrices[i + 1][:3, 3]
        return out

    @staticmethod
    def _sample(e: _Edge, i: int, name: str) -> NDArray[np.float64]:
        """Stored sample ``i`` of edge ``e``, checked for validity."""
        if not e.valid[i]:
            raise PoseLookupError(POSE_INVALID, f"{name}: sample at {e.stamps[i]} ns is not rigid")
        return e.matrices[i]
