"""Simulated tracked sweeps, ``.npz`` ground truth and the dataset CLI.

CLI::

    python -m us_acquisition.sim.dataset --out DIR --phantoms M --sweeps-per-phantom N \\
        --seed S [--size 640x480] [--frames-per-sweep K] [--spacing 0.25]

Layout of ``DIR``::

    dataset.json                     arguments, seeds, split fractions
    splits.json                      {"train": [...], "validation": [...], "test": [...]} of
                                     phantom ids, plus "files": {phantom id: [sweep files]}
    phantom_000/phantom.npz          label volume + spacing + origin + thyroid volume
    phantom_000/sweep_00.npz         one sweep (see :func:`write_sweep_npz`)

Splits are by phantom (no phantom appears in two splits).  Everything is a deterministic
function of ``--seed`` (phantom ``i`` uses seed ``S * 1000 + i``; sweep ``j`` of phantom ``i``
uses seed ``(S * 1000 + i) * 100 + j``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .bmode import BModeParams, BModeSimulator
from .motion import (
    FrameSamples,
    ProbeTrajectory,
    TrackerSamples,
    sample_frames,
    sample_tracker,
)
from .phantom import NeckPhantom

__all__ = [
    "SWEEP_KINDS",
    "Sweep",
    "load_sweep_npz",
    "main",
    "make_trajectory",
    "simulate_sweep",
    "write_phantom_npz",
    "write_sweep_npz",
]

#: Sweep kinds cycled through by the CLI (sweep j uses ``SWEEP_KINDS[j % 4]``).
SWEEP_KINDS = (
    "freehand_transverse",
    "freehand_longitudinal_left",
    "freehand_longitudinal_right",
    "robot_raster",
)


@dataclass
class Sweep:
    """A simulated sweep.

    Attributes:
        images: ``uint8 (N, H, W)`` B-mode frames.
        labels: ``uint8 (N, H, W)`` aligned :class:`~.phantom.Tissue` label images.
        frames: frame stamps (ns) and the true pose shown by each frame.
        tracker: tracker stamps (ns) and noisy poses.
        pixel_spacing_mm: ``(sx, sy)`` mm / pixel.
        roi: ``(x, y, w, h)`` image region in pixels.
        metadata: JSON-serialisable description (seeds, params, conventions).
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    frames: FrameSamples
    tracker: TrackerSamples
    pixel_spacing_mm: tuple[float, float]
    roi: tuple[int, int, int, int]
    metadata: dict[str, Any]


def make_trajectory(kind: str, phantom: NeckPhantom, seed: int) -> ProbeTrajectory:
    """Trajectory of one of :data:`SWEEP_KINDS` for ``phantom``."""
    if kind == "freehand_transverse":
        return ProbeTrajectory.freehand_transverse(phantom, seed=seed)
    if kind == "freehand_longitudinal_left":
        return ProbeTrajectory.freehand_longitudinal(phantom, side="left", seed=seed)
    if kind == "freehand_longitudinal_right":
        return ProbeTrajectory.freehand_longitudinal(phantom, side="right", seed=seed)
    if kind == "robot_raster":
        return ProbeTrajectory.robot_raster(phantom, n_lines=3, speed_mm_s=12.0)
    raise ValueError(f"unknown sweep kind {kind!r}")


