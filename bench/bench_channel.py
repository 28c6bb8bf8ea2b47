"""Frame transport benchmark: our iceoryx2 channel vs a ROS 2 topic vs one np.copyto.

Two or more processes on this machine: one producer, 1 or 3 consumers. For each case we
measure, in the same run:

* latency from the producer's publish call to the consumer holding a numpy view of the
  frame (CLOCK_MONOTONIC is shared by all processes), median and p99, us;
* sustained fps at the consumers, frames lost (published - received, per consumer);
* producer CPU per frame and consumer CPU per frame (process CPU time / frames), ms;
* the producer's publish cost against one np.copyto of the same frame in the same
  process (the physical floor: the producer must write each frame once).

    python bench/bench_channel.py [--quick] [--out bench/results/channel.json]

Transports: ``iceoryx2`` (us_frame_channel, consumers in every-frame mode) and ``ros2``
(sensor_msgs/Image over rclpy, default QoS: reliable, keep last 10, stock Fast DDS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 5  # frames published before measuring
SIZES: dict[str, tuple[int, int, str]] = {
    "640x480 mono8": (640, 480, "mono8"),
    "1920x1080 mono8": (1920, 1080, "mono8"),
    "1920x1080 uyvy": (1920, 1080, "uyvy"),
}


def _frame(w: int, h: int, fmt: str) -> np.ndarray:
    from us_frame_channel.testing import pattern_frame

    from us_frame_channel import PixelFormat

    return pattern_frame(PixelFormat.parse(fmt), w, h, 1)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _copy_paced(frame: np.ndarray, fps: float, n: int = 90) -> float:
    """Median np.copyto into a ring of 26 destinations, paced like the publish loop (the
    process sleeps between frames, so caches and clocks are as cold as when publishing)."""
    ring = [np.zeros_like(frame) for _ in range(26)]
    times: list[float] = []
    period = 1.0 / fps
    t0 = time.monotonic()
    for i in range(n):
        delay = t0 + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s = time.perf_counter()
        np.copyto(ring[i % len(ring)], frame)
        times.append((time.perf_counter() - s) * 1e6)
    return _pct(times, 50)


def _copy_floor(frame: np.ndarray, dst: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """One np.copyto of the frame: into the same destination (hot caches) and into a
    ring of 26 destinations (cold like the channel's slots: 4 consumers x 6 + 2)."""
    hot: list[float] = []
    for _ in range(min(n, 200)):
        s = time.perf_counter()
        np.copyto(dst, frame)
        hot.append((time.perf_counter() - s) * 1e6)
    ring = [np.empty_like(frame) for _ in range(26)]
    for r in ring:
        r.fill(0)
    cold: list[float] = []
    for i in range(min(n, 200)):
        s = time.perf_counter()
        np.copyto(ring[i % len(ring)], frame)
        cold.append((time.perf_counter() - s) * 1e6)
    return hot, cold


def _paced(
    a: argparse.Namespace, publish_one: Callable[[int], object]
) -> tuple[list[float], float, float]:
    """Publish ``a.frames`` frames at ``a.fps`` (0 = as fast as possible).

    Returns the duration of each publish call (us), process CPU time (s) and wall time (s).
    """
    pub_us: list[float] = []
    period = 1.0 / a.fps if a.fps > 0 else 0.0
    cpu0, t0 = time.process_time(), time.monotonic()
    for i in range(a.frames):
        if period:
            delay = t0 + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        s = time.perf_counter()
        publish_one(i)
        pub_us.append((time.perf_counter() - s) * 1e6)
    return pub_us, time.process_time() - cpu0, time.monotonic() - t0


def _producer_result(
    a: argparse.Namespace, frame: np.ndarray, pub_us: list[float], cpu_s: float, wall_s: float
) -> dict[str, Any]:
    """The producer's figures plus the copy floors measured in the same process."""
    copy_us, ring_us = _copy_floor(frame, np.empty_like(frame), a.frames)
    return {
        "published": a.frames,
        "pub_fps": a.frames / wall_s,
        "producer_cpu_ms": cpu_s / a.frames * 1e3,
        "publish_p50_us": _pct(pub_us, 50),
        "publish_p99_us": _pct(pub_us, 99),
        "copyto_p50_us": _pct(copy_us, 50),
        "copyto_ring_p50_us": _pct(ring_us, 50),
        "copyto_paced_p50_us": _copy_paced(frame, a.fps) if a.fps > 0 else float("nan"),
    }


# ----------------------------------------------------------------------------- roles
def producer_iox(a: argparse.Namespace) -> dict[str, Any]:
    from us_frame_channel import ChannelConfig, FrameWriter

    frame = _frame(a.width, a.height, a.format)
    cfg = ChannelConfig.for_frames(a.name, a.width, a.height, a.format, max_consumers=4)
    with FrameWriter(cfg) as w:
        deadline = time.monotonic() + 30
        while w.consumer_count() < a.consumers:
            if time.monotonic() > deadline:
                raise SystemExit("consumers did not connect")
            time.sleep(0.005)  # start-up only
        for _ in range(WARMUP):  # warm the slots' pages; consumers ignore these
            w.publish(frame, a.format)
        print(json.dumps({"event": "go"}), flush=True)
        time.sleep(0.2)
        pub_us, cpu, wall = _paced(a, lambda i: w.publish(frame, a.format))
        result = _producer_result(a, frame, pub_us, cpu, wall)
        time.sleep(0.5)
    return result


def consumer_iox(a: argparse.Namespace) -> dict[str, Any]:
    from us_frame_channel import FrameReader

    with FrameReader(a.name, mode="every", wait_s=30) as r:
        print(json.dumps({"event": "ready"}), flush=True)
        lat: list[float] = []
        cpu0 = time.process_time()
        t_first = t_last = 0.0
        timeout = 60.0  # until the first frame
        while True:
            f = r.read(timeout)
            if f is None:
                break
            timeout = 2.0
            if f.seq < WARMUP:
                f.release()
                cpu0 = time.process_time()
                continue
            lat.append(f.latency_ns() / 1e3)
            _ = f.array  # the view the consumer works on: zero bytes copied
            f.release()
            t_last = time.monotonic()
            if len(lat) == 1:
                t_first = t_last
        cpu = time.process_time() - cpu0
        n = len(lat)
    return {
        "received": n,
        "lat_us": lat,
        "fps": (n - 1) / (t_last - t_first) if n > 1 and t_last > t_first else 0.0,
        "consumer_cpu_ms": cpu / max(n, 1) * 1e3,
    }


def _ros_ctx() -> Any:
    import rclpy

    rclpy.init()
    return rclpy


def producer_ros(a: argparse.Namespace) -> dict[str, Any]:
    rclpy = _ros_ctx()
    from sensor_msgs.msg import Image

    node = rclpy.create_node(f"bench_producer_{os.getpid()}")
    pub = node.create_publisher(Image, a.name, 10)
    frame = _frame(a.width, a.height, a.format)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() < a.consumers:
        if time.monotonic() > deadline:
            raise SystemExit("ROS subscribers not discovered in 30 s")
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({"event": "go"}), flush=True)
    time.sleep(1.0)  # let the subscribers' side of discovery settle too

    def make_msg() -> Any:
        m = Image()
        m.height, m.width = a.height, a.width
        m.encoding = "mono8" if a.format == "mono8" else "yuv422"
        m.step = frame.nbytes // a.height
        m.data.frombytes(frame.data)  # fast path; `m.data = arr` costs ~16 ms
        return m

    def publish_one(i: int) -> None:
        m = make_msg()
        t = time.monotonic_ns()
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(t, 1_000_000_000)
        m.header.frame_id = str(i)
        pub.publish(m)

    pub_us, cpu, wall = _paced(a, publish_one)
    result = _producer_result(a, frame, pub_us, cpu, wall)
    end = time.monotonic() + 3.0
    while time.monotonic() < end:  # keep serving reliable retransmissions
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return result


