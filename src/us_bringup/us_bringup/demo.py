"""``us-demo`` (``make demo``): the graph on the built-in simulator, with results to look at.

Starts the graph with ``us-run`` (acquisition on the simulated tracked sweep; later nodes
join as they are built), attaches to the shared-memory frame channel as one more
consumer, shows progress, and writes a results folder:

    results/demo-<time>/frames.png    frames of the sweep with their geometry (mm)
    results/demo-<time>/latency.png   publish -> consumer latency over the run
    results/demo-<time>/summary.json  fps, drops, latency, the graph's status

    us-demo [--seconds 20] [--out results]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _status_snapshot() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["us-top", "--once", "--json", "--wait", "2"], capture_output=True, text=True, timeout=60
    )
    try:
        return list(json.loads(out.stdout))
    except json.JSONDecodeError:
        return []


def _plots(
    folder: Path, frames: list[tuple[Any, np.ndarray]], lat_ms: np.ndarray, t_s: np.ndarray
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(frames)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (info, img) in zip(axes.ravel(), frames, strict=False):
        sx, sy = info.spacing_x_mm or 1.0, info.spacing_y_mm or 1.0
        h, w = img.shape[:2]
        ax.imshow(
            img if img.ndim == 2 else img[..., 1],
            cmap="gray",
            vmin=0,
            vmax=255,
            extent=(-w * sx / 2, w * sx / 2, h * sy, 0),
        )
        ax.set_title(f"seq {info.seq}", fontsize=9)
        ax.set_xlabel("lateral (mm)", fontsize=8)
        ax.set_ylabel("depth (mm)", fontsize=8)
        ax.axis("on")
        ax.tick_params(labelsize=7)
    fig.suptitle("frames read from the shared-memory channel us/frames (simulated sweep)")
    fig.tight_layout()
    fig.savefig(folder / "frames.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(t_s, lat_ms, ".", ms=2)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("publish -> view (ms)")
    ax.set_title(
        f"frame channel latency: median {np.median(lat_ms):.3f} ms, "
        f"p99 {np.percentile(lat_ms, 99):.3f} ms"
    )
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="us-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=20.0, help="how long to stream")
    p.add_argument("--out", default=os.path.join(os.environ.get("US_WS_ROOT", "."), "results"))
    p.add_argument("--keep-frames", type=int, default=6)
    a = p.parse_args(argv)

    from us_frame_channel import ChannelError, FrameReader

    folder = Path(a.out) / time.strftime("demo-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    channel = "us/frames"
    print(f"us-demo: starting the graph (acquisition on the simulator) for {a.seconds:g} s")
    graph = subprocess.Popen(
        [
            "us-run",
            "--set",
            "acquisition.source=sim",
            "--set",
            f"acquisition.channel_name={channel}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log_path = folder / "graph.log"
    lat_ms: list[float] = []
    t_s: list[float] = []
    kept: list[tuple[Any, np.ndarray]] = []
    summary: dict[str, Any] = {}
    try:
        try:
            reader = FrameReader(channel, mode="every", wait_s=60.0)
        except ChannelError as exc:
            print(f"us-demo: the graph did not come up: {exc}")
            return 1
        with reader:
            t0 = time.monotonic()
            next_print = t0 + 1.0
            keep_every = max(1, int(a.seconds * 30 / max(a.keep_frames, 1)))
            while time.monotonic() - t0 < a.seconds:
                f = reader.read(1.0)
                now = time.monotonic()
                if f is not None:
                    with f:
                        lat_ms.append(f.latency_ns() / 1e6)
                        t_s.append(now - t0)
                        if f.seq % keep_every == 0 and len(kept) < a.keep_frames:
                            kept.append((f.info, f.array.copy()))
                        meta_rev = f.info.meta_revision
                if now >= next_print:
                    next_print += 1.0
                    fps = sum(1 for t in t_s if t > now - t0 - 1.0)
                    p50 = np.median(lat_ms[-30:]) if lat_ms else float("nan")
                    print(
                        f"  t={now - t0:4.0f} s  frames={len(lat_ms):5d}  fps={fps:3d}  "
                        f"latency p50={p50:.3f} ms  dropped={reader.stats.dropped}",
                        flush=True,
                    )
            metadata = reader.metadata()
            stats = reader.stats
        status = _status_snapshot()
        lat = np.asarray(lat_ms)
        summary = {
            "seconds": a.seconds,
            "frames": len(lat_ms),
            "fps": (len(t_s) - 1) / (t_s[-1] - t_s[0]) if len(t_s) > 1 else 0.0,
            "dropped": stats.dropped,
            "producer_restarts": stats.producer_restarts,
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
            "channel_metadata": metadata,
            "metadata_revision": meta_rev if lat_ms else 0,
            "graph_status": status,
        }
        (folder / "summary.json").write_text(json.dumps(summary, indent=1))
        if kept:
            _plots(folder, kept, lat, np.asarray(t_s))
    finally:
        graph.send_signal(signal.SIGINT)
        try:
            out, _ = graph.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            graph.kill()
            out, _ = graph.communicate()
        log_path.write_text(out or "")
    ok = bool(lat_ms) and graph.returncode == 0
    print()
    print(
        f"us-demo: {summary.get('frames', 0)} frames at {summary.get('fps', 0):.1f} fps, "
        f"{summary.get('dropped', 0)} dropped; channel latency p50 "
        f"{summary.get('latency_p50_ms') or float('nan'):.3f} ms, p99 "
        f"{summary.get('latency_p99_ms') or float('nan'):.3f} ms"
    )
    if meta := summary.get("channel_metadata"):
        print(f"us-demo: source: {meta.get('device')}")
    print(f"us-demo: results in {folder}/ (frames.png, latency.png, summary.json, graph.log)")
    if graph.returncode != 0:
        print(f"us-demo: the graph exited with code {graph.returncode}; see {log_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
