"""us_interfaces messages built by colcon: fields, constants, and a cross-process topic."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from us_interfaces.msg import ChannelStatus, FrameRef, NodeStatus  # noqa: E402

PUBLISHER = textwrap.dedent(
    """
    import sys, rclpy
    from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy
    from us_interfaces.msg import FrameRef
    rclpy.init()
    node = rclpy.create_node("frame_ref_talker")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(FrameRef, "frame_ref_test", qos)
    m = FrameRef()
    m.channel = "us/frames"; m.layout_version = 1; m.seq = 42; m.width = 640
    m.height = 480; m.pixel_format = "mono8"; m.spacing_x_mm = 0.1; m.roi.width = 600
    pub.publish(m)
    print("published", flush=True)
    sys.stdin.read()  # stay up until the test closes stdin
    """
)


def test_message_fields_and_constants() -> None:
    m = FrameRef()
    assert m.seq == 0 and m.pixel_format == "" and m.spacing_x_mm == 0.0
    m.device_timestamp_ns = -1  # int64: "no device clock" sentinels may be negative
    assert NodeStatus.STATE_ACTIVE == 3
    s = NodeStatus()
    s.channels.append(ChannelStatus(channel="us/frames", consumers=2))
    assert s.channels[0].consumers == 2


def test_frame_ref_crosses_processes() -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    child = subprocess.Popen([sys.executable, "-c", PUBLISHER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    got: list[FrameRef] = []
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("frame_ref_listener", context=context)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(FrameRef, "frame_ref_test", got.append, qos)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 20.0  # discovery takes 0-3 s here
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert got, "no FrameRef from the other process within 20 s"
        m = got[0]
        assert (m.channel, m.layout_version, m.seq, m.width, m.height) == (
            "us/frames", 1, 42, 640, 480)
        assert m.pixel_format == "mono8" and m.spacing_x_mm == pytest.approx(0.1)
        assert m.roi.width == 600
    finally:
        rclpy.shutdown(context=context)
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