def consumer_ros(a: argparse.Namespace) -> dict[str, Any]:
    rclpy = _ros_ctx()
    from sensor_msgs.msg import Image

    node = rclpy.create_node(f"bench_consumer_{os.getpid()}")
    lat: list[float] = []
    stamps: list[float] = []

    def on_image(m: Any) -> None:
        view = np.frombuffer(m.data, dtype=np.uint8)  # the consumer's numpy view
        now = time.monotonic_ns()
        sent = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
        lat.append((now - sent) / 1e3)
        stamps.append(time.monotonic())
        del view

    node.create_subscription(Image, a.name, on_image, 10)
    print(json.dumps({"event": "ready"}), flush=True)
    cpu0 = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
        if stamps and cpu0 is None:
            cpu0 = time.process_time()
        if stamps and time.monotonic() - stamps[-1] > 3.0:
            break
    cpu = time.process_time() - (cpu0 or time.process_time())
    n = len(lat)
    node.destroy_node()
    rclpy.shutdown()
    span = (stamps[-1] - stamps[0]) if n > 1 else 1e-9
    return {
        "received": n,
        "lat_us": lat,
        "fps": (n - 1) / max(span, 1e-9) if n > 1 else 0.0,
        "consumer_cpu_ms": cpu / max(n, 1) * 1e3,
    }


