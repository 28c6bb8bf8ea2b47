"""The bridge node and the acquisition node as real processes: control through gRPC."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

import grpc  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from us_grpc_bridge.client import UltrasoundClient  # noqa: E402


class Proc:
    """A node process whose output lines are collected by a thread (for the port line)."""

    def __init__(self, cmd: list[str]) -> None:
        self.p = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.log.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not seen; output:\n{''.join(self.log)}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            m = re.search(pattern, line)
            if m:
                return m

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def _transition(node: Any, executor: Any, name: str, tid: int, timeout_s: float = 20.0) -> bool:
    client = node.create_client(ChangeState, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout_s), f"no {name}"
        req = ChangeState.Request()
        req.transition.id = tid
        fut = client.call_async(req)
        deadline = time.monotonic() + timeout_s
        while not fut.done() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert fut.done(), f"{name} did not answer"
        return bool(fut.result().success)
    finally:
        node.destroy_client(client)


@pytest.fixture
def graph() -> Iterator[tuple[str, str, int]]:
    uid = uuid.uuid4().hex[:8]
    ns, channel = f"/t{uid}", f"test/grpc-{uid}"
    acq = Proc(
        [
            "acquisition_node", "--ros-args", "-r", f"__ns:={ns}",
            "-p", "source:=synthetic", "-p", "fps:=30.0", "-p", "width:=64", "-p", "height:=48",
            "-p", f"channel_name:={channel}", "-p", "status_rate_hz:=5.0",
        ]
    )  # fmt: skip
    bridge = Proc(
        [
            sys.executable, "-m", "us_grpc_bridge.node", "--ros-args", "-r", f"__ns:={ns}",
            "-p", "port:=0", "-p", "igtl_port:=0", "-p", f"frames_channel:={channel}",
            "-p", f"masks_channel:={channel}-masks", "-p", "service_timeout_s:=10.0",
        ]
    )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"probe_{uid}", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert _transition(node, executor, f"{ns}/grpc_bridge/change_state", tid)
        port = int(bridge.wait_for(r"gRPC server on 127\.0\.0\.1:(\d+)", 10).group(1))
        yield ns, channel, port
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        bridge.stop()
        acq.stop()


def _until(fn: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except grpc.RpcError as exc:
            if time.monotonic() > deadline or exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.1)


def test_control_round_trip_through_grpc(graph: tuple[str, str, int]) -> None:
    _, _, port = graph
    with UltrasoundClient(f"127.0.0.1:{port}", timeout_s=20) as c:
        assert _until(lambda: c.state().state, 20) == "unconfigured"
        r = c.start()
        assert r.state == "active" and "configure" in r.message
        msgs = list(c.stream("frames", encoding="png", max_messages=3, timeout_s=20))
        assert len(msgs) == 3 and msgs[-1].image.width == 64
        assert c.stop().state == "inactive"
        assert c.state().state == "inactive"
        with pytest.raises(grpc.RpcError) as info:
            c.change_state("acquisition", "deactivate")
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as info:
            c.set_parameters("acquisition", {"pixel_format": "rgb565"})
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "one of" in (info.value.details() or "")
        assert c.start().state == "active"
        assert c.state().state == "active"
        with pytest.raises(grpc.RpcError) as info:
            c.reset_volume()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE

        def statuses() -> set[str]:
            return {n.node_name.rsplit("/", 1)[-1] for n in c.status().nodes}

        deadline = time.monotonic() + 10
        while statuses() != {"acquisition", "grpc_bridge"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert statuses() == {"acquisition", "grpc_bridge"}


def test_parameters_declared_and_validated() -> None:
    """Construct the node with overrides, without spinning (generate_parameter_library
    style): defaults and descriptors in place, a bad value refuses configure."""
    from rclpy.parameter import Parameter
    from us_grpc_bridge.node import GrpcBridgeNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = GrpcBridgeNode(
            context=context,
            parameter_overrides=[
                Parameter("port", value=70000),
                Parameter("max_rate_hz", value=30.0),
            ],
        )
        try:
            assert node.get_parameter("max_rate_hz").value == 30.0
            assert node.get_parameter("host").value == "127.0.0.1"
            d = node.describe_parameter("port")
            assert "gRPC port" in d.description and d.integer_range[0].to_value == 65535
            assert any("port" in r for r in node._bad_start_params)
            res = node.set_parameters([Parameter("image_origin", value="middle")])
            assert not res[0].successful and "one of" in res[0].reason
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
