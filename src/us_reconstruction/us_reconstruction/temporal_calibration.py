"""Video-to-tracker temporal calibration from a freehand sweep.

Pure numpy/scipy, no rclpy.

Sign convention
---------------
``offset_ms > 0`` means the **video lags the tracker**: the frame stamped ``t`` was captured
at ``t - offset``.  To attach the right pose to a frame, look the tracker up at
``stamp - offset``, i.e. ``PoseBuffer.lookup(..., time_offset_ns=-offset_ns)`` (see
:func:`lookup_time_offset_ns`).  This is the negative of the simulator's
``video_time_offset_ms`` (``sim_time_offset_ms``), which states the pose a frame shows
relative to its stamp (a 40 ms video latency is ``sim_time_offset_ms = -40`` and is
estimated here as ``offset_ms = +40``).

Method
------
1. **Image motion** (video): each frame is block-averaged into speckle-suppressed
   thumbnails (``block_px``; default three scales, ~160, ~64 and ~20 px wide) and the mean
   absolute difference between consecutive frames is taken (z-scored and averaged over the
   scales), stamped at the midpoint of the two frames.  It rises with the probe's speed
   (speckle decorrelates with elevational motion, new anatomy enters the plane, in-plane
   content shifts).
2. **Probe motion** (tracker): the probe position is interpolated from the tracker samples and
   the displacement over one frame interval, ``|p(t + dt/2) - p(t - dt/2)| / dt`` (mm/s), is
   the probe speed at ``t`` -- the same differencing as the video signal.  For a lag
   ``tau`` it is evaluated at the video signal's own instants shifted by ``tau``, so both
   signals have the same sampling (hand tremor at 8-12 Hz aliases identically at 30 fps).
3. Both signals are resampled on a common uniform grid (``grid_hz``), smoothed with the same
   Gaussian (``smooth_ms``), and for every lag ``tau`` in ``[-max_lag, +max_lag]`` (steps of
   ``1 / grid_hz``) the Pearson correlation of ``video(t)`` with ``probe(t - tau)`` over the
   overlap is computed; the video signal equals the probe signal delayed by the video lag,
   so the peak is at ``tau = offset``.  The peak is refined to sub-sample precision by a
   parabola through the best lag and its two neighbours.  ``score`` is the correlation at
   the peak (1 = perfect); :attr:`TemporalCalibrationResult.reliable` flags weak peaks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "TemporalCalibrationResult",
    "estimate_time_offset",
    "image_motion_signal",
    "lookup_time_offset_ns",
    "main",
    "probe_speed_signal",
]


@dataclass
class TemporalCalibrationResult:
    """Result of :func:`estimate_time_offset`.

    Attributes:
        offset_ms: video lag behind the tracker (ms); > 0: frame stamped ``t`` was captured
            at ``t - offset_ms``.
        score: Pearson correlation of the two motion signals at the peak (-1..1).
        lags_ms: ``(K,)`` lags evaluated (ms).
        correlation: ``(K,)`` correlation at each lag.
        n_frames: frames used.
        at_window_edge: True if the peak is the first or last lag (offset may be outside the
            searched window; the value is then not trustworthy).
        second_peak: the highest other local maximum of the correlation more than 30 ms
            away from the peak (``-1`` if none); close to ``score`` = ambiguous.
    """

    offset_ms: float
    score: float
    lags_ms: NDArray[np.float64]
    correlation: NDArray[np.float64]
    n_frames: int
    at_window_edge: bool
    second_peak: float = -1.0

    @property
    def reliable(self) -> bool:
        """Heuristic trust flag: peak inside the window and correlation >= 0.3.  On simulated
        30 fps sweeps (640x480 and 128x96) every estimate scoring >= 0.3 was within 10 ms;
        the failures seen (off by 25-200 ms) scored 0.22-0.26.  Not validated at other
        frame rates."""
        return not self.at_window_edge and self.score >= 0.3

    def as_dict(self) -> dict[str, float | int | bool]:
        """JSON-friendly summary (without the correlation curve)."""
        return {
            "offset_ms": round(self.offset_ms, 3),
            "score": round(self.score, 4),
            "n_frames": self.n_frames,
            "at_window_edge": self.at_window_edge,
            "second_peak": round(self.second_peak, 4),
            "reliable": self.reliable,
            "lookup_time_offset_ns": lookup_time_offset_ns(self.offset_ms),
        }


def lookup_time_offset_ns(offset_ms: float) -> int:
    """``time_offset_ns`` for :meth:`us_acquisition.poses.PoseBuffer.lookup` that corrects a
    video lag of ``offset_ms`` (the pose is taken at ``stamp - offset``)."""
    return -round(offset_ms * 1e6)


def _default_blocks(width_px: int) -> tuple[int, ...]:
    """Block sizes (px) giving thumbnails ~160, ~64 and ~20 px wide."""
    return tuple(sorted({max(1, round(width_px / d)) for d in (160, 64, 20)}))


def image_motion_signal(
    frames: NDArray[np.generic],
    stamps_ns: ArrayLike,
    block_px: int | Sequence[int] | None = None,
    frame_step: int = 1,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Frame-to-frame image change of a sweep.

    Each frame is block-averaged into a thumbnail (suppresses speckle) and the mean absolute
    difference of consecutive thumbnails is taken.  With several block sizes the z-scored
    signals of all scales are averaged (fine scales follow speckle decorrelation, coarse
    ones the anatomy; one scale alone was less robust on simulated sweeps).

    Args:
        frames: ``(N, H, W)`` grey frames (any numeric dtype; colour ``(N, H, W, C)`` is
            averaged over channels).
        stamps_ns: ``(N,)`` frame stamps (ns), increasing.
        block_px: block size(s) in px; None: thumbnails ~160, ~64 and ~20 px wide.
        frame_step: compare frame ``k`` with frame ``k + frame_step``.

    Returns:
        ``(times_s (N-m,), signal (N-m,))`` with ``m = frame_step``: midpoints of the compared
        frames (s, same clock as the stamps) and the image change (dimensionless; grey
        levels for a single block size).
    """
    f = np.asarray(frames)
    if f.ndim == 4:
        f = f.mean(axis=3)
    if f.ndim != 3 or len(f) < 3:
        raise ValueError(f"need (N >= 3, H, W) frames, got shape {f.shape}")
    t = np.asarray(stamps_ns, dtype=np.int64)
    if t.shape != (len(f),) or np.any(np.diff(t) <= 0):
        raise ValueError("stamps_ns must be (N,) and strictly increasing")
    n, h, w = f.shape
    m = int(frame_step)
    if not 1 <= m <= n - 2:
        raise ValueError(f"frame_step must be in 1..{n - 2}, got {frame_step}")
    if block_px is None:
        blocks: tuple[int, ...] = _default_blocks(w)
    elif isinstance(block_px, int):
        blocks = (block_px,)
    else:
        blocks = tuple(int(b) for b in block_px)
    signals = []
    for b in blocks:
        b = max(1, min(b, h, w))
        hb, wb = h // b, w // b
        th = f[:, : hb * b, : wb * b].astype(np.float32).reshape(n, hb, b, wb, b).mean((2, 4))
        signals.append(np.abs(th[m:] - th[:-m]).mean(axis=(1, 2)).astype(np.float64))
    signal = signals[0] if len(signals) == 1 else np.mean([_normalise(x) for x in signals], 0)
    ts = t.astype(np.float64) * 1e-9
    return 0.5 * (ts[m:] + ts[:-m]), signal


