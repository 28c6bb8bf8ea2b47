"""Markdown tables from bench/results/*.json (``make bench`` writes bench/results/summary.md).

python bench/report.py [--results bench/results] > summary.md
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
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


def _cases(d: dict[str, Any]) -> list[dict[str, Any]]:
    return list(d.get("cases", []))


def _whole(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [d]


def _cross_host(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "case": f"1080p transport, {t['profile']} DDS, {t['qos']}",
            "delivered_pct": t["delivered_pct"],
            "fps": t["fps_received"],
            "lat_p50_ms": t["lat_p50_ms"],
            "lat_p95_ms": t["lat_p95_ms"],
        }
        for t in d.get("transport", [])
    ]
    for key in ("segmentation_local", "segmentation_remote"):
        if key in d:
            r = d[key]
            rows.append(
                {
                    "case": f"segmentation, {r['path']}",
                    "fps": r["masks_per_s"],
                    "lat_p50_ms": r["lat_p50_ms"],
                    "lat_p95_ms": r["lat_p95_ms"],
                }
            )
    return rows


def _backends(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"backend": k, **v} for k, v in d.get("backends", {}).items()]


#: (results file, section title, rows of the table, columns) in report order.
SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], list[dict[str, Any]]], list[str]]] = [
    (
        "channel.json",
        "Frame channel",
        _cases,
        ["transport", "size", "consumers", "paced_fps", "lat_p50_us", "lat_p99_us", "fps",
         "producer_fps", "lost", "producer_cpu_ms", "consumer_cpu_ms", "publish_p50_us",
         "copyto_p50_us", "copyto_ring_p50_us", "copyto_paced_p50_us",
         "publish_over_copyto_paced", "ros2_p99_over_ours"],
    ),
    (
        "acquisition.json",
        "Acquisition",
        _cases,
        ["source", "size", "seconds", "fps_target", "fps", "produced", "producer_dropped",
         "jitter_p99_us", "producer_cpu_ms", "slow_consumer_fps", "fast_consumer_lost",
         "lat_p50_us", "lat_p99_us", "reference_fps_without_slow_consumer", "fps_change_pct"],
    ),
    (
        "simulator.json",
        "Simulator",
        _whole,
        ["fps_640", "fps_1080", "threads", "phantom_build_s", "peak_rss_mb"],
    ),
    (
        "segmentation.json",
        "Segmentation",
        _backends,
        ["backend", "dice", "hd95_mm", "infer_p50_ms", "infer_p95_ms", "e2e_p50_ms",
         "e2e_p95_ms", "masks_per_s", "frames_per_s"],
    ),
    (
        "reconstruction.json",
        "Reconstruction",
        _whole,
        ["volume_err_pct", "ellipsoid_err_pct", "hd95_mm", "fps_nn_640", "fps_lin_640",
         "fps_nn_820", "baseline_fps_nn_640", "peak_rss_mb"],
    ),
    (
        "grpc.json",
        "gRPC bridge",
        _cases,
        ["clients", "encoding", "stalled_clients", "fps_per_client", "lat_p50_ms",
         "lat_p95_ms", "bytes_per_frame", "acq_fps", "bridge_cpu_pct"],
    ),
    (
        "cross_host.json",
        "Across hosts",
        _cross_host,
        ["case", "delivered_pct", "fps", "lat_p50_ms", "lat_p95_ms"],
    ),
    (
        "system.json",
        "Whole system",
        _whole,
        ["soak_min", "rss_growth_pct", "producer_lost", "e2e_mask_p95_ms", "e2e_volume_p95_ms",
         "e2e_client_p95_ms", "faults_survived", "faults_tried", "volume_err_pct"],
    ),
]  # fmt: skip


def report(results: Path) -> str:
    parts: list[str] = []
    for name, title, rows, cols in SECTIONS:
        path = results / name
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        command = d.get("command") or f"python bench/bench_{name.removesuffix('.json')}.py"
        parts.append(f"\n### {title} (`{command}`)\n")
        parts.append(table(rows(d), cols))
    return "\n".join(parts).lstrip("\n") + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results"))
    a = p.parse_args()
    print(report(Path(a.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
