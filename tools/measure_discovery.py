"""How long a ROS subscriber takes to discover a new process that replaces a SIGKILLed one
(what a respawn looks like to the runner and to every other ROS observer).

A subscriber (latched String topic) runs here; a child process publishes one latched
message and is SIGKILLed, ``--runs`` times. Printed: seconds from the child's publish to
the message arriving here, per run. Run from the repository root after `make setup`:

    source env.sh && python tools/measure_discovery.py [--runs 8]
    FASTDDS_BUILTIN_TRANSPORTS=UDPv4 python tools/measure_discovery.py      # Fast DDS UDP only
    python tools/measure_discovery.py --child-env FASTDDS_BUILTIN_TRANSPORTS=UDPv4

Measured here (docs/reliability.md): stock Fast DDS (shared memory + UDP) 2.3-4.4 s for
every child after the first kill (0.1-0.2 s for the first child); with the child on UDPv4
only mostly 0.07-0.09 s, but 0.55-2.7 s in about 1 run of 4; all on UDPv4 0.08-2.3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

CHILD = r"""
import sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("discovery_child", namespace=sys.argv[1])
qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                 reliability=ReliabilityPolicy.RELIABLE)
node.create_publisher(String, "hello", qos).publish(String(data=repr(time.time())))
print("published", flush=True)
time.sleep(60)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--child-env", action="append", default=[], metavar="NAME=VALUE")
    a = p.parse_args()
    from std_msgs.msg import String
    from us_acquisition.node_common import LATCHED
    from us_acquisition.ros_testing import RosProbe

    ns = f"/discovery{uuid.uuid4().hex[:6]}"
    probe = RosProbe(ns)
    got = probe.subscribe(String, "hello", LATCHED)
    env = dict(os.environ)
    env.update(dict(kv.split("=", 1) for kv in a.child_env))
    out: list[float | None] = []
    try:
        for _ in range(a.runs):
            got.clear()
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, ns], stdout=subprocess.PIPE, text=True, env=env
            )
            assert child.stdout is not None
            child.stdout.readline()
            probe.spin_until(lambda: bool(got), 10)
            out.append(round(time.time() - float(got[0].data), 3) if got else None)
            child.kill()  # SIGKILL, as a crash
            child.wait()
            probe.spin_until(lambda: False, 0.5)
    finally:
        probe.close()
    print("publish -> received here, s (None: not within 10 s):", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
