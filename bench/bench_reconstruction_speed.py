"""Benchmark freehand 3D compounding (us_reconstruction.compounding) on ONE core.

Run from the repository root::

    PYTHONPATH=src/us_reconstruction python bench/bench_reconstruction_speed.py [--quick]

Compounds 640x480 and 820x616 uint8 frames (+ a label mask) of a realistic freehand
transverse sweep (50 x 37.5 mm image, swept 56 mm with tilt and drift) into a 0.5 mm grid
(~60 x 40 x 60 mm), nearest and trilinear, MEAN compounding, and times the straightforward
numpy peer (``np.add.at``, nearest, 640x480) in the same run. Also the numba warm-up (kernel
compile with a cold cache in a fresh process, and the cached load), peak RSS, and frames
per CPU second of this process (``cpu_fps``: less sensitive to other jobs on the machine).
Writes ``bench/results/reconstruction_speed.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Literal  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

_WARMUP_SNIPPET = (
    "from us_reconstruction.compounding import warmup; import time; t=time.perf_counter(); "
    "import us_reconstruction.compounding; warmup(); print(time.perf_counter() - t)"
)
FOV_MM = (50.0, 37.5)  # image width (lateral) x depth
#: frames per CPU second of this process (less sensitive to other jobs than wall time)
_CPU_FPS: dict[str, float] = {}


def sweep_poses(n: int, width: int) -> list[npt.NDArray[np.float64]]:
    """``T_world_image`` of a freehand transverse sweep: image u -> lateral x, v -> depth y,
    swept along z over 56 mm with +-5 deg tilt, +-3 deg rock and +-2 mm lateral drift."""
    sp = FOV_MM[0] / width
    poses = []
    for i in range(n):
        t = i / max(n - 1, 1)
        tilt = np.radians(5.0 * np.sin(2 * np.pi * t))
        rock = np.radians(3.0 * np.sin(3 * np.pi * t + 0.5))
        Rx = np.array(
            [[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]]
        )
        Rz = np.array(
            [[np.cos(rock), -np.sin(rock), 0], [np.sin(rock), np.cos(rock), 0], [0, 0, 1]]
        )
        R = Rz @ Rx
        T = np.eye(4)
        T[:3, 0] = R[:, 0] * sp
        T[:3, 1] = R[:, 1] * sp
        T[:3, 3] = (-FOV_MM[0] / 2 + 2.0 * np.sin(2 * np.pi * t), 0.0, -28.0 + 56.0 * t)
        poses.append(T)
    return poses


def frames(width: int, height: int, count: int = 8) -> tuple[list[Any], list[Any]]:
    """``count`` speckle-like uint8 frames and label masks (an ellipse = class 1)."""
    rng = np.random.default_rng(0)
    v, u = np.mgrid[0:height, 0:width]
    imgs, labs = [], []
    for k in range(count):
        img = rng.gamma(2.0, 30.0, (height, width)).clip(0, 255).astype(np.uint8)
        ell = ((u - width * (0.5 + 0.02 * k)) / (0.2 * width)) ** 2 + (
            (v - height * 0.45) / (0.15 * height)
        ) ** 2 <= 1.0
        imgs.append(img)
        labs.append(ell.astype(np.uint8))
    return imgs, labs


def _fps(
    interp: Literal["nearest", "linear"],
    width: int,
    height: int,
    n: int,
    mode: Literal["mean", "max", "latest"] = "mean",
) -> tuple[float, Any]:
    from us_reconstruction.compounding import Compounder
    from us_reconstruction.grid import VolumeGrid, image_world_bounds

    poses = sweep_poses(n, width)
    imgs, labs = frames(width, height)
    lo = np.min([image_world_bounds(T, (height, width))[0] for T in poses], axis=0)
    hi = np.max([image_world_bounds(T, (height, width))[1] for T in poses], axis=0)
    grid = VolumeGrid.from_bounds(lo, hi, 0.5, margin_mm=1.0)
    comp = Compounder(grid, interpolation=interp, compounding=mode, auto_grow=False)
    comp.insert(imgs[0], poses[0], labs[0])  # touch the pages of the volume once
    comp.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    for i, T in enumerate(poses):
        comp.insert(imgs[i % len(imgs)], T, labs[i % len(labs)])
    _CPU_FPS[f"{interp}_{width}_{mode}"] = n / (time.process_time() - c0)
    return n / (time.perf_counter() - t0), grid


def _baseline_fps(width: int, height: int, n: int) -> float:
    from us_reconstruction.compounding import compound_numpy_baseline
    from us_reconstruction.grid import VolumeGrid, image_world_bounds

    poses = sweep_poses(n, width)
    imgs, _ = frames(width, height)
    lo = np.min([image_world_bounds(T, (height, width))[0] for T in poses], axis=0)
    hi = np.max([image_world_bounds(T, (height, width))[1] for T in poses], axis=0)
    grid = VolumeGrid.from_bounds(lo, hi, 0.5, margin_mm=1.0)
    acc = np.zeros(grid.dims)
    weight = np.zeros(grid.dims)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, T in enumerate(poses):
        compound_numpy_baseline(imgs[i % len(imgs)], T, grid, acc, weight)
    _CPU_FPS[f"baseline_{width}"] = n / (time.process_time() - c0)
    return n / (time.perf_counter() - t0)


def _warmup_subprocess(cache_dir: str | None) -> float:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", _WARMUP_SNIPPET], env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    import numba
    from us_reconstruction.compounding import warmup

    n = 60 if quick else 240
    with tempfile.TemporaryDirectory() as cold:
        warmup_cold_s = _warmup_subprocess(cold)  # empty numba cache: compiles every kernel
    t0 = time.perf_counter()
    warmup()  # this process: loads the cached kernels (or compiles them if uncached)
    warmup_s = time.perf_counter() - t0
    fps_nn_640, grid640 = _fps("nearest", 640, 480, n)
    fps_lin_640, _ = _fps("linear", 640, 480, n)
    fps_nn_820, grid820 = _fps("nearest", 820, 616, n)
    fps_lin_820, _ = _fps("linear", 820, 616, n)
    fps_lin_640_max, _ = _fps("linear", 640, 480, n // 2, "max")
    fps_lin_640_latest, _ = _fps("linear", 640, 480, n // 2, "latest")
    baseline = _baseline_fps(640, 480, 10 if quick else 30)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    size_mm = [round(d * s, 1) for d, s in zip(grid640.dims, grid640.spacing_mm, strict=True)]
    return {
        "fps_nn_640": round(fps_nn_640, 1),
        "fps_lin_640": round(fps_lin_640, 1),
        "fps_nn_820": round(fps_nn_820, 1),
        "fps_lin_820": round(fps_lin_820, 1),
        "baseline_fps_nn_640": round(baseline, 2),
        "fps_lin_640_max": round(fps_lin_640_max, 1),
        "fps_lin_640_latest": round(fps_lin_640_latest, 1),
        "peak_rss_mb": round(rss, 1),
        "cpu_fps": {k: round(v, 1) for k, v in _CPU_FPS.items()},
        "warmup_s": round(warmup_s, 3),
        "warmup_cold_compile_s": round(warmup_cold_s, 2),
        "grid_dims": list(grid640.dims),
        "grid_dims_820": list(grid820.dims),
        "grid_size_mm": size_mm,
        "grid_spacing_mm": 0.5,
        "volume_mb": round(grid640.num_voxels * 16 / 1e6, 1),  # acc + weight + 2 label classes
        "frames_timed": n,
        "compounding": "mean (unless named), with a 2-class label mask",
        "threads": 1,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed frames (smoke check)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/reconstruction_speed.json"))
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # pin to one core
    res = run(args.quick)
    b = res["baseline_fps_nn_640"]
    rows = [
        ("nearest 640x480 (ours, numba)", res["fps_nn_640"], "fps"),
        ("  peer: numpy np.add.at, nearest 640x480", b, "fps"),
        ("linear 640x480 (ours)", res["fps_lin_640"], "fps"),
        ("nearest 820x616 (ours)", res["fps_nn_820"], "fps"),
        ("linear 820x616 (ours)", res["fps_lin_820"], "fps"),
        ("linear 640x480, MAX compounding (ours)", res["fps_lin_640_max"], "fps"),
        ("linear 640x480, LATEST compounding (ours)", res["fps_lin_640_latest"], "fps"),
        ("  needed to keep up with a 30 fps scanner", 30.0, "fps"),
        ("warm-up, cached kernels", res["warmup_s"], "s"),
        ("warm-up, cold compile (fresh process)", res["warmup_cold_compile_s"], "s"),
        (f"volume {res['grid_dims']} at 0.5 mm", res["volume_mb"], "MB"),
        ("peak RSS", res["peak_rss_mb"], "MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>10}")
    print("-" * (width + 16))
    for name, val, unit in rows:
        print(f"{name:<{width}}  {val:>10.1f} {unit}")
    print(f"speed-up over the numpy peer (nearest 640x480): {res['fps_nn_640'] / b:.0f}x")
    print("frames per CPU second:", ", ".join(f"{k} {v}" for k, v in res["cpu_fps"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
