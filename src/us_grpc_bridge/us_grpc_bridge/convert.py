"""ROS message -> protobuf conversion (no rclpy: messages are read by attribute, so plain
objects with the same fields work too, which is how the tests use it)."""

from __future__ import annotations

from typing import Any

from ._generated import pb2


def stamp_ns(header: Any) -> int:
    """``std_msgs/Header`` stamp in ns since the epoch."""
    st = header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


def node_status(msg: Any, age_s: float) -> Any:
    """``us_interfaces/NodeStatus`` -> ``ultrasound.v1.NodeStatus``."""
    out = pb2.NodeStatus(
        node_name=msg.node_name,
        state=int(msg.state),
        state_label=msg.state_label,
        fps=float(msg.fps),
        frames_in=int(msg.frames_in),
        frames_out=int(msg.frames_out),
        frames_dropped=int(msg.frames_dropped),
        latency_p50_ms=float(msg.latency_p50_ms),
        latency_p95_ms=float(msg.latency_p95_ms),
        last_error=msg.last_error,
        stamp_ns=stamp_ns(msg.header),
        age_s=float(age_s),
    )
    for c in msg.channels:
        out.channels.add(
            channel=c.channel,
            layout_version=int(c.layout_version),
            max_frame_bytes=int(c.max_frame_bytes),
            consumers=int(c.consumers),
            max_consumers=int(c.max_consumers),
            seq=int(c.seq),
            frames_published=int(c.frames_published),
            fps=float(c.fps),
            publish_p50_us=float(c.publish_p50_us),
            publish_p99_us=float(c.publish_p99_us),
        )
    for kv in msg.values:
        out.values[kv.key] = kv.value
    return out


def reconstruction_update(msg: Any) -> Any:
    """``us_interfaces/ReconstructionInfo`` -> ``ultrasound.v1.Update``."""
    r = pb2.ReconstructionUpdate(
        thyroid_volume_ml=float(msg.thyroid_volume_ml),
        ellipsoid_volume_ml=float(msg.ellipsoid_volume_ml),
        length_mm=float(msg.length_mm),
        width_mm=float(msg.width_mm),
        depth_mm=float(msg.depth_mm),
        voxels_filled=int(msg.voxels_filled),
        voxels_total=int(msg.voxels_total),
        dims=[int(v) for v in msg.dims],
        spacing_mm=[float(v) for v in msg.spacing_mm],
        origin_mm=[float(v) for v in msg.origin_mm],
        frames_used=int(msg.frames_used),
        frames_skipped=int(msg.frames_skipped),
        compound_p50_ms=float(msg.compound_p50_ms),
        latency_p95_ms=float(msg.latency_p95_ms),
        frame_id=msg.header.frame_id,
    )
    for kv in msg.skip_reasons:
        r.skip_reasons[kv.key] = kv.value
    return pb2.Update(stamp_ns=stamp_ns(msg.header), reconstruction=r)


def segmentation_update(msg: Any) -> Any:
    """``us_interfaces/SegmentationResult`` -> ``ultrasound.v1.Update``."""
    s = pb2.SegmentationUpdate(
        mask_channel=msg.mask_channel,
        seq=int(msg.seq),
        source_seq=int(msg.source_seq),
        source_epoch=int(msg.source_epoch),
        class_names=list(msg.class_names),
        class_areas_mm2=[float(v) for v in msg.class_areas_mm2],
        confidence=float(msg.confidence),
        inference_ms=float(msg.inference_ms),
        latency_ms=float(msg.latency_ms),
        frames_skipped=int(msg.frames_skipped),
        target_found=bool(msg.target_found),
        target_offset_lateral_mm=float(msg.target_offset_lateral_mm),
        target_depth_mm=float(msg.target_depth_mm),
    )
    return pb2.Update(stamp_ns=stamp_ns(msg.header), segmentation=s)


def parameter_value(v: Any) -> Any:
    """``ultrasound.v1.ParameterValue`` -> Python value (bool, int, float, str or list)."""
    kind = v.WhichOneof("value")
    if kind is None:
        raise ValueError("parameter value is empty")
    value = getattr(v, kind)
    if kind.endswith("_list"):
        return list(value.values)
    return value


def to_parameter_value(value: Any) -> Any:
    """Python value -> ``ultrasound.v1.ParameterValue`` (lists must be homogeneous)."""
    if isinstance(value, bool):
        return pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return pb2.ParameterValue(double_value=value)
    if isinstance(value, str):
        return pb2.ParameterValue(string_value=value)
    if isinstance(value, list | tuple):
        items = list(value)
        if items and all(isinstance(x, bool) for x in items):
            return pb2.ParameterValue(bool_list=pb2.BoolList(values=items))
        if items and all(isinstance(x, int) and not isinstance(x, bool) for x in items):
            return pb2.ParameterValue(int_list=pb2.IntList(values=items))
        if items and all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
            return pb2.ParameterValue(double_list=pb2.DoubleList(values=[float(x) for x in items]))
        if all(isinstance(x, str) for x in items):
            return pb2.ParameterValue(string_list=pb2.StringList(values=items))
    raise ValueError(f"cannot send {value!r} as a parameter (bool, int, float, str or a list)")
