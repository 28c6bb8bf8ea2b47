"""Parameters of the segmentation node as data (no rclpy); see :mod:`us_frame_channel.paramspec`."""

from __future__ import annotations

from typing import Any

from us_frame_channel.paramspec import ParamSpec, spec_table, validate_value

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "input_transport",
        "shm",
        "where frames come from: shm = the shared-memory channel input_channel (same host); "
        "topic = us_interfaces/Frame messages on input_topic (another host, over DDS)",
        choices=("shm", "topic"),
    ),
    ParamSpec("input_channel", "us/frames", "frame channel to segment (latest-frame mode)"),
    ParamSpec(
        "input_topic",
        "acquisition/frames",
        "input_transport topic: Frame topic to segment (relative names resolve in the node's "
        "namespace)",
    ),
    ParamSpec(
        "input_qos",
        "reliable",
        "input_transport topic: reliability of the subscription, depth 1 (best_effort loses "
        "large frames across hosts with stock DDS settings: docs/cross-host.md)",
        choices=("reliable", "best_effort"),
    ),
    ParamSpec("mask_channel", "us/masks", "label8 mask channel this node creates"),
    ParamSpec("mask_max_width", 1920, "largest frame width the mask channel holds, px", 16, 8192),
    ParamSpec("mask_max_height", 1200, "largest frame height the mask channel holds, px", 16, 8192),
    ParamSpec("mask_max_consumers", 4, "consumers the mask channel admits", 1, 64),
    ParamSpec("mask_buffer_frames", 4, "masks a consumer may lag before losing the oldest", 1, 64),
    ParamSpec(
        "mask_topic",
        True,
        "also publish each mask on ~/mask (us_interfaces/Frame, label8) while somebody "
        "subscribes: a reconstruction on another host",
    ),
    ParamSpec(
        "model_path",
        "",
        "model directory or model_card.yaml of a TorchScript/ONNX model; empty = shipped model",
    ),
    ParamSpec(
        "backend",
        "auto",
        "auto = the card's primary file (TorchScript for the shipped model)",
        choices=("auto", "torchscript", "onnx"),
    ),
    ParamSpec(
        "device",
        "auto",
        "inference device: auto = cuda when available, else cpu",
        choices=("auto", "cpu", "cuda"),
    ),
    ParamSpec("threads", 1, "torch / ONNX Runtime intra-op threads (0 = library default)", 0, 64),
    ParamSpec("fill_holes", True, "fill holes enclosed by each class", live=True),
    ParamSpec(
        "largest_component", False, "keep only the largest component of each class", live=True
    ),
    ParamSpec(
        "min_area_mm2", 0.0, "remove components smaller than this, mm^2", 0.0, 1e5, live=True
    ),
    ParamSpec(
        "temporal_weight",
        0.7,
        "temporal smoothing: weight of the current frame's probabilities (1 = off)",
        0.05,
        1.0,
        live=True,
    ),
    ParamSpec(
        "temporal_max_gap_ms",
        150.0,
        "temporal smoothing restarts when frames are further apart than this, ms",
        1.0,
        10000.0,
        live=True,
    ),
    ParamSpec("preview_rate_hz", 2.0, "overlay preview rate, Hz (0 = off)", 0.0, 60.0, live=True),
    ParamSpec("preview_max_width", 320, "overlay preview width limit, px", 16, 4096, live=True),
    ParamSpec("status_rate_hz", 1.0, "status rate, Hz", 0.1, 50.0),
    ParamSpec(
        "reopen_after_s",
        2.0,
        "re-open the input channel after this long without frames, s",
        0.2,
        60.0,
    ),
)

SPECS = spec_table(PARAMETERS)


def validate(name: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason."""
    return validate_value(SPECS, name, value)
