"""The built-in tracked-probe simulator as a frame source (``source: sim``).

A neck phantom from ``seed`` is swept by a probe (freehand transverse or longitudinal, or
a robot raster), back and forth while ``loop`` is on. Every frame carries:

* the B-mode image at the true pose of time ``t + time_offset_ms`` (the frame is stamped
  ``t``; see docs/simulator.md), and its exact label image (ground truth);
* the tracker samples taken since the previous frame, at ``tracker_rate_hz`` with noise:
  ``ProbeToTracker`` transforms (T_tracker_probe, mm; the tracker frame is the phantom
  frame) stamped on the tracker's own clock, which the node publishes on TF.

Timestamps are wall-clock (CLOCK_REALTIME) of the simulated capture: ``t0 + t``.

With ``realtime`` the source behaves like a grabber with a queue of ``queue_frames``
captured frames (the GStreamer grabbers' appsink keeps 2): a frame captured at ``t0 + t``
is rendered and delivered with that stamp even when the reader comes late, until more than
``queue_frames`` frames are waiting; then the oldest are lost and counted in
``stats.dropped``, as a grabber's full queue loses them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from us_frame_channel import PixelFormat

from ..sim import BModeParams, BModeSimulator, NeckPhantom, ProbeTrajectory
from ..sim.motion import add_tracker_noise
from .base import EndOfStream, FrameSource, SourceError, SourceFrame, SourceInfo, TrackedTransform

SWEEPS = ("transverse", "longitudinal", "raster")


class SimulatorSource(FrameSource):
    """Live simulated tracked sweep; see the module docstring."""

    def __init__(
        self,
        *,
        seed: int = 1,
        sweep: str = "transverse",
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        pixel_format: str = "mono8",
        realtime: bool = True,
        loop: bool = True,
        tracker_rate_hz: float = 120.0,
        time_offset_ms: float = 0.0,
        tracker_noise_mm: float = 0.1,
        tracker_noise_deg: float = 0.1,
        sweep_duration_s: float = 8.0,
        phantom_spacing_mm: float = 0.25,
        queue_frames: int = 2,
    ) -> None:
        super().__init__()
        if sweep not in SWEEPS:
            raise SourceError(f"sim_sweep must be one of {', '.join(SWEEPS)}, got {sweep!r}")
        try:
            self.pixel_format = PixelFormat.parse(pixel_format)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if self.pixel_format not in (
            PixelFormat.MONO8,
            PixelFormat.UYVY,
            PixelFormat.BGR8,
            PixelFormat.BGRA8,
        ):
            raise SourceError(
                f"the simulator delivers mono8, uyvy, bgr8 or bgra8, not {pixel_format}"
            )
        if not 0.1 <= fps <= 240 or not 1 <= tracker_rate_hz <= 1000:
            raise SourceError(f"sim fps {fps} or tracker rate {tracker_rate_hz} Hz out of range")
        self.seed, self.sweep = int(seed), sweep
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.realtime, self.loop = realtime, loop
        self.tracker_rate_hz, self.time_offset_ms = float(tracker_rate_hz), float(time_offset_ms)
        self.noise_mm, self.noise_deg = float(tracker_noise_mm), float(tracker_noise_deg)
        self.sweep_duration_s = float(sweep_duration_s)
        if not 1 <= int(queue_frames) <= 64:
            raise SourceError(f"sim queue_frames must be 1..64, got {queue_frames}")
        self.queue_frames = int(queue_frames)
        self.phantom_spacing_mm = float(phantom_spacing_mm)
        self.phantom: NeckPhantom | None = None
        self.simulator: BModeSimulator | None = None
        self.trajectory: ProbeTrajectory | None = None
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x51AC]))
        self._index = 0
        self._tracker_index = 0
        self._t0_wall_ns = 0
        self._t0_mono = -1.0

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> SimulatorSource:
        return cls(
            seed=p.get("sim_seed", 1),
            sweep=p.get("sim_sweep", "transverse"),
            width=p["width"],
            height=p["height"],
            fps=p["fps"],
            pixel_format=p["pixel_format"],
            realtime=p["realtime"],
            loop=p["loop"],
            tracker_rate_hz=p.get("sim_tracker_rate_hz", 120.0),
            time_offset_ms=p.get("sim_time_offset_ms", 0.0),
            queue_frames=p.get("sim_queue_frames", 2),
        )

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> SourceInfo:
        screen = self.width >= 1280
        try:
            self.phantom = NeckPhantom.from_seed(self.seed, spacing_mm=self.phantom_spacing_mm)
            if screen:
                bp = BModeParams(screen=True, screen_size_px=(self.width, self.height))
            else:
                bp = BModeParams(width_px=self.width, height_px=self.height)
            self.simulator = BModeSimulator(self.phantom, bp, seed=self.seed)
        except (ValueError, MemoryError) as exc:
            raise SourceError(
                f"simulator set-up failed for {self.width}x{self.height}: {exc}"
            ) from None
        if self.sweep == "transverse":
            traj = ProbeTrajectory.freehand_transverse(
                self.phantom, seed=self.seed, duration_s=self.sweep_duration_s
            )
        elif self.sweep == "longitudinal":
            traj = ProbeTrajectory.freehand_longitudinal(
                self.phantom, side="right", seed=self.seed, duration_s=self.sweep_duration_s
            )
        else:
            traj = ProbeTrajectory.robot_raster(self.phantom)
        self.trajectory = traj
        self._index = self._tracker_index = 0
        self._t0_mono = -1.0
        roi = self.simulator.roi
        return SourceInfo(
            width=self.width,
            height=self.height,
            pixel_format=self.pixel_format,
            nominal_fps=self.fps,
            description=(
                f"simulator: phantom seed {self.seed} "
                f"({self.phantom.thyroid_volume_ml:.2f} mL thyroid), {self.sweep} sweep, "
                f"{self.width}x{self.height} {self.pixel_format.label} {self.fps:g} fps"
            ),
            transform_names=("ProbeToTracker",),
            extra={
                "roi": list(roi) if screen else None,
                "thyroid_volume_ml": self.phantom.thyroid_volume_ml,
                "pixel_spacing_mm": list(self.simulator.pixel_spacing_mm),
                "T_probe_image": self.simulator.T_probe_image().tolist(),
                "sweep_duration_s": traj.duration_s,
            },
        )

    def close(self) -> None:
        self.simulator = None
        self.phantom = None

    # -- frames ----------------------------------------------------------------------------
    def _sweep_time(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Back and forth over the sweep: a continuous path for endless streaming."""
        assert self.trajectory is not None
        d = self.trajectory.duration_s
        if not self.loop:
            return t
        phase = np.mod(t, 2 * d)
        return np.where(phase <= d, phase, 2 * d - phase)

    def _true_poses(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        assert self.trajectory is not None
        return self.trajectory.poses(self._sweep_time(t))

    def read(self, timeout_s: float) -> SourceFrame | None:
        sim, traj = self.simulator, self.trajectory
        if sim is None or traj is None:
            raise SourceError("simulator source is not open")
        t = self._index / self.fps
        if not self.loop and t > traj.duration_s:
            raise EndOfStream
        now = time.monotonic()
        if self._t0_mono < 0 or (self.realtime and now - (self._t0_mono + t) > 1.0):
            if self._t0_mono < 0:
                self._t0_wall_ns = time.time_ns()
            self._t0_mono = now - t  # first read, or resumed after a pause
        if self.realtime:
            due = self._t0_mono + t
            if due - now > timeout_s:
                time.sleep(max(0.0, timeout_s))
                return None
            if due > now:
                time.sleep(due - now)
            else:
                # frames captured by now, from this one on; a grabber's queue holds the
                # newest queue_frames of them and has lost the older ones
                waiting = int((now - due) * self.fps) + 1
                lost = waiting - self.queue_frames
                if lost > 0:
                    self.stats.dropped += lost
                    self._index += lost
                    t = self._index / self.fps
        self._index += 1
        pose = self._true_poses(np.array([t + self.time_offset_ms / 1000.0]))[0]
        frame = sim.render(pose)
        stamp = self._t0_wall_ns + round(t * 1e9)
        self.stats.delivered += 1
        return SourceFrame(
            image=self._convert(frame.image),
            pixel_format=self.pixel_format,
            host_timestamp_ns=stamp,
            device_timestamp_ns=round(t * 1e9),
            transforms=self._tracker_samples(t),
            labels=frame.labels,
            spacing_mm=tuple(frame.pixel_spacing_mm),  # type: ignore[arg-type]
        )

    def _tracker_samples(self, t_frame: float) -> list[TrackedTransform]:
        """Tracker samples with stamps in (previous frame, this frame]: poses + noise."""
        k_end = int(np.floor(t_frame * self.tracker_rate_hz + 1e-9))
        if k_end < self._tracker_index:
            return []
        ks = np.arange(self._tracker_index, k_end + 1)
        self._tracker_index = k_end + 1
        ts = ks / self.tracker_rate_hz
        T = add_tracker_noise(self._true_poses(ts), self._rng, self.noise_mm, self.noise_deg)
        return [
            TrackedTransform(
                "probe",
                "tracker",
                T[i],
                True,
                self._t0_wall_ns + round(float(ts[i]) * 1e9),
                name="ProbeToTracker",
            )
            for i in range(ts.size)
        ]

    def _convert(self, img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        fmt = self.pixel_format
        if fmt is PixelFormat.MONO8:
            return img
        if fmt is PixelFormat.UYVY:
            out = np.empty((*img.shape, 2), np.uint8)
            out[..., 0] = 128
            out[..., 1] = img
            return out
        channels = 3 if fmt is PixelFormat.BGR8 else 4
        out = np.empty((*img.shape, channels), np.uint8)
        out[..., :3] = img[..., None]
        if channels == 4:
            out[..., 3] = 255
        return out
