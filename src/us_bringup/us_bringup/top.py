"""``us-top``: what people look at while the graph runs.

Subscribes to every ``us_interfaces/NodeStatus`` topic (the nodes' latched ``~/status``)
and shows per node its lifecycle state, fps, frames in/out/dropped, latency and last
error, and per shared-memory channel its consumers, fps and publish cost.

    us-top                 # refreshing table, Ctrl-C to quit
    us-top --once --json   # one snapshot as JSON, for scripts
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def _row(s: Any) -> dict[str, Any]:
    return {
        "node": s.node_name,
        "state": s.state_label,
        "fps": round(s.fps, 1),
        "frames_in": s.frames_in,
        "frames_out": s.frames_out,
        "dropped": s.frames_dropped,
        "latency_p50_ms": round(s.latency_p50_ms, 2),
        "latency_p95_ms": round(s.latency_p95_ms, 2),
        "last_error": s.last_error,
        "channels": [
            {
                "channel": c.channel,
                "consumers": c.consumers,
                "max_consumers": c.max_consumers,
                "fps": round(c.fps, 1),
                "seq": c.seq,
                "publish_p50_us": round(c.publish_p50_us, 1),
                "publish_p99_us": round(c.publish_p99_us, 1),
            }
            for c in s.channels
        ],
        "values": {kv.key: kv.value for kv in s.values},
        "age_s": None,
    }


def render(rows: list[dict[str, Any]]) -> str:
    out = [
        f"{'node':<28}{'state':<13}{'fps':>7}{'in':>9}{'out':>9}{'dropped':>9}"
        f"{'p50 ms':>8}{'p95 ms':>8}  last error"
    ]
    for r in rows:
        out.append(
            f"{r['node']:<28}{r['state']:<13}{r['fps']:>7.1f}{r['frames_in']:>9}"
            f"{r['frames_out']:>9}{r['dropped']:>9}{r['latency_p50_ms']:>8.2f}"
            f"{r['latency_p95_ms']:>8.2f}  {r['last_error'][:60]}"
        )
    chans = [(r["node"], c) for r in rows for c in r["channels"]]
    if chans:
        out.append("")
        out.append(
            f"{'channel':<28}{'consumers':>10}{'fps':>8}{'seq':>10}{'publish p50/p99 us':>22}"
        )
        for _, c in chans:
            out.append(
                f"{c['channel']:<28}{c['consumers']:>5}/{c['max_consumers']:<4}{c['fps']:>8.1f}"
                f"{c['seq']:>10}{c['publish_p50_us']:>13.0f}/{c['publish_p99_us']:<8.0f}"
            )
    if not rows:
        out.append("(no node status yet: is the graph running in this ROS domain?)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="us-top", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--wait", type=float, default=3.0, help="--once: wait this long for nodes, s")
    p.add_argument("--period", type=float, default=1.0, help="refresh period, s")
    a = p.parse_args(argv)

    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from us_interfaces.msg import NodeStatus

    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    latest: dict[str, Any] = {}
    subs: dict[str, Any] = {}
    try:
        rclpy.init()
        node = rclpy.create_node("us_top")
        t_end = time.monotonic() + a.wait
        next_draw = 0.0
        while True:
            for topic, types in node.get_topic_names_and_types():
                if "us_interfaces/msg/NodeStatus" in types and topic not in subs:
                    subs[topic] = node.create_subscription(
                        NodeStatus, topic, lambda m, t=topic: latest.__setitem__(t, m), latched
                    )
            rclpy.spin_once(node, timeout_sec=0.1)
            now = time.monotonic()
            if a.once:
                if now >= t_end:
                    break
                continue
            if now >= next_draw:
                next_draw = now + a.period
                rows = [_row(latest[t]) for t in sorted(latest)]
                text = json.dumps(rows) if a.json else render(rows)
                sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
                sys.stdout.flush()
        rows = [_row(latest[t]) for t in sorted(latest)]
        print(json.dumps(rows, indent=1) if a.json else render(rows))
    except KeyboardInterrupt:
        pass
    finally:
        if rclpy.ok():
            from .runner import finishes

            # bounded: Fast DDS's TCP transport (LARGE_DATA) can hang in participant
            # destruction; the snapshot is printed already
            if not finishes(rclpy.shutdown, 5.0):
                sys.stdout.flush()
                os._exit(0)
    return 0