ROLES = {
    "producer-iceoryx2": producer_iox,
    "consumer-iceoryx2": consumer_iox,
    "producer-ros2": producer_ros,
    "consumer-ros2": consumer_ros,
}


# ------------------------------------------------------------------------ orchestration
def _spawn(role: str, a: dict[str, Any]) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--role", role]
    for k, v in a.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )


def _wait_line(p: subprocess.Popen[str], event: str) -> None:
    assert p.stdout is not None
    for line in p.stdout:
        if json.loads(line).get("event") == event:
            return
    raise RuntimeError(f"{event} never came (exit code {p.wait()})")


def _result(p: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = p.communicate(timeout=timeout)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    res = [x for x in lines if x.get("event") == "result"]
    if p.returncode != 0 or not res:
        raise RuntimeError(f"child failed with exit code {p.returncode}")
    return res[-1]


def run_case(transport: str, size: str, consumers: int, fps: float, frames: int) -> dict:
    w, h, fmt = SIZES[size]
    name = f"bench/{uuid.uuid4().hex[:8]}" if transport == "iceoryx2" else "bench_image"
    common = {
        "name": name,
        "width": w,
        "height": h,
        "format": fmt,
        "fps": fps,
        "frames": frames,
        "consumers": consumers,
    }
    cons = [_spawn(f"consumer-{transport}", common) for _ in range(consumers)]
    prod = _spawn(f"producer-{transport}", common)
    for c in cons:
        _wait_line(c, "ready")
    timeout = frames / (fps or 200) + 90
    pres = _result(prod, timeout)
    cres = [_result(c, timeout) for c in cons]
    lat = [x for c in cres for x in c.get("lat_us", [])]
    lost = [frames - c["received"] for c in cres]
    return {
        "transport": transport,
        "size": size,
        "consumers": consumers,
        "paced_fps": fps if fps > 0 else None,
        "lat_p50_us": round(_pct(lat, 50), 1),
        "lat_p99_us": round(_pct(lat, 99), 1),
        "fps": round(min(c["fps"] for c in cres), 1),
        "producer_fps": round(pres["pub_fps"], 1),
        "lost": int(sum(lost)),
        "lost_per_consumer": lost,
        "producer_cpu_ms": round(pres["producer_cpu_ms"], 3),
        "consumer_cpu_ms": round(float(np.mean([c["consumer_cpu_ms"] for c in cres])), 3),
        "publish_p50_us": round(pres["publish_p50_us"], 1),
        "publish_p99_us": round(pres["publish_p99_us"], 1),
        "copyto_p50_us": round(pres["copyto_p50_us"], 1),
        "copyto_ring_p50_us": round(pres["copyto_ring_p50_us"], 1),
        "publish_over_copyto": round(pres["publish_p50_us"] / pres["copyto_p50_us"], 2),
        "copyto_paced_p50_us": round(pres["copyto_paced_p50_us"], 1),
        "publish_over_copyto_paced": round(pres["publish_p50_us"] / pres["copyto_paced_p50_us"], 2)
        if fps > 0
        else None,
        "publish_over_copyto_ring": round(pres["publish_p50_us"] / pres["copyto_ring_p50_us"], 2),
        "consumer_bytes_copied": 0
        if transport == "iceoryx2"
        else w * h * (2 if fmt == "uyvy" else 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=sorted(ROLES))
    p.add_argument("--name", default="")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--format", default="mono8")
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--consumers", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="fewer frames per case")
    p.add_argument("--transports", default="iceoryx2,ros2")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "channel.json"))
    a = p.parse_args()
    if a.role:
        res = ROLES[a.role](a)
        print(json.dumps({"event": "result", **res}), flush=True)
        return 0

    paced_frames = 120 if a.quick else 300
    unpaced_frames = 300 if a.quick else 1500
    cases: list[dict[str, Any]] = []
    hdr = (
        f"{'transport':<9} {'size':<16} {'cons':>4} {'paced':>5} {'p50 us':>9} {'p99 us':>9} "
        f"{'fps':>7} {'prod fps':>8} {'lost':>5} {'prod ms':>8} {'cons ms':>8} "
        f"{'pub/copy':>8} {'/cold':>6}"
    )
    print(hdr)
    for transport in a.transports.split(","):
        for size in SIZES:
            for consumers in (1, 3):
                for fps in (60.0, 0.0):
                    if transport == "ros2" and fps == 0.0 and size != "640x480 mono8":
                        continue  # ROS unpaced at 1080p only floods; paced shows the point
                    n = paced_frames if fps else unpaced_frames
                    if transport == "ros2" and not fps:
                        n = min(n, 300)
                    try:
                        c = run_case(transport, size, consumers, fps, n)
                    except Exception as exc:  # noqa: BLE001 - a failed case is reported
                        c = {
                            "transport": transport,
                            "size": size,
                            "consumers": consumers,
                            "paced_fps": fps or None,
                            "error": str(exc),
                        }
                        print(f"{transport:<9} {size:<16} {consumers:>4} FAILED: {exc}")
                        cases.append(c)
                        continue
                    cases.append(c)
                    print(
                        f"{transport:<9} {size:<16} {consumers:>4} {int(fps) or '-':>5} "
                        f"{c['lat_p50_us']:>9.0f} {c['lat_p99_us']:>9.0f} {c['fps']:>7.0f} "
                        f"{c['producer_fps']:>8.0f} {c['lost']:>5} {c['producer_cpu_ms']:>8.2f} "
                        f"{c['consumer_cpu_ms']:>8.2f} {c['publish_over_copyto']:>8.2f} "
                        f"{c['publish_over_copyto_ring']:>6.2f}",
                        flush=True,
                    )
    ratios = []
    for c in cases:
        if c["transport"] == "iceoryx2" and c.get("paced_fps") and "error" not in c:
            peer = next(
                (
                    r
                    for r in cases
                    if r["transport"] == "ros2"
                    and r["size"] == c["size"]
                    and r["consumers"] == c["consumers"]
                    and r.get("paced_fps")
                    and "error" not in r
                ),
                None,
            )
            if peer:
                ratio = peer["lat_p99_us"] / c["lat_p99_us"]
                c["ros2_p99_over_ours"] = round(ratio, 1)
                ratios.append((c["size"], c["consumers"], ratio))
    for size, consumers, ratio in ratios:
        print(f"ROS 2 topic p99 / channel p99, {size}, {consumers} consumer(s): {ratio:.0f}x")
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "command": "python bench/bench_channel.py" + (" --quick" if a.quick else ""),
        "cases": cases,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
