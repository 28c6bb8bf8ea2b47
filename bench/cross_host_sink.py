"""Receiver half of ``bench_cross_host.py``: runs on the remote "host" (a network namespace),
subscribes to one topic for a while and prints what it saw as one JSON line.

    python bench/cross_host_sink.py frames /ns/acquisition/frames --qos best_effort --seconds 20
    python bench/cross_host_sink.py results /ns/segmentation/result --seconds 20

frames:  per message the capture -> received latency (CLOCK_REALTIME, same kernel clock in
         both namespaces) and the frame seq, so the caller can count losses;
results: per SegmentationResult its ``latency_ms`` (capture -> mask, measured by the node)
         and source seq.
The clock starts at the first message (discovery and connection set-up are not counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from us_interfaces.msg import Frame, SegmentationResult


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["frames", "results"])
    ap.add_argument("topic")
    ap.add_argument("--qos", choices=["reliable", "best_effort"], default="reliable")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--wait", type=float, default=60.0, help="s to wait for the first message")
    a = ap.parse_args()
    rel = ReliabilityPolicy.RELIABLE if a.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    rclpy.init()
    node = rclpy.create_node("cross_host_sink")
    seqs: list[int] = []
    lat_ms: list[float] = []
    first: list[float] = []

    def on_frame(m: Frame) -> None:
        now = time.time_ns()
        if not first:
            first.append(time.monotonic())
        seqs.append(int(m.ref.seq))
        lat_ms.append((now - int(m.ref.host_timestamp_ns)) / 1e6)

    def on_result(m: SegmentationResult) -> None:
        if not first:
            first.append(time.monotonic())
        seqs.append(int(m.source_seq))
        lat_ms.append(float(m.latency_ms))

    if a.kind == "frames":
        node.create_subscription(Frame, a.topic, on_frame, QoSProfile(depth=1, reliability=rel))
    else:
        node.create_subscription(
            SegmentationResult, a.topic, on_result, QoSProfile(depth=50, reliability=rel)
        )
    t_wait = time.monotonic() + a.wait
    while not first and time.monotonic() < t_wait:
        rclpy.spin_once(node, timeout_sec=0.1)
    if not first:
        print(json.dumps({"error": f"nothing on {a.topic} within {a.wait} s"}))
        return 1
    end = first[0] + a.seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    elapsed = time.monotonic() - first[0]
    print(json.dumps({"seconds": elapsed, "seqs": seqs, "lat_ms": lat_ms}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
