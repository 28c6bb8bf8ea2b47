"""Markdown tables from bench/results/*.json (``make bench`` writes bench/results/summary.md).

python bench/report.py [--results bench/results] > summary.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(out)


def report(results: Path) -> str:
    parts: list[str] = []
    ch = results / "channel.json"
    if ch.exists():
        d = json.loads(ch.read_text())
        parts.append(f"### Frame channel (`{d['command']}`)\n")
        parts.append(
            table(
                d["cases"],
                [
                    "transport",
                    "size",
                    "consumers",
                    "paced_fps",
                    "lat_p50_us",
                    "lat_p99_us",
                    "fps",
                    "producer_fps",
                    "lost",
                    "producer_cpu_ms",
                    "consumer_cpu_ms",
                    "publish_p50_us",
                    "copyto_p50_us",
                    "copyto_ring_p50_us",
                    "copyto_paced_p50_us",
                    "publish_over_copyto_paced",
                    "ros2_p99_over_ours",
                ],
            )
        )
    acq = results / "acquisition.json"
    if acq.exists():
        d = json.loads(acq.read_text())
        parts.append(f"\n### Acquisition (`{d['command']}`)\n")
        parts.append(
            table(
                d["cases"],
                [
                    "source",
                    "size",
                    "seconds",
                    "fps_target",
                    "fps",
                    "produced",
                    "producer_dropped",
                    "jitter_p99_us",
                    "producer_cpu_ms",
                    "slow_consumer_fps",
                    "fast_consumer_lost",
                    "lat_p50_us",
                    "lat_p99_us",
                    "reference_fps_without_slow_consumer",
                    "fps_change_pct",
                ],
            )
        )
    sim = results / "simulator.json"
    if sim.exists():
        d = json.loads(sim.read_text())
        parts.append("\n### Simulator (`python bench/bench_simulator.py`)\n")
        parts.append(
            table([d], ["fps_640", "fps_1080", "threads", "phantom_build_s", "peak_rss_mb"])
        )
    seg = results / "segmentation.json"
    if seg.exists():
        d = json.loads(seg.read_text())
        parts.append("\n### Segmentation (`python bench/bench_segmentation.py`)\n")
        rows = [{"backend": k, **v} for k, v in d.get("backends", {}).items()]
        parts.append(
            table(
                rows,
                [
                    "backend",
                    "dice",
                    "hd95_mm",
                    "infer_p50_ms",
                    "infer_p95_ms",
                    "e2e_p50_ms",
                    "e2e_p95_ms",
                    "masks_per_s",
                    "frames_per_s",
                ],
            )
        )
    rec = results / "reconstruction.json"
    if rec.exists():
        d = json.loads(rec.read_text())
        parts.append("\n### Reconstruction (`python bench/bench_reconstruction.py`)\n")
        parts.append(
            table(
                [d],
                [
                    "volume_err_pct",
                    "ellipsoid_err_pct",
                    "hd95_mm",
                    "fps_nn_640",
                    "fps_lin_640",
                    "fps_nn_820",
                    "baseline_fps_nn_640",
                    "peak_rss_mb",
                ],
            )
        )
    grpc = results / "grpc.json"
    if grpc.exists():
        d = json.loads(grpc.read_text())
        parts.append("\n### gRPC bridge (`python bench/bench_grpc.py`)\n")
        parts.append(
            table(
                d.get("cases", []),
                [
                    "clients",
                    "encoding",
                    "stalled_clients",
                    "fps_per_client",
                    "lat_p50_ms",
                    "lat_p95_ms",
                    "bytes_per_frame",
                    "acq_fps",
                    "bridge_cpu_pct",
                ],
            )
        )
    system = results / "system.json"
    if system.exists():
        d = json.loads(system.read_text())
        parts.append("\n### Whole system (`python bench/bench_system.py`, `make soak`)\n")
        parts.append(
            table(
                [d],
                [
                    "soak_min",
                    "rss_growth_pct",
                    "producer_lost",
                    "e2e_mask_p95_ms",
                    "e2e_volume_p95_ms",
                    "e2e_client_p95_ms",
                    "faults_survived",
                    "faults_tried",
                    "volume_err_pct",
                ],
            )
        )
    return "\n".join(parts) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results"))
    a = p.parse_args()
    print(report(Path(a.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
