"""Benchmark the tracked-probe ultrasound simulator on ONE core.

Run from the repository root::

    PYTHONPATH=src/us_acquisition python bench/bench_simulator.py [--frames 150]

Measures image formation (``BModeSimulator.render``) at 640x480 and in the 1920x1080
scanner-screen mode along a freehand transverse sweep (warm-up frames excluded), plus the
phantom build time and memory.  Writes ``bench/results/simulator.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from us_acquisition.sim.bmode import BModeParams, BModeSimulator  # noqa: E402
from us_acquisition.sim.motion import ProbeTrajectory  # noqa: E402
from us_acquisition.sim.phantom import NeckPhantom  # noqa: E402


def _fps(sim: BModeSimulator, poses: np.ndarray, warmup: int = 5) -> float:
    for k in range(warmup):
        sim.render(poses[k % len(poses)])
    t0 = time.perf_counter()
    for T in poses:
        sim.render(T)
    return len(poses) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="timed frames per mode")
    ap.add_argument("--spacing", type=float, default=0.25, help="phantom voxel size (mm)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/simulator.json"))
    ap.add_argument("--quick", action="store_true", help="fewer timed frames (smoke check)")
    args = ap.parse_args()
    if args.quick:
        args.frames = min(args.frames, 30)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # pin to one core

    t0 = time.perf_counter()
    phantom = NeckPhantom.from_seed(0, spacing_mm=args.spacing)
    build_s = time.perf_counter() - t0
    traj = ProbeTrajectory.freehand_transverse(phantom, seed=0)
    poses = traj.poses(np.linspace(0.0, traj.duration_s, args.frames))

    t0 = time.perf_counter()
    sim640 = BModeSimulator(phantom, BModeParams())
    sim1080 = BModeSimulator(phantom, BModeParams(screen=True))
    init_s = time.perf_counter() - t0
    fps_640 = _fps(sim640, poses)
    fps_1080 = _fps(sim1080, poses)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    res = {
        "fps_640": round(fps_640, 2),
        "fps_1080": round(fps_1080, 2),
        "roi_1080": list(sim1080.roi),
        "phantom_build_s": round(build_s, 3),
        "simulator_init_s": round(init_s, 3),
        "phantom_spacing_mm": args.spacing,
        "phantom_shape": list(phantom.shape),
        "phantom_volume_mb": round(phantom.labels.nbytes / 1e6, 2),
        "peak_rss_mb": round(maxrss_mb, 1),
        "frames_timed": args.frames,
        "threads": 1,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    rows = [
        ("image formation 640x480", f"{fps_640:8.1f} fps", f"{1e3 / fps_640:6.1f} ms/frame"),
        ("  needed to stream live at 30 fps", f"{30.0:8.1f} fps", f"{1e3 / 30:6.1f} ms/frame"),
        (
            f"screen 1920x1080 (ROI {sim1080.roi[2]}x{sim1080.roi[3]})",
            f"{fps_1080:8.1f} fps",
            f"{1e3 / fps_1080:6.1f} ms/frame",
        ),
        (f"phantom build ({args.spacing} mm, {phantom.shape})", f"{build_s:8.2f} s", ""),
        ("label volume", f"{phantom.labels.nbytes / 1e6:8.1f} MB", ""),
        ("peak RSS", f"{maxrss_mb:8.1f} MB", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>12}  {'':>14}")
    print("-" * (width + 30))
    for name, val, extra in rows:
        print(f"{name:<{width}}  {val:>12}  {extra:>14}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
