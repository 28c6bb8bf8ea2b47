"""Parameters of the recorder node as data (no rclpy); see :mod:`us_frame_channel.paramspec`."""

from __future__ import annotations

from typing import Any

from us_frame_channel.paramspec import ParamSpec, spec_table, validate_value

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("frames_channel", "us/frames", "frame channel to record (every frame)"),
    ParamSpec(
        "mask_channel",
        "us/masks",
        "label8 mask channel paired by source seq, written to NAME-labels.EXT; empty = none",
    ),
    ParamSpec("world_frame", "tracker", "TF frame the probe pose is recorded in"),
    ParamSpec("probe_frame", "probe", "TF frame of the probe"),
    ParamSpec(
        "transform_name",
        "ProbeToTracker",
        "PLUS name of the recorded T_world_probe (FromToTo, e.g. ProbeToTracker)",
    ),
    ParamSpec(
        "output_dir",
        "",
        "folder of recordings started with an empty path; empty = ./us_recordings",
        live=True,
    ),
    ParamSpec("max_pose_gap_ms", 100.0, "largest tracker gap interpolated over, ms", 1.0, 5000.0),
    ParamSpec(
        "pose_wait_ms",
        200.0,
        "how long a frame waits for its pose before it is recorded INVALID, ms",
        0.0,
        5000.0,
    ),
    ParamSpec(
        "mask_wait_ms", 500.0, "at stop, how long to wait for the last masks, ms", 0.0, 10000.0
    ),
    ParamSpec(
        "max_minutes",
        30.0,
        "guard: recording stops taking frames after this long and is written, min (0 = none)",
        0.0,
        1440.0,
        live=True,
    ),
    ParamSpec(
        "max_gb",
        20.0,
        "guard: recording stops taking frames at this many GB of pixels, GB (0 = none)",
        0.0,
        10000.0,
        live=True,
    ),
    ParamSpec(
        "compress",
        False,
        "zlib/gzip the pixels when the file is written (smaller files, slower stop)",
        live=True,
    ),
    ParamSpec("status_rate_hz", 1.0, "rate of the latched NodeStatus, Hz", 0.1, 50.0),
)

SPECS = spec_table(PARAMETERS)


def validate(name: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason."""
    reason = validate_value(SPECS, name, value)
    if reason is None and name == "transform_name":
        from .sequence_io import split_transform_name

        try:
            split_transform_name(str(value))
        except ValueError as exc:
            return f"transform_name: {exc}"
    if reason is None and name == "frames_channel" and not value:
        return "frames_channel must not be empty"
    return reason
