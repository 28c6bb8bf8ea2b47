"""Reconstruction benchmark (``make bench``): runs the speed and the accuracy benchmarks,
each in its own process, and writes their headline figures to
``bench/results/reconstruction.json`` (full results stay in reconstruction_speed.json and
reconstruction_accuracy.json).

    python bench/bench_reconstruction.py [--quick]

Keys: volume_err_pct, ellipsoid_err_pct, hd95_mm (segmented sweeps of unseen phantoms),
fps_nn_640, fps_lin_640, fps_nn_820, baseline_fps_nn_640 (the numpy np.add.at peer, same
run), peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RES = HERE / "results"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    extra = ["--quick"] if a.quick else []
    for name in ("bench_reconstruction_speed.py", "bench_reconstruction_accuracy.py"):
        print(f"-- {name}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / name), *extra])
        if rc:
            print(f"{name} failed with exit code {rc}")
            return rc
    speed = json.loads((RES / "reconstruction_speed.json").read_text())
    acc = json.loads((RES / "reconstruction_accuracy.json").read_text())
    seg, gt = acc["segmented"], acc["gt_labels"]
    out = {
        "volume_err_pct": seg["volume_err_pct"],
        "ellipsoid_err_pct": seg["ellipsoid_err_pct"],
        "hd95_mm": seg["hd95_mm"],
        "fps_nn_640": speed["fps_nn_640"],
        "fps_lin_640": speed["fps_lin_640"],
        "fps_nn_820": speed["fps_nn_820"],
        "fps_lin_820": speed["fps_lin_820"],
        "baseline_fps_nn_640": speed["baseline_fps_nn_640"],
        "peak_rss_mb": speed["peak_rss_mb"],
        "volume_err_pct_gt_labels": gt["volume_err_pct"],
        "phantom_seeds": acc["setup"]["phantom_seeds"],
        "quick": a.quick,
        "details": ["reconstruction_speed.json", "reconstruction_accuracy.json"],
    }
    (RES / "reconstruction.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "details"}, indent=1))
    print(
        "targets: volume error <= 5 %, HD95 <= 1.5 mm, >= 100 frames/s nearest, "
        ">= 30 frames/s linear (640x480, 0.5 mm)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