def probe_speed_signal(
    stamps_ns: ArrayLike,
    T_tracker_probe: NDArray[np.float64],
    times_s: ArrayLike,
    interval_s: float,
    valid: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Probe speed (mm/s) at ``times_s`` from tracker poses: ``|p(t + dt/2) - p(t - dt/2)| / dt``.

    Args:
        stamps_ns: ``(M,)`` tracker stamps (ns), increasing.
        T_tracker_probe: ``(M, 4, 4)`` poses (probe -> tracker, mm); only the translation is
            used (the probe face's speed).
        times_s: ``(K,)`` query times (s, same clock as ``stamps_ns * 1e-9``).
        interval_s: differencing interval ``dt`` (s), e.g. the frame interval.
        valid: optional ``(M,)`` bool; invalid samples are dropped before interpolation.
    """
    t = np.asarray(stamps_ns, dtype=np.int64).astype(np.float64) * 1e-9
    pos = np.asarray(T_tracker_probe, dtype=np.float64)[:, :3, 3]
    keep = np.isfinite(pos).all(axis=1)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    t, pos = t[keep], pos[keep]
    if len(t) < 3:
        raise ValueError("need at least 3 valid tracker samples")
    q = np.asarray(times_s, dtype=np.float64)
    half = 0.5 * float(interval_s)
    a = np.stack([np.interp(q - half, t, pos[:, i]) for i in range(3)], axis=1)
    b = np.stack([np.interp(q + half, t, pos[:, i]) for i in range(3)], axis=1)
    out: NDArray[np.float64] = np.linalg.norm(b - a, axis=1) / float(interval_s)
    return out


def _normalise(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Zero mean, unit standard deviation (zeros if constant)."""
    d = x - x.mean()
    s = float(d.std())
    out: NDArray[np.float64] = d / s if s > 0 else d
    return out


def estimate_time_offset(
    frame_stamps_ns: ArrayLike,
    frames: NDArray[np.generic],
    tracker_stamps_ns: ArrayLike,
    T_tracker_probe: NDArray[np.float64],
    *,
    max_lag_ms: float = 250.0,
    grid_hz: float = 200.0,
    smooth_ms: float = 15.0,
    block_px: int | Sequence[int] | None = None,
    frame_step: int = 1,
    tracker_valid: ArrayLike | None = None,
) -> TemporalCalibrationResult:
    """Estimate the video-to-tracker time offset of a sweep (see the module docstring).

    Args:
        frame_stamps_ns: ``(N,)`` frame stamps (ns).
        frames: ``(N, H, W)`` frames.
        tracker_stamps_ns: ``(M,)`` tracker stamps (ns), same clock as the frames.
        T_tracker_probe: ``(M, 4, 4)`` probe poses (probe -> tracker, mm).
        max_lag_ms: the offset is searched in ``[-max_lag_ms, +max_lag_ms]``.
        grid_hz: rate of the common resampling grid (lag resolution before refinement).
        smooth_ms: sigma (ms) of the Gaussian applied to both signals on the grid.
        block_px: speckle-suppressing block average(s) of the frames (px); None: three
            scales (thumbnails ~160, ~64, ~20 px wide).
        frame_step: compare frames ``k`` and ``k + frame_step`` (larger = more anatomy
            change per comparison, less temporal detail).
        tracker_valid: optional ``(M,)`` bool validity of the tracker samples.

    Returns:
        :class:`TemporalCalibrationResult` (``offset_ms > 0``: video lags the tracker).

    Raises:
        ValueError: too few frames/samples or too little overlap for the lag window.
    """
    fstamps = np.asarray(frame_stamps_ns, dtype=np.int64)
    tstamps = np.asarray(tracker_stamps_ns, dtype=np.int64)
    if len(tstamps) < 3 or len(tstamps) != len(T_tracker_probe):
        raise ValueError("tracker stamps and poses must have the same length >= 3")
    t0 = int(min(fstamps[0], tstamps[0]))  # common clock origin keeps float64 precision
    vt, vsig = image_motion_signal(frames, fstamps - t0, block_px, frame_step)
    dt_frame = float(np.median(np.diff(fstamps))) * 1e-9 * int(frame_step)
    lag_s = float(max_lag_ms) * 1e-3
    step = 1.0 / float(grid_hz)
    # grid where the video signal exists and the tracker exists at every shifted time
    ts_tr = (tstamps - t0).astype(np.float64) * 1e-9
    lo = max(vt[0], ts_tr[0] + lag_s + dt_frame)
    hi = min(vt[-1], ts_tr[-1] - lag_s - dt_frame)
    if hi - lo < 4 * lag_s or hi - lo < 1.0:
        raise ValueError(
            f"only {max(hi - lo, 0.0):.2f} s of overlap between video and tracker for a "
            f"+-{max_lag_ms:g} ms lag window; record a longer sweep or reduce max_lag_ms"
        )
    grid = np.arange(lo, hi, step)
    sigma = float(smooth_ms) * 1e-3 * float(grid_hz)
    video = ndimage.gaussian_filter1d(np.interp(grid, vt, vsig), sigma, mode="nearest")
    video = _normalise(video)
    n_lag = int(np.floor(lag_s * grid_hz + 1e-9))
    lags = np.arange(-n_lag, n_lag + 1) * step
    # the probe signal is sampled at the same instants as the video signal (frame midpoints,
    # shifted by the lag) and resampled onto the grid the same way, so that both carry the
    # same sampling (aliasing of fast tremor) and interpolation artefacts
    i0 = max(int(np.searchsorted(vt, lo)) - 1, 0)
    i1 = min(int(np.searchsorted(vt, hi)) + 1, len(vt) - 1)
    vt_in = vt[i0 : i1 + 1]  # the frame midpoints the grid interpolates between
    corr = np.empty(len(lags))
    for k, tau in enumerate(lags):
        speed = probe_speed_signal(
            tstamps - t0, T_tracker_probe, vt_in - tau, dt_frame, tracker_valid
        )
        shifted = ndimage.gaussian_filter1d(np.interp(grid, vt_in, speed), sigma, mode="nearest")
        corr[k] = float(np.mean(video * _normalise(shifted)))
    best = int(np.argmax(corr))
    frac = 0.0
    if 0 < best < len(lags) - 1:
        ym, y0, yp = corr[best - 1], corr[best], corr[best + 1]
        denom = ym - 2.0 * y0 + yp
        if denom < 0.0:
            frac = float(np.clip(0.5 * (ym - yp) / denom, -0.5, 0.5))
    offset_s = float(lags[best] + frac * step)
    local_max = [
        i
        for i in range(1, len(corr) - 1)
        if corr[i] >= corr[i - 1] and corr[i] >= corr[i + 1] and abs(lags[i] - lags[best]) > 0.03
    ]
    second = max((float(corr[i]) for i in local_max), default=-1.0)
    return TemporalCalibrationResult(
        offset_ms=offset_s * 1e3,
        score=float(corr[best]),
        lags_ms=np.asarray(lags * 1e3, dtype=np.float64),
        correlation=corr,
        n_frames=len(fstamps),
        at_window_edge=best in (0, len(lags) - 1),
        second_peak=second,
    )


# --------------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="us-temporal-calibration",
        description=(
            "Estimate the video-to-tracker time offset of a tracked freehand sweep stored as a "
            "PLUS/Slicer sequence file (.seq.mha, .igs.mha, .seq.nrrd, .igs.nrrd). "
            "Prints JSON; offset_ms > 0 means the video lags the tracker (the frame stamped "
            "t was captured at t - offset_ms)."
        ),
    )
    ap.add_argument("sequence", help="sequence file with frames and a probe transform")
    ap.add_argument(
        "--transform",
        default="ProbeToTracker",
        help="per-frame transform holding the probe pose (default ProbeToTracker; "
        "ProbeToReference also works)",
    )
    ap.add_argument("--max-lag-ms", type=float, default=250.0, help="search window (ms)")
    ap.add_argument("--smooth-ms", type=float, default=15.0, help="signal smoothing sigma (ms)")
    ap.add_argument(
        "--block-px",
        type=int,
        action="append",
        default=None,
        help="speckle block average (px), repeatable; default: W/160, W/64 and W/20",
    )
    ap.add_argument("--out", help="also write the result (with the correlation curve) here")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``us-temporal-calibration SEQUENCE [--transform ProbeToTracker] [--max-lag-ms 250]``.

    In a PLUS sequence every frame carries the tracker pose at that frame's timestamp, so the
    poses are used as tracker samples at the frame stamps.  Returns the exit code (0 ok,
    2 bad input).
    """
    args = _parse_args(argv)
    from us_acquisition.sequence_io import SequenceFileError, read_sequence

    try:
        seq = read_sequence(args.sequence)
    except (OSError, SequenceFileError) as exc:
        print(f"us-temporal-calibration: {exc}", file=sys.stderr)
        return 2
    if args.transform not in seq.transforms:
        have = ", ".join(seq.transform_names) or "none"
        print(
            f"us-temporal-calibration: {args.sequence}: no {args.transform}Transform "
            f"(transforms: {have})",
            file=sys.stderr,
        )
        return 2
    assert seq.image_valid is not None
    ok = seq.image_valid
    stamps = np.rint(seq.timestamps_s * 1e9).astype(np.int64)
    frames = seq.frames
    try:
        res = estimate_time_offset(
            stamps[ok],
            frames[ok],
            stamps,
            seq.transforms[args.transform],
            max_lag_ms=args.max_lag_ms,
            smooth_ms=args.smooth_ms,
            block_px=args.block_px,
            tracker_valid=seq.transform_status[args.transform],
        )
    except ValueError as exc:
        print(f"us-temporal-calibration: {args.sequence}: {exc}", file=sys.stderr)
        return 2
    summary = {"sequence": str(args.sequence), "transform": args.transform, **res.as_dict()}
    print(json.dumps(summary))
    if args.out:
        full = {
            **summary,
            "lags_ms": [round(float(v), 3) for v in res.lags_ms],
            "correlation": [round(float(v), 5) for v in res.correlation],
        }
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(full, f, indent=1)
    if res.at_window_edge:
        print(
            "us-temporal-calibration: warning: the peak is at the edge of the lag window; "
            "increase --max-lag-ms",
            file=sys.stderr,
        )
    elif not res.reliable:
        print(
            f"us-temporal-calibration: warning: weak correlation (score {res.score:.2f} < "
            "0.3); record a sweep with more speed changes (accelerate, stop, reverse) and "
            "check the result",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
