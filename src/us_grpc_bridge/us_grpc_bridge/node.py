"""The grpc_bridge lifecycle node: a thin ROS wrapper around :class:`BridgeServer`.

configure:  load tokens/TLS, bind the gRPC port (FAILURE + reason if unsafe or taken);
            control, status, volume and mesh RPCs work from here on
activate:   start the frame/mask channel readers (streams), health SERVING, OpenIGTLink
deactivate: end the streams, health NOT_SERVING (control still answers)
cleanup / shutdown: stop the server

Subscribes: /tf, /tf_static (poses), every us_interfaces/NodeStatus topic (discovered),
<ns>/reconstruction/info, <ns>/segmentation/result (StreamUpdates).
Publishes: ~/status us_interfaces/NodeStatus, RELIABLE + TRANSIENT_LOCAL, depth 1.
Calls: <ns>/<node>/change_state|get_state|set_parameters, <ns>/reconstruction/reset|save|
get_volume|get_mesh, <ns>/recorder/recording.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import grpc
from rcl_interfaces.msg import (
    SetParametersResult,
)
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from us_acquisition.node_common import (
    LATCHED,
    STATE_IDS,
    StatusPublisher,
    TopicReceiver,
    UsLifecycleNode,
    declare_parameters,
    refuse_change,
    spin_node,
)

from us_interfaces.msg import NodeStatus

from . import convert
from .auth import AuthConfigError, TlsSettings, load_tokens
from .params import PARAMETERS, SPECS, validate
from .pose import ImageCalibration
from .service import BackendError, BridgeConfig, BridgeServer

TF_STATIC = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
_STATUS_TYPE = "us_interfaces/msg/NodeStatus"


class RosBackend:
    """The servicer's access to ROS: service clients, latest statuses, poses."""

    def __init__(self, node: GrpcBridgeNode) -> None:
        self.node = node
        self.group = ReentrantCallbackGroup()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.statuses: dict[str, tuple[Any, float]] = {}
        self.poses: Any = None  # us_acquisition.poses.PoseBuffer once configured

    def _path(self, node: str, leaf: str) -> str:
        ns = self.node.get_namespace().rstrip("/")
        return f"{ns}/{node.strip('/')}/{leaf}"

    def _call(self, srv_type: Any, name: str, request: Any) -> Any:
        timeout = float(self.node._p("service_timeout_s"))
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self.node.create_client(srv_type, name, callback_group=self.group)
                self._clients[name] = client
        if not client.service_is_ready() and not client.wait_for_service(
            timeout_sec=min(1.0, timeout)
        ):
            raise BackendError(
                grpc.StatusCode.UNAVAILABLE, f"service {name} is not available (node not running?)"
            )
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            raise BackendError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{name} did not answer within {timeout:g} s"
            )
        result = future.result()
        if result is None:
            raise BackendError(grpc.StatusCode.UNAVAILABLE, f"{name} call failed")
        return result

    # -- status ---------------------------------------------------------------------
    def node_statuses(self) -> list[tuple[Any, float]]:
        now = time.monotonic()
        with self._lock:
            items = sorted(self.statuses.items())
        return [(msg, now - t) for _, (msg, t) in items]

    def on_status(self, msg: Any) -> None:
        with self._lock:
            self.statuses[msg.node_name] = (msg, time.monotonic())

    def _last_error(self, node: str) -> str:
        full = self._path(node, "").rstrip("/")
        with self._lock:
            entry = self.statuses.get(full)
        return entry[0].last_error if entry is not None else ""

    # -- lifecycle ------------------------------------------------------------------
    def get_state(self, node: str) -> str:
        from lifecycle_msgs.srv import GetState

        res = self._call(GetState, self._path(node, "get_state"), GetState.Request())
        return str(res.current_state.label)

    def change_state(self, node: str, transition: str) -> str:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        before = self.get_state(node)
        ids = {
            "configure": Transition.TRANSITION_CONFIGURE,
            "cleanup": Transition.TRANSITION_CLEANUP,
            "activate": Transition.TRANSITION_ACTIVATE,
            "deactivate": Transition.TRANSITION_DEACTIVATE,
            "shutdown": {
                "unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
                "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
                "active": Transition.TRANSITION_ACTIVE_SHUTDOWN,
            }.get(before, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN),
        }
        req = ChangeState.Request()
        req.transition.id = ids[transition]
        res = self._call(ChangeState, self._path(node, "change_state"), req)
        if not res.success:
            after = self.get_state(node)
            why = self._last_error(node) if after == before else ""
            raise BackendError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{node}: {transition} refused in state {before} (now {after})"
                + (f": {why}" if why else ""),
            )
        return self.get_state(node)

    def set_parameters(self, node: str, values: dict[str, Any]) -> None:
        from rcl_interfaces.srv import SetParameters

        name = self._path(node, "set_parameters")
        for key, value in values.items():
            reason = self._set_one(SetParameters, name, key, value)
            if reason and "type" in reason.lower():
                widened = _as_float(value)
                if widened is not None:  # `fps 60` for a double parameter
                    reason = self._set_one(SetParameters, name, key, widened)
            if reason is not None:
                raise BackendError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"{node} refused {key}: {reason}"
                )

    def _set_one(self, srv: Any, name: str, key: str, value: Any) -> str | None:
        req = srv.Request()
        req.parameters = [Parameter(key, value=value).to_parameter_msg()]
        (result,) = self._call(srv, name, req).results
        return None if result.successful else (result.reason or "refused")

    # -- reconstruction, recorder ------------------------------------------------------
    def _recon(self, leaf: str) -> str:
        return self._path(self.node._p("reconstruction_node"), leaf)

    @staticmethod
    def _check(res: Any, what: str) -> Any:
        if not res.success:
            raise BackendError(grpc.StatusCode.FAILED_PRECONDITION, f"{what}: {res.message}")
        return res

    def get_volume(self, downsample: int, intensity: bool, labels: bool) -> Any:
        from us_interfaces.srv import GetVolume

        req = GetVolume.Request(downsample=downsample, intensity=intensity, labels=labels)
        res = self._call(GetVolume, self._recon("get_volume"), req)
        return self._check(res, "get_volume").volume

    def get_mesh(self) -> Any:
        from us_interfaces.srv import GetMesh

        res = self._call(GetMesh, self._recon("get_mesh"), GetMesh.Request())
        return self._check(res, "get_mesh").mesh

    def reset_volume(self) -> str:
        from us_interfaces.srv import Trigger

        res = self._call(Trigger, self._recon("reset"), Trigger.Request())
        return str(self._check(res, "reset").message)

    def save_volume(self, directory: str, basename: str, formats: list[str]) -> list[str]:
        from us_interfaces.srv import SaveVolume

        req = SaveVolume.Request(directory=directory, basename=basename, formats=formats)
        res = self._call(SaveVolume, self._recon("save"), req)
        return list(self._check(res, "save").paths)

    def recording(self, start: bool, path: str) -> Any:
        from us_interfaces.srv import Recording

        name = self._path(self.node._p("recorder_node"), "recording")
        res = self._call(Recording, name, Recording.Request(start=start, path=path))
        return self._check(res, "recording")

    # -- poses ------------------------------------------------------------------------
    def T_world_probe(self, stamp_ns: int) -> tuple[Any | None, str]:
        if self.poses is None:
            return None, "no_pose_buffer"
        from us_acquisition.poses import PoseLookupError

        p = self.node._p
        try:
            return (
                self.poses.lookup(
                    p("world_frame"),
                    p("probe_frame"),
                    stamp_ns,
                    max_gap_ns=int(p("pose_max_gap_ms") * 1e6),
                    max_age_ns=int(p("pose_max_age_ms") * 1e6),
                    time_offset_ns=int(p("pose_time_offset_ms") * 1e6),
                ),
                "ok",
            )
        except PoseLookupError as exc:
            return None, exc.reason


