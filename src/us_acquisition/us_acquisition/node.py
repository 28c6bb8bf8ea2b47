"""The acquisition lifecycle node: a thin ROS wrapper around :class:`CaptureLoop`.

configure: open the source, create the frame channel  (FAILURE + reason if it cannot)
activate:  stream                                      deactivate: pause, keep the channel
cleanup / shutdown: release source and channel

Topics (relative to the node's namespace):
  ~/frame_ref us_interfaces/FrameRef   sensor QoS, one per frame in the channel
  ~/frames    us_interfaces/Frame      RELIABLE, depth 2: whole frames, only while somebody
                                       subscribes (another host, ros2 bag); frames_topic
  ~/preview   sensor_msgs/Image        sensor QoS, downscaled, <= preview_rate_hz
  ~/status    us_interfaces/NodeStatus RELIABLE + TRANSIENT_LOCAL, depth 1
  /tf        tf2_msgs/TFMessage       tracker transforms carried by the source
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from rcl_interfaces.msg import (
    SetParametersResult,
)
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from us_frame_channel import LAYOUT_VERSION, ChannelConfig, ChannelError, PixelFormat
from us_interfaces.msg import ChannelStatus, Frame, FrameRef, NodeStatus

from .capture import CaptureLoop, PublishedFrame
from .frame_topic import TopicFramePublisher, fill_frame_ref
from .geometry import FrameGeometry, GeometryError
from .node_common import (
    STATE_IDS,
    StatusPublisher,
    UsLifecycleNode,
    declare_parameters,
    refuse_change,
    spin_node,
    stamp,
)
from .params import PARAMETERS, SPECS, validate
from .sources.base import SourceError
from .sources.factory import make_source

try:  # the standard package on a ROS install, our compatibility build otherwise
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - the workspace always builds tf2_msgs
    TFMessage = None

_STATE_IDS = STATE_IDS
_stamp = stamp
# whole frames: RELIABLE (serves RELIABLE and BEST_EFFORT readers), KEEP_LAST 2 so that a
# slow reader loses old frames instead of holding up the writer
FRAMES_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)


class AcquisitionNode(UsLifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("acquisition", **kwargs)
        bad = declare_parameters(self, PARAMETERS, validate)
        self._bad_start_params = bad
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._state_label = "unconfigured"
        self._last_error = ""
        self._loop: CaptureLoop | None = None
        self._frame_ref_pub: Any = None
        self._preview_pub: Any = None
        self._tf_pub: Any = None
        self._frames_pub: Any = None
        self._frames_topic: TopicFramePublisher | None = None
        self._last_preview = 0.0
        self._frames_out = 0
        self._lock = threading.Lock()
        self._status_pub = StatusPublisher(self)
        self._status_timer = self.create_timer(
            1.0 / self._p("status_rate_hz"), self._publish_status
        )
        self._publish_status()

    # -- parameters ----------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {s.name: self._p(s.name) for s in PARAMETERS}

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = refuse_change(SPECS, validate, params, self._state_label)
        if refused is not None:
            return refused
        live = {p.name: p.value for p in params if p.name in ("spacing_mm", "imaging_depth_mm")}
        if live and self._loop is not None:
            values = self._params() | live
            try:
                self._loop.set_geometry(self._geometry(values))
            except (GeometryError, ValueError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    @staticmethod
    def _geometry(p: dict[str, Any]) -> FrameGeometry:
        roi = [int(v) for v in p["roi"]]
        depths = [d for d in p["depths_mm"] if d > 0]
        spacings = list(p["depth_spacings_mm"]) if depths else []
        return FrameGeometry.from_params(
            roi if any(roi) else [],
            p["spacing_mm"],
            depths,
            spacings,
            p["imaging_depth_mm"],
            crop_to_roi=p["crop_to_roi"],
        )

    # -- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._bad_start_params:
            return self._failed("invalid parameters: " + "; ".join(self._bad_start_params))
        p = self._params()
        names, parents, children = (
            p["tf_transform_names"],
            p["tf_parent_frames"],
            p["tf_child_frames"],
        )
        if not (len(names) == len(parents) == len(children)):
            return self._failed(
                "tf_transform_names, tf_parent_frames and tf_child_frames need the same length"
            )
        self._tf_map = {n: (pa, ch) for n, pa, ch in zip(names, parents, children, strict=True)}
        try:
            geometry = self._geometry(p)
            channel = ChannelConfig(
                name=p["channel_name"],
                max_frame_bytes=1,  # sized from the source at open
                max_consumers=p["channel_max_consumers"],
                buffer_frames=p["channel_buffer_frames"],
                max_borrowed=p["channel_max_borrowed"],
            )
            source = make_source(p)
            loop = CaptureLoop(source, channel, geometry, on_frame=self._on_frame)
            t0 = time.monotonic()
            info = loop.open()
        except (SourceError, ChannelError, GeometryError, ValueError) as exc:
            return self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed configure
            return self._failed(f"{type(exc).__name__}: {exc}")
        self._loop = loop
        self._frame_ref_pub = self.create_lifecycle_publisher(
            FrameRef, "~/frame_ref", qos_profile_sensor_data
        )
        self._preview_pub = self.create_lifecycle_publisher(
            Image, "~/preview", qos_profile_sensor_data
        )
        if TFMessage is not None:
            self._tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        if p["frames_topic"]:
            fp = self._frames_pub = self.create_publisher(Frame, "~/frames", FRAMES_QOS)
            self._frames_topic = TopicFramePublisher(fp.publish, fp.get_subscription_count)
        self._last_error = ""
        self._state_label = "inactive"
        self.get_logger().info(
            f"configured in {time.monotonic() - t0:.2f} s: {info.description} -> channel "
            f"'{p['channel_name']}'"
        )
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def start_work(self) -> None:
        assert self._loop is not None
        self._loop.start()

    def pause_work(self) -> None:
        if self._loop is not None:
            self._loop.pause()

    def release(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._frames_topic is not None:
            self._frames_topic.close()
            self._frames_topic = None
        if self._frames_pub is not None:
            self.destroy_publisher(self._frames_pub)
            self._frames_pub = None
        for attr in ("_frame_ref_pub", "_preview_pub"):
            pub = getattr(self, attr)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, attr, None)
        if self._tf_pub is not None:
            self.destroy_publisher(self._tf_pub)
            self._tf_pub = None

    # -- per frame (capture thread) --------------------------------------------------------
    def _on_frame(self, pub: PublishedFrame) -> None:
        p_frame_ref, p_preview, p_tf = self._frame_ref_pub, self._preview_pub, self._tf_pub
        stamp = _stamp(pub.frame.host_timestamp_ns)
        topic = self._frames_topic
        if p_frame_ref is not None or topic is not None:
            m = fill_frame_ref(
                FrameRef(),
                channel=self._p("channel_name"),
                frame_id=self._p("image_frame_id"),
                seq=pub.seq,
                epoch=pub.epoch,
                device_timestamp_ns=pub.frame.device_timestamp_ns,
                host_timestamp_ns=pub.frame.host_timestamp_ns,
                width=pub.width,
                height=pub.height,
                pixel_format=pub.pixel_format,
                spacing_mm=pub.spacing_mm,
                roi=pub.roi,
                payload_bytes=pub.payload_bytes,
            )
            if p_frame_ref is not None:
                p_frame_ref.publish(m)
            if topic is not None:
                topic.offer(m, pub.image)
        if p_tf is not None and pub.frame.transforms:
            self._publish_tf(p_tf, pub)
        rate = self._p("preview_rate_hz")
        now = time.monotonic()
        if p_preview is not None and rate > 0 and now - self._last_preview >= 1.0 / rate:
            self._last_preview = now
            p_preview.publish(self._preview(pub, stamp))
        self._frames_out += 1

    def _publish_tf(self, publisher: Any, pub: PublishedFrame) -> None:
        msg = TFMessage()
        for t in pub.frame.transforms:
            if not t.valid:
                continue  # the tracker lost it: a gap in /tf, never a guess
            # configured TF frames for the source's transform name, else its own names
            frames = self._tf_map.get(t.name) or (t.to_frame, t.from_frame)
            ts = TransformStamped()
            ts.header.stamp = _stamp(t.timestamp_ns)
            ts.header.frame_id, ts.child_frame_id = frames
            m = t.matrix
            ts.transform.translation.x = float(m[0, 3]) / 1000.0  # mm -> m (ROS REP 103)
            ts.transform.translation.y = float(m[1, 3]) / 1000.0
            ts.transform.translation.z = float(m[2, 3]) / 1000.0
            qx, qy, qz, qw = _quaternion(m)
            r = ts.transform.rotation
            r.x, r.y, r.z, r.w = qx, qy, qz, qw
            msg.transforms.append(ts)
        if msg.transforms:
            publisher.publish(msg)

    def _preview(self, pub: PublishedFrame, stamp: Any) -> Image:
        img = pub.frame.image
        roi = self._loop.geometry.roi if self._loop is not None else None
        if roi is not None and self._loop is not None and self._loop.geometry.crop_to_roi:
            x, y, w, h = roi
            img = img[y : y + h, x : x + w]
        if pub.pixel_format is PixelFormat.UYVY:
            img = img[..., 1]  # luma
        step = max(1, -(-img.shape[1] // self._p("preview_max_width")))
        small = img[::step, ::step]
        m = Image()
        m.header.stamp = stamp
        m.header.frame_id = self._p("image_frame_id")
        m.height, m.width = int(small.shape[0]), int(small.shape[1])
        enc = {1: "mono8", 3: "bgr8", 4: "bgra8"}
        channels = small.shape[2] if small.ndim == 3 else 1
        if small.dtype.itemsize == 2:
            m.encoding = "mono16"
        else:
            m.encoding = enc.get(channels, "mono8")
        contiguous = small.copy()
        m.step = int(contiguous.strides[0])
        m.data.frombytes(contiguous.data)  # not `m.data = arr` (16 ms per assignment)
        return m

    # -- status ----------------------------------------------------------------------------
    def _publish_status(self) -> None:
        s = NodeStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.node_name = self.get_fully_qualified_name()
        s.state = _STATE_IDS.get(self._state_label, NodeStatus.STATE_UNKNOWN)
        s.state_label = self._state_label
        loop = self._loop
        if loop is not None:
            snap = loop.snapshot()
            if snap.state == "error":
                s.state = NodeStatus.STATE_ERROR
            s.fps = snap.fps
            s.frames_in = snap.produced + snap.source_dropped
            s.frames_out = snap.produced
            s.frames_dropped = snap.source_dropped
            s.last_error = snap.last_error or self._last_error
            c = ChannelStatus()
            c.header.stamp = s.header.stamp
            if loop.writer is not None:
                c.channel = loop.writer.config.name
                c.max_frame_bytes = loop.writer.config.max_frame_bytes
                c.max_consumers = loop.writer.config.max_consumers
                c.seq = max(0, loop.writer.seq - 1)
            c.layout_version = LAYOUT_VERSION
            c.consumers = snap.consumers
            c.frames_published = snap.produced
            c.fps = snap.fps
            c.publish_p50_us, c.publish_p99_us = snap.publish_p50_us, snap.publish_p99_us
            s.channels.append(c)
            from diagnostic_msgs.msg import KeyValue

            s.values.append(KeyValue(key="source_state", value=snap.state))
            s.values.append(
                KeyValue(key="jitter_p99_us", value=f"{snap.interval_jitter_p99_us:.0f}")
            )
            if loop.info is not None:
                s.values.append(KeyValue(key="source", value=loop.info.description))
            topic = self._frames_topic
            if topic is not None:
                s.values.append(
                    KeyValue(key="frames_topic_subscribers", value=str(topic.subscribers()))
                )
                s.values.append(KeyValue(key="frames_topic_published", value=str(topic.published)))
                s.values.append(
                    KeyValue(key="frames_topic_superseded", value=str(topic.superseded))
                )
                if topic.last_error:
                    s.values.append(KeyValue(key="frames_topic_error", value=topic.last_error))
        else:
            s.last_error = self._last_error
        self._status_pub.publish(s)


def _quaternion(m: Any) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of the rotation part of a 4x4 matrix."""
    import numpy as np

    r = np.asarray(m, dtype=np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(r)  # nearest rotation: trackers' matrices are not exact
    r = u @ vt
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        return ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s)
    i = int(np.argmax([r[0, 0], r[1, 1], r[2, 2]]))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
    q = [0.0, 0.0, 0.0]
    q[i] = 0.25 * s
    q[j] = (r[j, i] + r[i, j]) / s
    q[k] = (r[k, i] + r[i, k]) / s
    w = (r[k, j] - r[j, k]) / s
    return (q[0], q[1], q[2], w)


def main(args: list[str] | None = None) -> int:
    return spin_node(AcquisitionNode, threads=2, args=args)


if __name__ == "__main__":
    sys.exit(main())
