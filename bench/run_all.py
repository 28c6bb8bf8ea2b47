"""Run every benchmark (``make bench``); each writes bench/results/<name>.json.

    python bench/run_all.py [--quick] [--only channel,simulator]

Each benchmark prints our figure next to the peer's (ROS topic, naive baseline, memcpy,
reference implementation) from the same run. ROS traffic is confined to this host and a
domain id of its own so that other graphs do not disturb the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "channel": HERE / "bench_channel.py",
    "simulator": HERE / "bench_simulator.py",
    "acquisition": HERE / "bench_acquisition.py",
    "segmentation": HERE / "bench_segmentation.py",
    "reconstruction": HERE / "bench_reconstruction.py",
    "grpc": HERE / "bench_grpc.py",
    "cross_host": HERE / "bench_cross_host.py",  # needs root (ip netns)
    "system": HERE / "bench_system.py",
}
#: Extra arguments per benchmark in a full run (the 30-minute soak is `make soak`).
FULL_ARGS = {"system": ["--soak-min", "5"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs (smoke check)")
    p.add_argument("--only", default="", help="comma-separated subset of " + ",".join(BENCHES))
    a = p.parse_args()
    chosen = [b for b in a.only.split(",") if b] or list(BENCHES)
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    failed = []
    for name in chosen:
        script = BENCHES.get(name)
        if script is None:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHES)}")
            return 2
        if not script.exists():
            print(f"== {name}: {script.name} not present, skipped")
            continue
        print(f"== {name} ({script.name})", flush=True)
        t0 = time.monotonic()
        cmd = [sys.executable, str(script)] + (["--quick"] if a.quick else FULL_ARGS.get(name, []))
        rc = subprocess.call(cmd, env=env)
        print(f"== {name}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    summary = subprocess.run(
        [sys.executable, str(HERE / "report.py")], capture_output=True, text=True, env=env
    )
    (HERE / "results" / "summary.md").write_text(summary.stdout)
    print(summary.stdout)
    print(f"tables: {HERE / 'results' / 'summary.md'}")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