def simulate_sweep(
    phantom: NeckPhantom,
    simulator: BModeSimulator,
    trajectory: ProbeTrajectory,
    fps: float = 30.0,
    n_frames: int | None = None,
    tracker_rate_hz: float = 120.0,
    tracker_noise_mm: float = 0.1,
    tracker_noise_deg: float = 0.1,
    time_offset_ms: float = 0.0,
    seed: int = 0,
    t0_ns: int = 0,
) -> Sweep:
    """Render a sweep.

    Frames are stamped at ``fps`` over the trajectory; if ``n_frames`` is given the frame rate
    becomes ``(n_frames - 1) / duration`` so that exactly ``n_frames`` frames span the sweep.
    The frame stamped ``t`` shows the true pose at ``t + time_offset_ms`` (see
    :mod:`.motion`); tracker samples run at ``tracker_rate_hz`` independently.
    """
    if n_frames is not None:
        fps = (n_frames - 1) / trajectory.duration_s if n_frames > 1 else 1.0
    frames = sample_frames(trajectory, fps, time_offset_ms, t0_ns)
    if n_frames is not None:
        frames = FrameSamples(
            frames.timestamps_ns[:n_frames],
            frames.T_phantom_probe_true[:n_frames],
            frames.time_offset_ms,
        )
    tracker = sample_tracker(
        trajectory, tracker_rate_hz, tracker_noise_mm, tracker_noise_deg, seed, t0_ns
    )
    n = frames.timestamps_ns.size
    h, w = simulator.screen_shape
    images = np.empty((n, h, w), np.uint8)
    labels = np.empty((n, h, w), np.uint8)
    for k in range(n):
        fr = simulator.render(frames.T_phantom_probe_true[k])
        images[k] = fr.image
        labels[k] = fr.labels
    meta: dict[str, Any] = {
        "trajectory": trajectory.info,
        "fps": fps,
        "tracker_rate_hz": tracker_rate_hz,
        "tracker_noise_mm": tracker_noise_mm,
        "tracker_noise_deg": tracker_noise_deg,
        "time_offset_ms": time_offset_ms,
        "time_offset_convention": "frame stamped t shows the true pose at t + time_offset_ms",
        "tracker_seed": int(seed),
        "bmode_params": dataclasses.asdict(simulator.params),
        "speckle_seed": simulator.seed,
        "phantom": phantom.metadata(),
        "T_probe_image": simulator.T_probe_image().tolist(),
        "image_convention": "pixel (u, v) centre -> probe (x_p, y_p, 0) = ((u - roi_x + 0.5 - "
        "roi_w / 2) * sx, (v - roi_y + 0.5) * sy, 0); probe origin at the centre of the face; "
        "T_phantom_probe maps probe mm to phantom mm",
    }
    return Sweep(images, labels, frames, tracker, simulator.pixel_spacing_mm, simulator.roi, meta)


def write_sweep_npz(path: str | Path, sweep: Sweep, phantom: NeckPhantom | None = None) -> Path:
    """Write ``sweep`` to a compressed ``.npz``.

    Keys: ``images (N,H,W) uint8``, ``labels (N,H,W) uint8``, ``frame_timestamps_ns (N,) int64``,
    ``T_phantom_probe_true (N,4,4) float64``, ``tracker_timestamps_ns (M,) int64``,
    ``tracker_T_phantom_probe (M,4,4) float64``, ``pixel_spacing_mm (2,) float64`` (x, y),
    ``roi (4,) int64`` (x, y, w, h), ``thyroid_volume_ml () float64``, ``metadata`` (JSON
    string, 0-d str array).  With ``phantom``, also ``phantom_labels (nx,ny,nz) uint8``,
    ``phantom_spacing_mm`` and ``phantom_origin_mm (3,)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = dict(
        images=sweep.images,
        labels=sweep.labels,
        frame_timestamps_ns=sweep.frames.timestamps_ns,
        T_phantom_probe_true=sweep.frames.T_phantom_probe_true,
        tracker_timestamps_ns=sweep.tracker.timestamps_ns,
        tracker_T_phantom_probe=sweep.tracker.T_phantom_probe,
        pixel_spacing_mm=np.asarray(sweep.pixel_spacing_mm, np.float64),
        roi=np.asarray(sweep.roi, np.int64),
        thyroid_volume_ml=np.float64(sweep.metadata["phantom"]["thyroid_volume_ml"]),
        metadata=np.array(json.dumps(sweep.metadata)),
    )
    if phantom is not None:
        arrays.update(
            phantom_labels=phantom.labels,
            phantom_spacing_mm=np.float64(phantom.spacing_mm),
            phantom_origin_mm=phantom.origin_mm,
        )
    np.savez_compressed(path, **arrays)
    return path


def write_phantom_npz(path: str | Path, phantom: NeckPhantom) -> Path:
    """Write the phantom ground truth: ``labels`` uint8 ``(nx,ny,nz)``, ``spacing_mm``,
    ``origin_mm (3,)`` (centre of voxel 0), ``thyroid_volume_ml``, ``metadata`` (JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        labels=phantom.labels,
        spacing_mm=np.float64(phantom.spacing_mm),
        origin_mm=phantom.origin_mm,
        thyroid_volume_ml=np.float64(phantom.thyroid_volume_ml),
        metadata=np.array(json.dumps(phantom.metadata())),
    )
    return path


def load_sweep_npz(path: str | Path) -> dict[str, Any]:
    """Load a sweep ``.npz`` into a dict of arrays; ``metadata`` is decoded from JSON."""
    with np.load(path) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files}
    out["metadata"] = json.loads(str(out["metadata"]))
    return out


