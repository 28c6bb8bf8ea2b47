"""ROS glue shared by the workspace's lifecycle nodes (acquisition, segmentation,
reconstruction, gRPC bridge): parameter declaration from :class:`ParamSpec` tables, the
latched QoS, lifecycle state ids, time stamps. No algorithms here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from us_frame_channel.paramspec import ParamSpec, plain

from us_interfaces.msg import NodeStatus

#: Latched state (status, info, calibration): RELIABLE + TRANSIENT_LOCAL, depth 1.
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
STATE_IDS = {
    "unconfigured": NodeStatus.STATE_UNCONFIGURED,
    "inactive": NodeStatus.STATE_INACTIVE,
    "active": NodeStatus.STATE_ACTIVE,
    "finalized": NodeStatus.STATE_FINALIZED,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """ROS parameter descriptor of a spec: text (+ choices, + when it applies), range."""
    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    if not spec.live:
        text += " [applies at configure]"
    d = ParameterDescriptor(description=text)
    scalar = spec.default[0] if isinstance(spec.default, list) and spec.default else spec.default
    if spec.min is not None and spec.max is not None and not isinstance(scalar, bool):
        if isinstance(scalar, int):
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max))]
        elif isinstance(scalar, float):
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max))
            ]
    return d


def declare_parameters(
    node: Node, specs: Iterable[ParamSpec], validate: Callable[[str, Any], str | None]
) -> list[str]:
    """Declare every spec; returns the reasons of bad start values (YAML / overrides).

    A value of the wrong type keeps the default (and is reported); the caller refuses to
    configure while the list is non-empty, so the process stays up and says why."""
    bad: list[str] = []
    specs = tuple(specs)
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            node.declare_parameter(spec.name, spec.default, descriptor(spec), ignore_override=True)
            bad.append(f"{spec.name}: {exc}")
    for spec in specs:
        reason = validate(spec.name, plain(node.get_parameter(spec.name).value))
        if reason:
            bad.append(reason)
    for reason in bad:
        node.get_logger().error(f"invalid parameter: {reason}")
    return bad


def stamp(ns: int) -> Any:
    """``builtin_interfaces/Time`` of a CLOCK_REALTIME time in ns."""
    from builtin_interfaces.msg import Time

    sec, nsec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec)
