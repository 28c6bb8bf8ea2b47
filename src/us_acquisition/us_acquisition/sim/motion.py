"""Probe trajectories, tracker sampling and frame sampling.

Frames and poses
----------------
``T_phantom_probe`` (``float64 (4, 4)``, mm) maps probe coordinates into the phantom frame
(see :mod:`.phantom` for the phantom axes and :mod:`.bmode` for the probe axes: origin at the
centre of the transducer face, ``x_p`` along the aperture = image columns, ``y_p`` along the
beams = image rows, ``z_p = x_p x y_p`` elevation).

* Transverse orientation (rotation identity): ``x_p = +x`` (image left = patient right),
  ``y_p = +y`` (depth), ``z_p = +z`` (cranial).
* Longitudinal orientation: ``x_p = -z`` (image left = cranial), ``y_p = +y``, ``z_p = +x``.

Probe tilts are applied in the probe frame: ``R = R_base @ Rx(elevation_tilt) @ Ry(roll) @
Rz(in_plane_tilt)`` (rotations about the probe's own axes, through the centre of the face).

Timing convention
-----------------
Trajectory time ``t`` is in seconds from the start of the sweep; timestamps are integer
nanoseconds ``t0_ns + round(t * 1e9)``.

* A **tracker sample** stamped ``t`` holds the (noisy) pose at true time ``t``.
* A **video frame** stamped ``t`` shows the anatomy at the true pose at time
  ``t + video_time_offset_ms / 1000`` (so a video latency of 40 ms is ``video_time_offset_ms =
  -40``: the frame stamped ``t`` was acquired at ``t - 40 ms``).  To attach a tracker pose to a
  frame, interpolate the tracker at ``frame_stamp + offset``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from .phantom import NeckPhantom

__all__ = [
    "FrameSamples",
    "ProbeTrajectory",
    "TrackerSamples",
    "longitudinal_pose",
    "pose_matrix",
    "sample_frames",
    "sample_tracker",
    "transverse_pose",
]

_R_TRANSVERSE = np.eye(3)
_R_LONGITUDINAL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # cols x_p,y_p,z_p


def pose_matrix(R: ArrayLike, t: ArrayLike) -> NDArray[np.float64]:
    """4x4 homogeneous matrix (or ``(N, 4, 4)``) from rotation(s) ``(..., 3, 3)`` and
    translation(s) ``(..., 3)`` mm."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros((*R.shape[:-2], 4, 4))
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def _local_rot(tilts_deg: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation(s) ``Rx(a) @ Ry(b) @ Rz(c)`` for ``(..., 3)`` angles in degrees."""
    return (
        Rotation.from_euler("XYZ", tilts_deg.reshape(-1, 3), degrees=True)
        .as_matrix()
        .reshape((*tilts_deg.shape[:-1], 3, 3))
    )


def transverse_pose(
    x_mm: float,
    z_mm: float,
    y_mm: float = 0.0,
    elevation_tilt_deg: float = 0.0,
    roll_deg: float = 0.0,
    in_plane_tilt_deg: float = 0.0,
) -> NDArray[np.float64]:
    """Transverse ``T_phantom_probe`` with the face centre at ``(x, y, z)`` mm.

    ``elevation_tilt_deg`` rotates about ``x_p`` (rocking the beam cranially for > 0),
    ``roll_deg`` about ``y_p`` (rotation on the skin), ``in_plane_tilt_deg`` about ``z_p``.
    """
    R = _R_TRANSVERSE @ _local_rot(np.array([elevation_tilt_deg, roll_deg, in_plane_tilt_deg]))
    return pose_matrix(R, [x_mm, y_mm, z_mm])


def longitudinal_pose(
    x_mm: float,
    z_mm: float,
    y_mm: float = 0.0,
    elevation_tilt_deg: float = 0.0,
    roll_deg: float = 0.0,
    in_plane_tilt_deg: float = 0.0,
) -> NDArray[np.float64]:
    """Longitudinal (sagittal) ``T_phantom_probe``, image left = cranial; angles as
    :func:`transverse_pose`."""
    R = _R_LONGITUDINAL @ _local_rot(np.array([elevation_tilt_deg, roll_deg, in_plane_tilt_deg]))
    return pose_matrix(R, [x_mm, y_mm, z_mm])


@dataclass
class _SmoothNoise:
    """Deterministic band-limited noise: sum of sinusoids, ``dim`` channels, given RMS."""

    rng: np.random.Generator
    dim: int
    rms: float
    f_lo_hz: float
    f_hi_hz: float
    n_terms: int = 6
    freqs: NDArray[np.float64] = field(init=False)
    phases: NDArray[np.float64] = field(init=False)
    amps: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.freqs = self.rng.uniform(self.f_lo_hz, self.f_hi_hz, size=(self.dim, self.n_terms))
        self.phases = self.rng.uniform(0, 2 * np.pi, size=(self.dim, self.n_terms))
        a = self.rng.uniform(0.5, 1.0, size=(self.dim, self.n_terms))
        # RMS of a sum of sinusoids = sqrt(sum a^2 / 2)
        self.amps = a * self.rms / np.sqrt((a**2).sum(axis=1, keepdims=True) / 2.0)

    def __call__(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Values ``(N, dim)`` at times ``t`` ``(N,)`` s."""
        arg = 2 * np.pi * t[:, None, None] * self.freqs[None] + self.phases[None]
        out: NDArray[np.float64] = (self.amps[None] * np.sin(arg)).sum(axis=2)
        return out


class ProbeTrajectory:
    """A continuous probe motion ``t -> T_phantom_probe(t)``.

    Build with :meth:`freehand_transverse`, :meth:`freehand_longitudinal` or
    :meth:`robot_raster`.  Times outside ``[0, duration_s]`` clamp the nominal path but keep the
    perturbations (tremor) running.

    Args:
        kind: name of the motion (stored in metadata).
        duration_s: sweep duration (s).
        path: ``t (N,) -> (N, 3)`` nominal face-centre positions (mm, phantom frame).
        base: ``"transverse"`` or ``"longitudinal"`` base orientation.
        tilt: ``t (N,) -> (N, 3)`` probe-frame angles (deg): elevation tilt, roll, in-plane.
        jitter: ``t (N,) -> (N, 3)`` additive position perturbation (mm), e.g. tremor.
        info: JSON-serialisable description.
    """

    def __init__(
        self,
        kind: str,
        duration_s: float,
        path: Callable[[NDArray[np.float64]], NDArray[np.float64]],
        base: str = "transverse",
        tilt: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
        jitter: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        if base not in ("transverse", "longitudinal"):
            raise ValueError(f"unknown base orientation {base!r}")
        self.kind = kind
        self.duration_s = float(duration_s)
        self._path = path
        self.base = base
        self._R0 = _R_TRANSVERSE if base == "transverse" else _R_LONGITUDINAL
        self._tilt = tilt
        self._jitter = jitter
        self.info = {"kind": kind, "duration_s": self.duration_s, "base": base, **(info or {})}

    def poses(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """True poses ``float64 (N, 4, 4)`` (probe -> phantom, mm) at times ``t_s`` ``(N,)``."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        pos = self._path(np.clip(t, 0.0, self.duration_s))
        if self._jitter is not None:
            pos = pos + self._jitter(t)
        R = np.broadcast_to(self._R0, (t.size, 3, 3))
        if self._tilt is not None:
            R = R @ _local_rot(self._tilt(t))
        return pose_matrix(R, pos)

    def pose(self, t_s: float) -> NDArray[np.float64]:
        """True pose ``float64 (4, 4)`` at time ``t_s`` (s)."""
        return self.poses(np.array([t_s]))[0]

    # ------------------------------------------------------------------ factories
    @staticmethod
    def _progress(
        rng: np.random.Generator, duration_s: float, speed_variation: float
    ) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
        """Monotone map [0, T] -> [0, 1] whose speed varies smoothly by +-speed_variation."""
        grid = np.linspace(0.0, duration_s, 2001)
        noise = _SmoothNoise(rng, 1, 1.0, 0.15, 0.8, n_terms=4)(grid)[:, 0]
        speed = np.clip(1.0 + speed_variation * noise / 1.4, 0.15, None)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(grid))])
        cum /= cum[-1]

        def f(t: NDArray[np.float64]) -> NDArray[np.float64]:
            out: NDArray[np.float64] = np.interp(t, grid, cum)
            return out

        return f

    @staticmethod
    def _hand(
        rng: np.random.Generator, tremor_mm: float, drift_mm: float, tilt_deg: float
    ) -> tuple[
        Callable[[NDArray[np.float64]], NDArray[np.float64]],
        Callable[[NDArray[np.float64]], NDArray[np.float64]],
    ]:
        """(jitter, tilt) functions of a hand: 8-12 Hz tremor + 0.1-0.7 Hz drift and tilts."""
        tremor = _SmoothNoise(rng, 3, tremor_mm / np.sqrt(3), 8.0, 12.0)
        drift = _SmoothNoise(rng, 3, drift_mm / np.sqrt(3), 0.1, 0.7, n_terms=4)
        press_scale = np.array([1.0, 0.25, 1.0])  # little motion into the skin
        slow_tilt = _SmoothNoise(rng, 3, tilt_deg / np.sqrt(3), 0.1, 0.6, n_terms=4)
        tremor_tilt = _SmoothNoise(rng, 3, 0.15, 8.0, 12.0)
        tilt_bias = rng.uniform(-0.5, 0.5, size=3) * tilt_deg

        def jitter(t: NDArray[np.float64]) -> NDArray[np.float64]:
            out: NDArray[np.float64] = (tremor(t) + drift(t)) * press_scale
            out[:, 1] = np.abs(out[:, 1])  # the face never leaves the skin
            return out

        def tilt(t: NDArray[np.float64]) -> NDArray[np.float64]:
            out: NDArray[np.float64] = slow_tilt(t) + tremor_tilt(t) + tilt_bias
            return out

        return jitter, tilt

    @classmethod
    def freehand_transverse(
        cls,
        phantom: NeckPhantom,
        seed: int = 0,
        duration_s: float = 8.0,
        margin_mm: float = 4.0,
        x_mm: float | None = None,
        tremor_mm: float = 0.2,
        drift_mm: float = 1.5,
        tilt_deg: float = 4.0,
        speed_variation: float = 0.4,
    ) -> ProbeTrajectory:
        """Freehand transverse sweep caudal -> cranial over the whole gland.

        The probe starts ``margin_mm`` caudal to the lower poles and ends ``margin_mm`` cranial
        to the upper poles, centred on ``x_mm`` (default: the midline), with hand tremor
        (``tremor_mm`` RMS, 8-12 Hz), slow drift (``drift_mm`` RMS), tilts (``tilt_deg`` RMS)
        and a smoothly varying speed (+- ``speed_variation``).
        """
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A45]))
        z0, z1 = phantom.landmarks.lobe_z_range_mm
        z0, z1 = z0 - margin_mm, z1 + margin_mm
        xc = 0.0 if x_mm is None else float(x_mm)
        prog = cls._progress(rng, duration_s, speed_variation)
        jitter, tilt = cls._hand(rng, tremor_mm, drift_mm, tilt_deg)

        def path(t: NDArray[np.float64]) -> NDArray[np.float64]:
            s = prog(t)
            return np.stack([np.full_like(s, xc), np.zeros_like(s), z0 + (z1 - z0) * s], axis=1)

        info = dict(
            seed=int(seed),
            z_range_mm=[z0, z1],
            x_mm=xc,
            tremor_mm=tremor_mm,
            drift_mm=drift_mm,
            tilt_deg=tilt_deg,
            speed_variation=speed_variation,
        )
        return cls("freehand_transverse", duration_s, path, "transverse", tilt, jitter, info)

    @classmethod
    def freehand_longitudinal(
        cls,
        phantom: NeckPhantom,
        side: str = "left",
        seed: int = 0,
        duration_s: float = 6.0,
        margin_mm: float = 3.0,
        tremor_mm: float = 0.2,
        drift_mm: float = 1.5,
        tilt_deg: float = 4.0,
        speed_variation: float = 0.4,
    ) -> ProbeTrajectory:
        """Freehand longitudinal sweep across one lobe (``side`` = "left" or "right").

        The probe is held longitudinally (image left = cranial) centred on the lobe's
        craniocaudal centre and moves medial -> lateral across the lobe.
        """
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1046]))
        cx, _, cz = phantom.landmarks.lobe_centre_mm[side]
        hw = 0.5 * phantom.params.lobe_width_mm
        sgn = 1.0 if cx > 0 else -1.0
        x0 = cx - sgn * (hw + margin_mm)
        x1 = cx + sgn * (hw + margin_mm)
        prog = cls._progress(rng, duration_s, speed_variation)
        jitter, tilt = cls._hand(rng, tremor_mm, drift_mm, tilt_deg)

        def path(t: NDArray[np.float64]) -> NDArray[np.float64]:
            s = prog(t)
            return np.stack([x0 + (x1 - x0) * s, np.zeros_like(s), np.full_like(s, cz)], axis=1)

        info = dict(
            seed=int(seed),
            side=side,
            x_range_mm=[x0, x1],
            z_mm=cz,
            tremor_mm=tremor_mm,
            drift_mm=drift_mm,
            tilt_deg=tilt_deg,
            speed_variation=speed_variation,
        )
        return cls("freehand_longitudinal", duration_s, path, "longitudinal", tilt, jitter, info)

    @classmethod
    def robot_raster(
        cls,
        phantom: NeckPhantom,
        n_lines: int = 3,
        line_spacing_mm: float = 12.0,
        speed_mm_s: float = 10.0,
        margin_mm: float = 4.0,
        base: str = "transverse",
    ) -> ProbeTrajectory:
        """Robot raster: parallel straight lines along z (caudal -> cranial, then back, ...)
        at x offsets ``line_spacing_mm`` apart centred on the midline, joined by lateral
        steps; constant speed ``speed_mm_s`` along the whole path; no tremor or tilt."""
        z0, z1 = phantom.landmarks.lobe_z_range_mm
        z0, z1 = z0 - margin_mm, z1 + margin_mm
        xs = (np.arange(n_lines) - (n_lines - 1) / 2.0) * line_spacing_mm
        pts = []
        for i, x in enumerate(xs):
            za, zb = (z0, z1) if i % 2 == 0 else (z1, z0)
            pts += [(x, 0.0, za), (x, 0.0, zb)]
        way = np.asarray(pts)
        seg = np.linalg.norm(np.diff(way, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        duration = float(arc[-1] / speed_mm_s)

        def path(t: NDArray[np.float64]) -> NDArray[np.float64]:
            s = t * speed_mm_s
            return np.stack([np.interp(s, arc, way[:, k]) for k in range(3)], axis=1)

        info = dict(
            n_lines=n_lines,
            line_spacing_mm=line_spacing_mm,
            speed_mm_s=speed_mm_s,
            waypoints_mm=way.tolist(),
        )
        return cls("robot_raster", duration, path, base, None, None, info)


@dataclass
class TrackerSamples:
    """Tracker output: ``timestamps_ns`` int64 ``(N,)``; ``T_phantom_probe`` float64
    ``(N, 4, 4)`` measured poses (true pose at the stamp, plus noise)."""

    timestamps_ns: NDArray[np.int64]
    T_phantom_probe: NDArray[np.float64]


@dataclass
class FrameSamples:
    """Video frame timing: ``timestamps_ns`` int64 ``(N,)`` frame stamps; ``T_phantom_probe_true``
    float64 ``(N, 4, 4)``: the true pose each frame shows (at stamp + video offset)."""

    timestamps_ns: NDArray[np.int64]
    T_phantom_probe_true: NDArray[np.float64]
    time_offset_ms: float = 0.0


def _stamps(
    rate_hz: float, duration_s: float, t0_ns: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    n = int(np.floor(duration_s * rate_hz + 1e-9)) + 1
    t = np.arange(n, dtype=np.float64) / rate_hz
    return t, int(t0_ns) + np.rint(t * 1e9).astype(np.int64)


def add_tracker_noise(
    T: NDArray[np.float64], rng: np.random.Generator, noise_mm: float, noise_deg: float
) -> NDArray[np.float64]:
    """Tracker measurement noise on poses ``T`` ``(N, 4, 4)``, in place (returned).

    A rotation about the probe origin with rotation vector ``N(0, noise_deg)`` per axis
    (probe frame), then a translation ``N(0, noise_mm)`` per axis (phantom frame).
    """
    n = T.shape[0]
    if noise_deg > 0:
        dR = Rotation.from_rotvec(rng.normal(0.0, noise_deg, size=(n, 3)), degrees=True)
        T[:, :3, :3] = T[:, :3, :3] @ dR.as_matrix()
    if noise_mm > 0:
        T[:, :3, 3] += rng.normal(0.0, noise_mm, size=(n, 3))
    return T


def sample_tracker(
    trajectory: ProbeTrajectory,
    rate_hz: float = 120.0,
    noise_mm: float = 0.1,
    noise_deg: float = 0.1,
    seed: int = 0,
    t0_ns: int = 0,
    duration_s: float | None = None,
) -> TrackerSamples:
    """Tracker samples at ``rate_hz`` over ``[0, duration]`` (default the trajectory's).

    Noise: translation ``N(0, noise_mm)`` per axis (phantom frame) and a rotation about the
    probe origin with rotation vector ``N(0, noise_deg)`` per axis (probe frame).
    """
    dur = trajectory.duration_s if duration_s is None else float(duration_s)
    t, ns = _stamps(rate_hz, dur, t0_ns)
    T = trajectory.poses(t)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7CA4]))
    return TrackerSamples(ns, add_tracker_noise(T, rng, noise_mm, noise_deg))


def sample_frames(
    trajectory: ProbeTrajectory,
    fps: float = 30.0,
    time_offset_ms: float = 0.0,
    t0_ns: int = 0,
    duration_s: float | None = None,
) -> FrameSamples:
    """Frame stamps at ``fps`` over ``[0, duration]``; the frame stamped ``t`` shows the true
    pose at ``t + time_offset_ms / 1000`` (see the module docstring)."""
    dur = trajectory.duration_s if duration_s is None else float(duration_s)
    t, ns = _stamps(fps, dur, t0_ns)
    return FrameSamples(ns, trajectory.poses(t + time_offset_ms / 1000.0), float(time_offset_ms))
