"""Test helper: a ROS node in the test process that drives and watches node processes.

Waits are deadlines on conditions (``spin_until``), never fixed sleeps. Used by the node
tests of every package of the workspace.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import rclpy
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile


class RosProbe:
    """A probe node in its own context; ``ns`` is the namespace of the nodes under test."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"probe_{uuid.uuid4().hex[:6]}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def subscribe(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> list[Any]:
        """Collect every message of ``topic`` (relative names are put under ``ns``)."""
        received: list[Any] = []
        name = topic if topic.startswith("/") else f"{self.ns}/{topic}"
        self.node.create_subscription(msg_type, name, received.append, qos)
        return received

    def spin_until(self, cond: Callable[[], Any], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(cond())

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float = 20.0) -> Any:
        """Call a service (relative names under ``ns``); AssertionError on timeout."""
        name = name if name.startswith("/") else f"{self.ns}/{name}"
        client: Any = self.node.create_client(srv_type, name)
        try:
            assert self.spin_until(lambda: client.service_is_ready(), timeout_s), f"no {name}"
            fut = client.call_async(request)
            assert self.spin_until(fut.done, timeout_s), f"{name} did not answer"
            return fut.result()
        finally:
            self.node.destroy_client(client)

    def transition(self, node: str, tid: int, timeout_s: float = 30.0) -> bool:
        req = ChangeState.Request()
        req.transition.id = tid
        return bool(self.call(ChangeState, f"{node}/change_state", req, timeout_s).success)

    def set_params(self, node: str, **values: Any) -> list[Any]:
        req = SetParameters.Request()
        req.parameters = [
            ParameterMsg(name=k, value=Parameter(k, value=v).get_parameter_value())
            for k, v in values.items()
        ]
        return list(self.call(SetParameters, f"{node}/set_parameters", req).results)

    def close(self) -> None:
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


def start_node(executable: str, ns: str, params: dict[str, Any]) -> subprocess.Popen[str]:
    """Start a node executable under namespace ``ns`` with ``-p name:=value`` overrides."""
    args = [executable, "--ros-args", "-r", f"__ns:={ns}"]
    for k, v in params.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif v == "":
            v = "''"  # an empty string must be quoted on the command line
        args += ["-p", f"{k}:={v}"]
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def stop_node(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> str:
    """SIGINT, then kill after ``timeout_s``; returns what the process printed."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    out = proc.stdout.read() if proc.stdout is not None else ""
    return out or ""
