"""Acquisition benchmark: sustained 1080p60 UYVY into the channel, slow + fast consumers.

For each source (the synthetic grabber, and a video file when replay is available):

* the acquisition loop (CaptureLoop: source -> channel, as in the node) runs in its own
  process at 60 fps for ``--seconds`` (default 600 = 10 min);
* a fast consumer (every frame) measures the time from capture (the frame's host
  timestamp) to holding the view, and counts lost frames;
* a slow consumer holds every frame 50 ms (so it can take at most ~20 fps);
* a second, short run without the slow consumer is the reference for "producer fps
  unchanged" (peer figure from the same run).

    python bench/bench_acquisition.py [--seconds 600] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def producer(a: argparse.Namespace) -> dict[str, Any]:
    from us_acquisition.capture import CaptureLoop
    from us_acquisition.geometry import FrameGeometry
    from us_acquisition.sources.factory import make_source

    from us_frame_channel import ChannelConfig

    params = {
        "source": a.source,
        "width": 1920,
        "height": 1080,
        "pixel_format": "uyvy",
        "fps": a.fps,
        "realtime": True,
        "loop": True,
        "source_path": a.path,
    }
    stamps: list[int] = []
    loop = CaptureLoop(
        make_source(params),
        ChannelConfig(a.name, 1, max_consumers=4),
        FrameGeometry(spacing_mm=(0.1, 0.1)),
        on_frame=lambda pub: stamps.append(pub.frame.host_timestamp_ns),
    )
    loop.open()
    deadline = time.monotonic() + 30
    while loop.writer is not None and loop.writer.consumer_count() < a.consumers:
        if time.monotonic() > deadline:
            raise SystemExit("consumers did not connect")
        time.sleep(0.01)  # start-up only
    cpu0 = time.process_time()
    loop.start()
    time.sleep(a.seconds)
    loop.pause()
    cpu = time.process_time() - cpu0
    snap = loop.snapshot()
    loop.close()
    t = np.asarray(stamps, dtype=np.int64)
    d = np.diff(t).astype(np.float64)
    jitter = float(np.percentile(np.abs(d - 1e9 / a.fps), 99)) / 1e3 if d.size else 0.0
    span = (t[-1] - t[0]) / 1e9 if t.size > 1 else 1.0
    return {
        "produced": snap.produced,
        "producer_dropped": snap.source_dropped,
        "fps": (t.size - 1) / span,
        "jitter_p99_us": jitter,
        "producer_cpu_ms": cpu / max(snap.produced, 1) * 1e3,
    }


def consumer(a: argparse.Namespace) -> dict[str, Any]:
    from us_frame_channel import FrameReader

    with FrameReader(a.name, mode="every", wait_s=60) as r:
        print(json.dumps({"event": "ready"}), flush=True)
        lat: list[float] = []
        t: list[float] = []
        first_seq = None
        timeout = 60.0
        while True:
            f = r.read(timeout)
            if f is None:
                break
            timeout = 3.0
            now = time.time_ns()
            if first_seq is None:
                first_seq = f.seq
            lat.append((now - f.info.host_timestamp_ns) / 1e3)
            t.append(time.monotonic())
            if a.hold_s:
                time.sleep(a.hold_s)
            last_seq = f.seq
            f.release()
        n = len(lat)
        expected = (last_seq - first_seq + 1) if first_seq is not None else 0
    return {
        "received": n,
        "lost": int(expected - n),
        "dropped": r.stats.dropped,
        "fps": (n - 1) / (t[-1] - t[0]) if n > 1 else 0.0,
        "lat_p50_us": float(np.percentile(lat, 50)) if lat else 0.0,
        "lat_p99_us": float(np.percentile(lat, 99)) if lat else 0.0,
    }


def _spawn(role: str, **kw: Any) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--role", role]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )


def _result(p: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = p.communicate(timeout=timeout)
    res = [json.loads(x) for x in out.splitlines() if x.startswith('{"event": "result"')]
    if p.returncode or not res:
        raise RuntimeError(f"child failed (exit {p.returncode})")
    return res[-1]


def run(source: str, path: str, seconds: float, slow: bool) -> dict[str, Any]:
    name = f"bench/acq-{uuid.uuid4().hex[:8]}"
    # the producer creates the channel and starts once all consumers are connected
    prod = _spawn(
        "producer",
        name=name,
        source=source,
        path=path,
        seconds=seconds,
        consumers=2 if slow else 1,
        fps=60.0,
    )
    fast = _spawn("consumer", name=name)
    cons = [fast] + ([_spawn("consumer", name=name, hold_s=0.05)] if slow else [])
    p = _result(prod, seconds + 120)
    f = _result(fast, 120)
    s = _result(cons[1], 120) if slow else None
    return {"producer": p, "fast": f, "slow": s}


def _make_video(path: Path, seconds: float) -> bool:
    """A 1080p60 test video for the file source (needs PyAV); False if unavailable."""
    try:
        import av
    except ImportError:
        return False
    frames = int(seconds * 60)
    with av.open(str(path), "w") as out:
        st = out.add_stream("mpeg4", rate=60)
        st.width, st.height, st.pix_fmt = 1920, 1080, "yuv420p"
        st.bit_rate = 8_000_000
        x = np.arange(1920, dtype=np.float32)
        for i in range(frames):
            img = (127 + 120 * np.sin((x + 8 * i) / 40.0)).astype(np.uint8)
            rgb = np.repeat(np.broadcast_to(img, (1080, 1920))[..., None], 3, axis=2)
            for pkt in st.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            ):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["producer", "consumer"])
    p.add_argument("--name", default="")
    p.add_argument("--source", default="synthetic")
    p.add_argument("--path", default="")
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--consumers", type=int, default=1)
    p.add_argument("--hold-s", type=float, default=0.0)
    p.add_argument("--quick", action="store_true", help="20 s per run instead of --seconds")
    p.add_argument("--sources", default="synthetic,video", help="comma-separated subset")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sources' rows of an existing --out file",
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "acquisition.json"))
    a = p.parse_args()
    if a.role:
        res = producer(a) if a.role == "producer" else consumer(a)
        print(json.dumps({"event": "result", **res}), flush=True)
        return 0
    seconds = 20.0 if a.quick else a.seconds
    wanted = [x for x in a.sources.split(",") if x]
    sources = [("synthetic", "")] if "synthetic" in wanted else []
    tmp = Path(tempfile.mkdtemp(prefix="us-bench-"))
    video = tmp / "clip_1080p60.mkv"
    if "video" in wanted:
        if _make_video(video, 10.0):
            sources.append(("video", str(video)))
        else:
            print("video file source skipped: PyAV (av) not installed")
    rows = []
    print(
        f"{'source':<10}{'size':<16}{'fps':>7}{'produced':>10}{'dropped':>8}{'jit p99 us':>11}"
        f"{'cpu ms':>8}{'slow fps':>9}{'fast lost':>10}{'p50 us':>8}{'p99 us':>8}{'ref fps':>8}"
    )
    for source, path in sources:
        ref = run(source, path, min(seconds, 30.0), slow=False)
        main_run = run(source, path, seconds, slow=True)
        pr, fa, sl = main_run["producer"], main_run["fast"], main_run["slow"]
        row = {
            "source": source,
            "size": "1920x1080 uyvy",
            "fps_target": 60.0,
            "fps": round(pr["fps"], 2),
            "produced": pr["produced"],
            "producer_dropped": pr["producer_dropped"],
            "jitter_p99_us": round(pr["jitter_p99_us"], 1),
            "producer_cpu_ms": round(pr["producer_cpu_ms"], 3),
            "slow_consumer_fps": round(sl["fps"], 2),
            "fast_consumer_lost": fa["lost"],
            "lat_p50_us": round(fa["lat_p50_us"], 1),
            "lat_p99_us": round(fa["lat_p99_us"], 1),
            "reference_fps_without_slow_consumer": round(ref["producer"]["fps"], 2),
            "seconds": seconds,
            "command": "python bench/bench_acquisition.py"
            + (" --quick" if a.quick else f" --seconds {seconds:g}")
            + f" --sources {source}",
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        row["fps_change_pct"] = round(
            100 * (row["fps"] / row["reference_fps_without_slow_consumer"] - 1), 2
        )
        rows.append(row)
        print(
            f"{source:<10}{row['size']:<16}{row['fps']:>7.2f}{row['produced']:>10}"
            f"{row['producer_dropped']:>8}{row['jitter_p99_us']:>11.0f}{row['producer_cpu_ms']:>8.2f}"
            f"{row['slow_consumer_fps']:>9.1f}{row['fast_consumer_lost']:>10}{row['lat_p50_us']:>8.0f}"
            f"{row['lat_p99_us']:>8.0f}{row['reference_fps_without_slow_consumer']:>8.2f}",
            flush=True,
        )
    if a.merge and Path(a.out).exists():
        done = {r["source"] for r in rows}
        old = json.loads(Path(a.out).read_text()).get("cases", [])
        rows = [r for r in old if r["source"] not in done] + rows
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/bench_acquisition.py"
        + (" --quick" if a.quick else f" --seconds {seconds:g}"),
        "cases": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