def _split_phantoms(n: int, seed: int) -> dict[str, list[int]]:
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B17])).permutation(n)
    if n >= 3:
        n_test = n_val = max(1, round(0.15 * n))
    elif n == 2:
        n_test, n_val = 1, 0
    else:
        n_test = n_val = 0
    test = sorted(order[:n_test].tolist())
    val = sorted(order[n_test : n_test + n_val].tolist())
    train = sorted(order[n_test + n_val :].tolist())
    return {"train": train, "validation": val, "test": test}


def _parse_size(s: str) -> tuple[int, int]:
    w, h = s.lower().split("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    """Dataset CLI entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m us_acquisition.sim.dataset",
        description="Write simulated tracked thyroid sweeps with ground truth.",
    )
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--phantoms", type=int, default=10, help="number of phantoms M")
    ap.add_argument("--sweeps-per-phantom", type=int, default=4, help="sweeps per phantom N")
    ap.add_argument("--seed", type=int, default=0, help="master seed S")
    ap.add_argument("--size", type=_parse_size, default=(640, 480), help="WxH, e.g. 640x480")
    ap.add_argument("--frames-per-sweep", type=int, default=100, help="frames per sweep K")
    ap.add_argument("--spacing", type=float, default=0.25, help="phantom voxel size (mm)")
    ap.add_argument(
        "--time-offset-ms",
        type=float,
        default=0.0,
        help="frame stamped t shows the pose at t + offset",
    )
    ap.add_argument("--tracker-rate", type=float, default=120.0, help="tracker rate (Hz)")
    ap.add_argument("--tracker-noise-mm", type=float, default=0.1)
    ap.add_argument("--tracker-noise-deg", type=float, default=0.1)
    args = ap.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    w, h = args.size
    splits = _split_phantoms(args.phantoms, args.seed)
    files: dict[str, list[str]] = {}
    t_start = time.perf_counter()
    total = args.phantoms * args.sweeps_per_phantom
    done = 0
    for i in range(args.phantoms):
        pid = f"phantom_{i:03d}"
        p_seed = args.seed * 1000 + i
        t0 = time.perf_counter()
        phantom = NeckPhantom.from_seed(p_seed, spacing_mm=args.spacing)
        write_phantom_npz(out / pid / "phantom.npz", phantom)
        print(
            f"[{pid}] seed {p_seed}: built in {time.perf_counter() - t0:.1f} s, "
            f"thyroid {phantom.thyroid_volume_ml:.1f} mL",
            flush=True,
        )
        files[pid] = []
        for j in range(args.sweeps_per_phantom):
            s_seed = p_seed * 100 + j
            kind = SWEEP_KINDS[j % len(SWEEP_KINDS)]
            sim = BModeSimulator(phantom, BModeParams(width_px=w, height_px=h), seed=s_seed)
            traj = make_trajectory(kind, phantom, s_seed)
            sweep = simulate_sweep(
                phantom,
                sim,
                traj,
                n_frames=args.frames_per_sweep,
                tracker_rate_hz=args.tracker_rate,
                tracker_noise_mm=args.tracker_noise_mm,
                tracker_noise_deg=args.tracker_noise_deg,
                time_offset_ms=args.time_offset_ms,
                seed=s_seed,
            )
            sweep.metadata.update(phantom_id=pid, sweep_seed=s_seed, sweep_kind=kind)
            sweep.metadata["phantom"].pop("nodules", None)
            name = f"sweep_{j:02d}.npz"
            write_sweep_npz(out / pid / name, sweep)
            files[pid].append(f"{pid}/{name}")
            done += 1
            el = time.perf_counter() - t_start
            print(
                f"  {pid}/{name} {kind}: {sweep.images.shape[0]} frames "
                f"[{done}/{total}, {el:.0f} s elapsed, "
                f"~{el / done * (total - done):.0f} s left]",
                flush=True,
            )
    split_ids = {k: [f"phantom_{i:03d}" for i in v] for k, v in splits.items()}
    (out / "splits.json").write_text(json.dumps({**split_ids, "files": files}, indent=2))
    (out / "dataset.json").write_text(
        json.dumps(
            {
                "args": {
                    k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                    for k, v in vars(args).items()
                },
                "phantom_seed_rule": "S * 1000 + i",
                "sweep_seed_rule": "phantom_seed * 100 + j",
                "sweep_kinds": list(SWEEP_KINDS),
                "split_rule": "by phantom, 15% test, 15% validation (>= 1 each when M >= 3)",
            },
            indent=2,
        )
    )
    print(
        f"wrote {done} sweeps to {out} in {time.perf_counter() - t_start:.0f} s; "
        f"splits: " + ", ".join(f"{k}={len(v)}" for k, v in split_ids.items()),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
