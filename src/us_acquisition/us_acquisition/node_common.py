"""ROS glue shared by the workspace's lifecycle nodes (acquisition, segmentation,
reconstruction, gRPC bridge): parameter declaration from :class:`ParamSpec` tables, the
latched QoS, lifecycle state ids, time stamps. No algorithms here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
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


class StatusPublisher:
    """Publishes a node's ``NodeStatus`` on ``~/status`` (latched) and the same facts as
    ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` (rqt_robot_monitor, the
    diagnostic aggregator): OK while active without error, WARN when not active or when
    frames are dropped, ERROR on an error."""

    def __init__(self, node: Node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._node = node
        self._status = node.create_publisher(NodeStatus, "~/status", LATCHED)
        self._diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._last_dropped = 0

    def publish(self, s: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        self._status.publish(s)
        d = DiagnosticStatus()
        d.name = f"us: {s.node_name}"
        d.hardware_id = s.node_name
        dropped_now = int(s.frames_dropped) > self._last_dropped
        self._last_dropped = int(s.frames_dropped)
        active = s.state == NodeStatus.STATE_ACTIVE
        if s.state == NodeStatus.STATE_ERROR or (s.last_error and not active):
            d.level, d.message = DiagnosticStatus.ERROR, s.last_error or "error"
        elif not active:
            d.level, d.message = DiagnosticStatus.WARN, f"{s.state_label}"
        elif s.last_error:
            d.level, d.message = DiagnosticStatus.WARN, s.last_error
        elif dropped_now:
            d.level, d.message = DiagnosticStatus.WARN, f"dropping frames ({s.frames_dropped})"
        else:
            d.level, d.message = DiagnosticStatus.OK, f"active, {s.fps:.1f} fps"
        d.values = [
            KeyValue(key="state", value=s.state_label),
            KeyValue(key="fps", value=f"{s.fps:.2f}"),
            KeyValue(key="frames_in", value=str(s.frames_in)),
            KeyValue(key="frames_out", value=str(s.frames_out)),
            KeyValue(key="frames_dropped", value=str(s.frames_dropped)),
            KeyValue(key="latency_p50_ms", value=f"{s.latency_p50_ms:.2f}"),
            KeyValue(key="latency_p95_ms", value=f"{s.latency_p95_ms:.2f}"),
            *s.values,
        ]
        arr = DiagnosticArray()
        arr.header.stamp = s.header.stamp
        arr.status = [d]
        self._diag.publish(arr)


def refuse_change(
    specs: Mapping[str, ParamSpec],
    validate: Callable[[str, Any], str | None],
    params: Iterable[Any],
    state_label: str,
) -> Any:
    """The common part of every node's parameter callback: a ``SetParametersResult`` that
    refuses an invalid value, or a value that applies at configure while the node is not
    unconfigured, with the reason; ``None`` when the change may go ahead."""
    from rcl_interfaces.msg import SetParametersResult

    for p in params:
        reason = validate(p.name, p.value)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        spec = specs.get(p.name)
        if spec is not None and not spec.live and state_label != "unconfigured":
            return SetParametersResult(
                successful=False,
                reason=f"{p.name} applies at configure: deactivate and clean up the node "
                f"first (it is {state_label})",
            )
    return None


def spin_node(factory: Callable[[], Node], threads: int, args: list[str] | None = None) -> int:
    """Run a node in a ``MultiThreadedExecutor`` until Ctrl-C / shutdown (kilted style);
    the node's ``release()`` runs on the way out. Returns the process exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    try:
        with rclpy.init(args=args):
            node = factory()
            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
            try:
                executor.spin()
            finally:
                release = getattr(node, "release", None)
                if callable(release):
                    release()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    return 0


class UsLifecycleNode(LifecycleNode):
    """The lifecycle plumbing every node of the workspace shares.

    Keeps ``_state_label`` and publishes the status on every transition; ``_failed(reason)``
    ends a configure with FAILURE and the reason (logged and in ``~/status``); activate /
    deactivate call the subclass's ``start_work()`` / ``pause_work()``; cleanup, shutdown and error
    call its ``release()``. Subclasses implement ``on_configure``, ``_publish_status`` and
    ``release`` and override ``start_work`` / ``pause_work`` when they have work to start or pause.
    """

    _state_label = "unconfigured"
    _last_error = ""

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter(
            "autostart",
            False,
            ParameterDescriptor(
                description="configure and activate by itself once constructed (a respawned "
                "process of us-run --respawn; ros2 launch without a lifecycle manager)",
                read_only=True,
            ),
        )
        # fires once the executor spins, i.e. after the subclass's constructor has finished
        self._autostart_timer = self.create_timer(0.0, self._autostart)

    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if not self.get_parameter("autostart").value:
            return
        self.get_logger().info("autostart: configure, then activate")
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def _p(self, name: str) -> Any:
        """A parameter's value (lists as lists, not ``array.array``)."""
        return plain(self.get_parameter(name).value)

    def _publish_status(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def start_work(self) -> None:
        """Start the node's work (activate)."""

    def pause_work(self) -> None:
        """Pause the node's work (deactivate); what was configured stays."""

    def _set_state(self, label: str) -> None:
        self._state_label = label
        self._publish_status()

    def _failed(self, reason: str) -> TransitionCallbackReturn:
        self._last_error = reason
        self.get_logger().error(f"configure failed: {reason}")
        self._publish_status()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.start_work()
        self._set_state("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.pause_work()
        self._set_state("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._set_state("unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._set_state("finalized")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._set_state("unconfigured")
        return TransitionCallbackReturn.SUCCESS


class TopicReceiver:
    """Subscriptions served by a thread of their own (a helper node ``<owner>_<suffix>`` in
    the owner's context and namespace, spun by a ``SingleThreadedExecutor``).

    For high-rate or large messages (whole frames from another host, /tf at 100+ Hz): in
    the node's ``MultiThreadedExecutor`` a subscription whose callback group is busy makes
    the executor's wait loop spin at 100 % of a core (measured: a 30 fps Frame topic took a
    whole core and cut the segmentation to 9 masks/s; /tf at 100 Hz one message per sample
    arrived late enough that frames were skipped as pose_stale). Here the thread blocks in
    the wait set, takes each message and runs its callback (keep it short: hand the data
    over, thread-safely).
    """

    def __init__(
        self,
        owner: Node,
        msg_type: Any = None,
        topic: str = "",
        callback: Callable[[Any], None] | None = None,
        qos: Any = None,
        *,
        suffix: str = "rx",
    ) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._owner = owner
        self.node = rclpy.create_node(
            f"{owner.get_name()}_{suffix}",
            namespace=owner.get_namespace(),
            context=owner.context,
            start_parameter_services=False,
            # not the process's --ros-args: its `-r __node:=<owner>` would rename this node
            # to the owner's name
            use_global_arguments=False,
        )
        self.topic = ""
        if msg_type is not None and callback is not None:
            self.topic = self.subscribe(msg_type, topic, callback, qos)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._spin, name=f"{owner.get_name()}_{suffix}", daemon=True
        )
        self._thread.start()

    def subscribe(
        self, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any
    ) -> str:
        """One more subscription on the helper node; returns the resolved topic name."""
        name = self._owner.resolve_topic_name(topic)
        self.node.create_subscription(msg_type, name, callback, qos)
        return str(name)

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self._executor.spin_once(timeout_sec=0.2)
            except Exception:  # noqa: BLE001 - context shut down under us
                if not self._stop.is_set():
                    time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._executor.remove_node(self.node)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