def _as_float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return [float(v) for v in value]
    return None


class GrpcBridgeNode(UsLifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("grpc_bridge", **kwargs)
        bad = declare_parameters(self, PARAMETERS, validate)
        self._bad_start_params = bad
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._state_label = "unconfigured"
        self._last_error = ""
        self.backend = RosBackend(self)
        self.server: BridgeServer | None = None
        self.igtl: Any = None
        self._subs: dict[str, Any] = {}
        self._tf_rx: TopicReceiver | None = None
        self._status_pub = StatusPublisher(self)
        self._status_timer = self.create_timer(
            1.0 / self._p("status_rate_hz"), self._publish_status
        )
        self._discover_timer = self.create_timer(1.0, self._discover_statuses)
        self._discover_statuses()
        self._publish_status()

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = refuse_change(SPECS, validate, params, self._state_label)
        return refused if refused is not None else SetParametersResult(successful=True)

    # -- subscriptions ------------------------------------------------------------------
    def _discover_statuses(self) -> None:
        for name, types in self.get_topic_names_and_types():
            if _STATUS_TYPE in types and name not in self._subs:
                self._subs[name] = self.create_subscription(
                    NodeStatus, name, self.backend.on_status, LATCHED
                )

    def _on_tf(self, msg: Any, static: bool = False) -> None:
        from us_acquisition.poses import transform_from_ros

        buf = self.backend.poses
        if buf is None:
            return
        for ts in msg.transforms:
            t, r = ts.transform.translation, ts.transform.rotation
            T = transform_from_ros((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))
            stamp = ts.header.stamp.sec * 1_000_000_000 + ts.header.stamp.nanosec
            buf.add(ts.header.frame_id, ts.child_frame_id, T, stamp, static=static)

    def _subscribe_data(self) -> None:
        from tf2_msgs.msg import TFMessage
        from us_acquisition.poses import PoseBuffer

        from us_interfaces.msg import ReconstructionInfo, SegmentationResult

        self.backend.poses = PoseBuffer()
        # /tf and /tf_static in a thread of their own (node_common.TopicReceiver)
        rx = TopicReceiver(self, TFMessage, "/tf", self._on_tf, 100, suffix="tf")
        rx.subscribe(TFMessage, "/tf_static", lambda m: self._on_tf(m, static=True), TF_STATIC)
        self._tf_rx = rx

        def on_recon(msg: Any) -> None:
            if self.server is not None:
                self.server.servicer.publish_update(convert.reconstruction_update(msg))

        def on_seg(msg: Any) -> None:
            if self.server is not None:
                self.server.servicer.publish_update(convert.segmentation_update(msg))

        self._subs["recon"] = self.create_subscription(
            ReconstructionInfo, self._p("reconstruction_info_topic"), on_recon, 10
        )
        self._subs["seg"] = self.create_subscription(
            SegmentationResult, self._p("segmentation_topic"), on_seg, 10
        )

    def _unsubscribe_data(self) -> None:
        rx, self._tf_rx = self._tf_rx, None
        if rx is not None:
            rx.close()
        for key in ("recon", "seg"):
            sub = self._subs.pop(key, None)
            if sub is not None:
                self.destroy_subscription(sub)
        self.backend.poses = None

    # -- lifecycle ------------------------------------------------------------------------
    def _config(self) -> BridgeConfig:
        p = self._p
        return BridgeConfig(
            host=p("host"),
            port=p("port"),
            max_clients=p("max_clients"),
            max_message_bytes=p("max_message_bytes"),
            max_rate_hz=p("max_rate_hz"),
            frames_channel=p("frames_channel"),
            masks_channel=p("masks_channel"),
            world_frame=p("world_frame"),
            allow_insecure_remote=p("allow_insecure_remote"),
            tls=TlsSettings(p("tls_cert"), p("tls_key"), p("tls_client_ca")),
            calibration=ImageCalibration(
                tuple(p("probe_image_rotation_deg")),
                tuple(p("probe_image_translation_mm")),
                p("image_origin"),
            ),
            service_timeout_s=p("service_timeout_s"),
        )

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._bad_start_params:
            return self._failed("invalid parameters: " + "; ".join(self._bad_start_params))
        env = self._p("token_env")
        try:
            tokens = load_tokens(self._p("token_file"), os.environ.get(env) if env else None)
            server = BridgeServer(self._config(), self.backend, tokens)
            server.start()
        except (AuthConfigError, OSError, ValueError) as exc:
            return self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed configure
            return self._failed(f"{type(exc).__name__}: {exc}")
        self.server = server
        self._subscribe_data()
        self._last_error = ""
        self._state_label = "inactive"
        self.get_logger().info(
            f"gRPC server on {self._p('host')}:{server.port} "
            f"(auth {'on' if server.interceptor.enabled else 'off, loopback'}, "
            f"{'TLS' if server.credentials is not None else 'plaintext'})"
        )
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def start_work(self) -> None:
        assert self.server is not None
        self.server.activate()
        port = int(self._p("igtl_port"))
        if port > 0:
            from .igtl import IgtlStreamer

            try:
                self.igtl = IgtlStreamer(
                    self.server.servicer.combined,
                    self.backend.T_world_probe,
                    self.server.config.calibration,
                    host=self._p("igtl_host"),
                    port=port,
                    rate_hz=self._p("igtl_rate_hz"),
                    image_name=self._p("igtl_image_name"),
                    labels_name=self._p("igtl_labels_name"),
                    transform_name=self._p("igtl_transform_name"),
                )
                self.get_logger().info(f"OpenIGTLink on {self._p('igtl_host')}:{port}")
            except OSError as exc:  # the gRPC side still works: say so, go on
                self._last_error = f"OpenIGTLink port {port}: {exc.strerror}"
                self.get_logger().error(self._last_error)

    def pause_work(self) -> None:
        self._stop_streaming()

    def _stop_streaming(self) -> None:
        if self.igtl is not None:
            self.igtl.close()
            self.igtl = None
        if self.server is not None:
            self.server.deactivate()

    def release(self) -> None:
        self._stop_streaming()
        if self.server is not None:
            self.server.stop()
            self.server = None
        self._unsubscribe_data()

    # -- status ----------------------------------------------------------------------------
    def _publish_status(self) -> None:
        from diagnostic_msgs.msg import KeyValue

        s = NodeStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.node_name = self.get_fully_qualified_name()
        s.state = STATE_IDS.get(self._state_label, NodeStatus.STATE_UNKNOWN)
        s.state_label = self._state_label
        s.last_error = self._last_error
        srv = self.server
        if srv is not None:
            sv = srv.servicer
            clients = sv.clients()
            pump = sv.frame_pump if sv.streaming else None
            s.frames_in = pump.items if pump is not None else 0
            s.frames_out = sum(c.messages_sent for c in clients)
            s.frames_dropped = sum(c.box.dropped for c in clients if c.box is not None)
            s.fps = float(sum(c.fps() for c in clients))
            values = {
                "port": str(srv.port),
                "auth": "on" if srv.interceptor.enabled else "off",
                "tls": "mtls"
                if srv.config.tls.client_ca
                else ("on" if srv.credentials is not None else "off"),
                "clients": str(len(clients)),
                "refusals": str(srv.refusals),
                "frames_channel_connected": str(bool(pump and pump.connected)).lower(),
                "igtl_port": str(self.igtl.port) if self.igtl is not None else "off",
            }
            for i, c in enumerate(clients):
                box = c.box
                values[f"client{i}"] = (
                    f"peer={c.peer} role={c.role} stream={c.stream} fps={c.fps():.1f} "
                    f"sent={c.messages_sent} dropped={box.dropped if box else 0} "
                    f"skipped={box.skipped if box else 0} bytes={c.bytes_sent}"
                )
            s.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self._status_pub.publish(s)


def main(args: list[str] | None = None) -> int:
    return spin_node(GrpcBridgeNode, threads=4, args=args)


if __name__ == "__main__":
    sys.exit(main())
