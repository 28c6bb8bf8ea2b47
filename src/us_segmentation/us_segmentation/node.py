"""The segmentation lifecycle node: a thin ROS wrapper around :class:`LiveSegmenter`.

configure: load and validate the model (FAILURE + reason if it cannot), create the mask
           channel (and, with input_transport topic, subscribe to input_topic)
activate:  segment the newest frame of the input, in the worker thread
deactivate: pause (the model stays loaded)     cleanup / shutdown: release model + channel

Topics (relative to the node's namespace):
  ~/result   us_interfaces/SegmentationResult  RELIABLE, depth 10: one per mask
  ~/overlay  sensor_msgs/Image                 sensor QoS, bgr8, <= preview_rate_hz
  ~/mask     us_interfaces/Frame               RELIABLE, depth 2: label8 masks, only while
                                               somebody subscribes (mask_topic)
  input_topic us_interfaces/Frame (subscribed) with input_transport topic, depth 1, served
              by the helper node ~_rx in a thread of its own (node_common.TopicReceiver)
  ~/status   us_interfaces/NodeStatus          RELIABLE + TRANSIENT_LOCAL, depth 1
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from us_acquisition.frame_topic import (
    FrameTopicError,
    TopicFramePublisher,
    fill_frame_ref,
    frame_from_msg,
)
from us_acquisition.node_common import (
    STATE_IDS,
    StatusPublisher,
    TopicReceiver,
    UsLifecycleNode,
    declare_parameters,
    refuse_change,
    spin_node,
    stamp,
)
from us_frame_channel.paramspec import plain

from us_frame_channel import LAYOUT_VERSION, ChannelConfig, ChannelError, PixelFormat
from us_interfaces.msg import ChannelStatus, Frame, FrameRef, NodeStatus, SegmentationResult

from . import default_model_dir
from .inference import PostProcess, Segmenter
from .live import (
    ChannelInput,
    FrameInput,
    LiveSegmenter,
    MaskResult,
    TemporalSmoother,
    TopicInput,
    overlay_bgr,
    percentile,
)
from .model_card import ModelCardError
from .params import PARAMETERS, SPECS, validate

RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
MASK_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
INPUT_QOS = {
    "reliable": QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
    "best_effort": QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
}


class SegmentationNode(UsLifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("segmentation", **kwargs)
        self._bad_start_params = declare_parameters(self, PARAMETERS, validate)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._state_label = "unconfigured"
        self._last_error = ""
        self._live: LiveSegmenter | None = None
        self._segmenter: Segmenter | None = None
        self._result_pub: Any = None
        self._overlay_pub: Any = None
        self._mask_pub: Any = None
        self._mask_topic: TopicFramePublisher | None = None
        self._frames_sub: TopicReceiver | None = None
        self._topic_input: TopicInput | None = None
        self._last_preview = 0.0
        self._model_info = ""
        self._lock = threading.Lock()
        self._status_pub = StatusPublisher(self)
        self._status_timer = self.create_timer(
            1.0 / self._p("status_rate_hz"), self._publish_status
        )
        self._publish_status()

    # -- parameters ------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = refuse_change(SPECS, validate, params, self._state_label)
        if refused is not None:
            return refused
        values = {p.name: plain(p.value) for p in params}
        seg, live = self._segmenter, self._live
        if seg is not None:
            seg.post = self._post(values)
        if live is not None and ({"temporal_weight", "temporal_max_gap_ms"} & values.keys()):
            live.smoother = self._smoother(values)
        return SetParametersResult(successful=True)

    def _value(self, name: str, override: dict[str, Any]) -> Any:
        return override[name] if name in override else self._p(name)

    def _post(self, override: dict[str, Any] | None = None) -> PostProcess:
        o = override or {}
        return PostProcess(
            largest_component=bool(self._value("largest_component", o)),
            fill_holes=bool(self._value("fill_holes", o)),
            min_area_mm2=float(self._value("min_area_mm2", o)),
        )

    def _smoother(self, override: dict[str, Any] | None = None) -> TemporalSmoother | None:
        o = override or {}
        w = float(self._value("temporal_weight", o))
        if w >= 1.0:
            return None
        return TemporalSmoother(w, float(self._value("temporal_max_gap_ms", o)))

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._bad_start_params:
            return self._failed("invalid parameters: " + "; ".join(self._bad_start_params))
        t0 = time.monotonic()
        try:
            model = self._p("model_path") or str(default_model_dir())
            backend = self._p("backend")
            threads = int(self._p("threads")) or None
            seg = Segmenter(
                Path(model),
                backend=None if backend == "auto" else backend,
                device=self._p("device"),
                threads=threads,
                post=self._post(),
            )
            mask = ChannelConfig.for_frames(
                self._p("mask_channel"),
                self._p("mask_max_width"),
                self._p("mask_max_height"),
                PixelFormat.LABEL8,
                max_consumers=self._p("mask_max_consumers"),
                buffer_frames=self._p("mask_buffer_frames"),
            )
            topic_input = None
            frames: FrameInput
            if self._p("input_transport") == "topic":
                topic = self.resolve_topic_name(self._p("input_topic"))
                frames = topic_input = TopicInput(topic)
            else:
                frames = ChannelInput(self._p("input_channel"), self._p("reopen_after_s"))
            live = LiveSegmenter(
                seg,
                frames,
                mask,
                smoother=self._smoother(),
                on_result=self._on_result,
                reopen_after_s=self._p("reopen_after_s"),
            )
        except (ModelCardError, FileNotFoundError, ChannelError, ValueError) as exc:
            return self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed configure
            return self._failed(f"{type(exc).__name__}: {exc}")
        self._segmenter, self._live = seg, live
        self._topic_input = topic_input
        if topic_input is not None:
            self._frames_sub = TopicReceiver(
                self, Frame, topic_input.name, self._on_frame_msg, INPUT_QOS[self._p("input_qos")]
            )
        if self._p("mask_topic"):
            mp = self._mask_pub = self.create_publisher(Frame, "~/mask", MASK_QOS)
            self._mask_topic = TopicFramePublisher(
                mp.publish, mp.get_subscription_count, "mask-topic"
            )
        card = seg.card
        self._model_info = (
            f"{card.name} {card.version} ({seg.model.backend} on {seg.model.device}, "
            f"input {card.input_hw[1]}x{card.input_hw[0]}, classes {', '.join(card.classes)})"
        )
        self._result_pub = self.create_lifecycle_publisher(
            SegmentationResult, "~/result", RESULT_QOS
        )
        self._overlay_pub = self.create_lifecycle_publisher(
            Image, "~/overlay", qos_profile_sensor_data
        )
        self._last_error = ""
        self._state_label = "inactive"
        self.get_logger().info(
            f"configured in {time.monotonic() - t0:.2f} s: {self._model_info}; "
            f"'{live.input.name}' ({self._p('input_transport')}) -> '{self._p('mask_channel')}'"
        )
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def start_work(self) -> None:
        assert self._live is not None
        self._live.start()

    def pause_work(self) -> None:
        if self._live is not None:
            self._live.pause()

    def release(self) -> None:
        if self._frames_sub is not None:
            self._frames_sub.close()
            self._frames_sub = None
        self._topic_input = None
        live, self._live = self._live, None
        if live is not None:
            live.close()
        self._segmenter = None
        if self._mask_topic is not None:
            self._mask_topic.close()
            self._mask_topic = None
        if self._mask_pub is not None:
            self.destroy_publisher(self._mask_pub)
            self._mask_pub = None
        for attr in ("_result_pub", "_overlay_pub"):
            pub = getattr(self, attr)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, attr, None)

    # -- input_transport topic (executor thread) --------------------------------------------
    def _on_frame_msg(self, msg: Frame) -> None:
        inp, live = self._topic_input, self._live
        if inp is None or live is None:
            return
        try:
            array, info = frame_from_msg(msg)
        except FrameTopicError as exc:
            live.stats.errors += 1
            live.stats.last_error = str(exc)
            return
        inp.put(array, info)

    # -- per mask (worker thread) ----------------------------------------------------------
    def _on_result(self, r: MaskResult) -> None:
        pub, overlay = self._result_pub, self._overlay_pub
        mask_topic = self._mask_topic
        if mask_topic is not None and mask_topic.subscribers() > 0:
            width, height = r.frame_size
            full = np.zeros((height, width), np.uint8)
            x, y, w, h = r.roi
            full[y : y + h, x : x + w] = r.labels
            ref = fill_frame_ref(
                FrameRef(),
                channel=self._p("mask_channel"),
                frame_id="us_image",
                seq=r.seq,
                epoch=self._live.writer.epoch if self._live is not None else 0,
                device_timestamp_ns=r.device_timestamp_ns,
                host_timestamp_ns=r.host_timestamp_ns,
                width=width,
                height=height,
                pixel_format=PixelFormat.LABEL8,
                spacing_mm=r.spacing_mm,
                roi=r.roi,
                payload_bytes=width * height,
                source_seq=r.source_seq,
                source_epoch=r.source_epoch,
            )
            mask_topic.offer(ref, full, copy=False)  # `full` is ours alone
        if pub is not None:
            m = SegmentationResult()
            m.header.stamp = stamp(r.host_timestamp_ns)
            m.header.frame_id = "us_image"
            m.mask_channel = self._p("mask_channel")
            m.seq, m.source_seq, m.source_epoch = r.seq, r.source_seq, r.source_epoch
            m.class_names = list(r.class_names)
            m.class_areas_mm2 = list(r.class_areas_mm2)
            m.confidence = r.confidence
            m.inference_ms = r.inference_ms
            m.latency_ms = r.latency_ms
            m.frames_skipped = r.skipped_total
            m.target_found = r.target_found
            m.target_offset_lateral_mm = r.target_offset_lateral_mm
            m.target_depth_mm = r.target_depth_mm
            pub.publish(m)
        rate = float(self._p("preview_rate_hz"))
        now = time.monotonic()
        if overlay is not None and rate > 0 and now - self._last_preview >= 1.0 / rate:
            self._last_preview = now
            bgr = overlay_bgr(r.grey, r.labels, int(self._p("preview_max_width")))
            img = Image()
            img.header.stamp = stamp(r.host_timestamp_ns)
            img.header.frame_id = "us_image"
            img.height, img.width = int(bgr.shape[0]), int(bgr.shape[1])
            img.encoding = "bgr8"
            img.step = int(bgr.strides[0])
            img.data.frombytes(bgr.data)
            overlay.publish(img)

    # -- status ----------------------------------------------------------------------------
    def _publish_status(self) -> None:
        s = NodeStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.node_name = self.get_fully_qualified_name()
        s.state = STATE_IDS.get(self._state_label, NodeStatus.STATE_UNKNOWN)
        s.state_label = self._state_label
        s.last_error = self._last_error
        live = self._live
        if live is not None:
            st = live.stats
            s.fps = st.fps()
            s.frames_in = st.frames_in + st.skipped
            s.frames_out = st.masks_out
            s.frames_dropped = st.skipped
            s.latency_p50_ms = percentile(st.latency_ms, 50)
            s.latency_p95_ms = percentile(st.latency_ms, 95)
            s.last_error = st.last_error or self._last_error
            c = ChannelStatus()
            c.header.stamp = s.header.stamp
            c.channel = live.writer.config.name
            c.layout_version = LAYOUT_VERSION
            c.max_frame_bytes = live.writer.config.max_frame_bytes
            c.max_consumers = live.writer.config.max_consumers
            c.consumers = live.writer.consumer_count()
            c.seq = max(0, live.writer.seq - 1)
            c.frames_published = st.masks_out
            c.fps = s.fps
            s.channels.append(c)
            s.values.append(KeyValue(key="worker_state", value=st.state))
            s.values.append(KeyValue(key="model", value=self._model_info))
            s.values.append(
                KeyValue(key="inference_p50_ms", value=f"{percentile(st.infer_ms, 50):.1f}")
            )
            s.values.append(
                KeyValue(key="inference_p95_ms", value=f"{percentile(st.infer_ms, 95):.1f}")
            )
            s.values.append(KeyValue(key="errors", value=str(st.errors)))
            s.values.append(KeyValue(key="input_reopens", value=str(st.reopens)))
            s.values.append(
                KeyValue(key="input", value=f"{self._p('input_transport')} {live.input.name}")
            )
            s.values.append(
                KeyValue(key="input_age_p95_ms", value=f"{percentile(st.input_age_ms, 95):.1f}")
            )
            if self._topic_input is not None:
                s.values.append(
                    KeyValue(key="input_received", value=str(self._topic_input.received))
                )
        self._status_pub.publish(s)


def main(args: list[str] | None = None) -> int:
    return spin_node(SegmentationNode, threads=2, args=args)


if __name__ == "__main__":
    sys.exit(main())
