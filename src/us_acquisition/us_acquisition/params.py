"""Parameters of the acquisition node as data (no rclpy): type, default, range, text.

The node declares ROS parameters from :data:`PARAMETERS`; validation lives here so that
it is tested without ROS. ``live`` parameters may change while streaming; the others
apply at the next ``configure`` and are refused in other states with the reason.
"""

from __future__ import annotations

from typing import Any

from us_frame_channel.paramspec import ParamSpec, spec_table, validate_value

SOURCE_KINDS = (
    "sim",
    "synthetic",
    "video",
    "sequence",
    "rosbag",
    "decklink",
    "v4l2",
    "gst_test",
    "gst_pipeline",
)
PIXEL_FORMATS = ("mono8", "mono16", "uyvy", "bgr8", "bgra8")


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("source", "sim", "frame source", choices=SOURCE_KINDS),
    ParamSpec(
        "source_path",
        "",
        "recording to replay (video: .mp4/.avi/.mkv; sequence: .igs.mha/.seq.mha/.igs.nrrd; "
        "rosbag: a ros2 bag directory or .mcap file)",
    ),
    ParamSpec(
        "bag_topic",
        "",
        "rosbag: frames topic (us_interfaces/Frame or sensor_msgs/Image); empty = the first "
        "Frame topic of the bag, else its first Image topic",
    ),
    ParamSpec(
        "realtime",
        True,
        "replay recordings / run the simulator at their own rate; false = as fast as possible",
    ),
    ParamSpec("loop", True, "restart a recording at its end"),
    ParamSpec("width", 640, "frame width for sim/synthetic/gst_test/v4l2, px", 16, 8192),
    ParamSpec("height", 480, "frame height for sim/synthetic/gst_test/v4l2, px", 16, 8192),
    ParamSpec("fps", 30.0, "frame rate for sim/synthetic/gst_test/v4l2, frames / s", 0.1, 2000.0),
    ParamSpec(
        "pixel_format", "mono8", "pixel format delivered into the channel", choices=PIXEL_FORMATS
    ),
    ParamSpec("device", "", "decklink: device number (0, 1, ...); v4l2: device path (/dev/video0)"),
    ParamSpec(
        "decklink_connection",
        "auto",
        "decklink input connection: auto, sdi, hdmi, optical-sdi, component, composite, svideo",
    ),
    ParamSpec("video_mode", "auto", "decklink video mode, e.g. auto, 1080p60, 1080i5994, 720p60"),
    ParamSpec(
        "gst_pipeline",
        "",
        "gst_pipeline: a GStreamer launch string producing raw video (the appsink is appended)",
    ),
    ParamSpec(
        "roi",
        [0, 0, 0, 0],
        "ultrasound image region of the screen [x, y, width, height], px; all 0 = whole frame",
    ),
    ParamSpec(
        "crop_to_roi",
        True,
        "publish only the ROI (header roi = whole frame) instead of the whole screen",
    ),
    ParamSpec(
        "spacing_mm",
        [0.1, 0.1],
        "pixel spacing [x (lateral), y (depth)], mm / px",
        0.0,
        10.0,
        live=True,
    ),
    ParamSpec(
        "depths_mm",
        [0.0],
        "imaging depth settings with their own spacing, mm ([0] = none)",
        0.0,
        500.0,
    ),
    ParamSpec(
        "depth_spacings_mm", [0.0, 0.0], "spacing [x, y] per entry of depths_mm, mm / px", 0.0, 10.0
    ),
    ParamSpec(
        "imaging_depth_mm",
        0.0,
        "current imaging depth of the scanner, mm (0 = unknown); selects the spacing",
        0.0,
        500.0,
        live=True,
    ),
    ParamSpec("channel_name", "us/frames", "shared-memory frame channel (iceoryx2 service) name"),
    ParamSpec("channel_max_consumers", 4, "consumers the channel admits", 1, 64),
    ParamSpec("channel_buffer_frames", 4, "frames queued per consumer", 1, 64),
    ParamSpec("channel_max_borrowed", 2, "frames one consumer may hold at once", 1, 16),
    ParamSpec(
        "frames_topic",
        True,
        "publish whole frames on ~/frames (us_interfaces/Frame) while somebody subscribes: "
        "consumers on other hosts, ros2 bag",
    ),
    ParamSpec(
        "image_frame_id",
        "us_image",
        "TF frame of the image pixels (header.frame_id of FrameRef/preview)",
    ),
    ParamSpec(
        "tf_transform_names",
        ["ProbeToTracker"],
        "transform names of the source (PLUS style FromToTo) published on TF",
    ),
    ParamSpec(
        "tf_parent_frames",
        ["tracker"],
        "TF parent frame per entry of tf_transform_names (the 'To' frame)",
    ),
    ParamSpec(
        "tf_child_frames",
        ["probe"],
        "TF child frame per entry of tf_transform_names (the 'From' frame)",
    ),
    ParamSpec(
        "preview_rate_hz",
        2.0,
        "rate of the downscaled sensor_msgs/Image preview, Hz (0 = off)",
        0.0,
        30.0,
        live=True,
    ),
    ParamSpec(
        "preview_max_width", 320, "width of the preview image at most, px", 32, 1920, live=True
    ),
    ParamSpec("status_rate_hz", 1.0, "rate of the latched NodeStatus, Hz", 0.1, 10.0),
    ParamSpec("sim_seed", 1, "simulator: phantom seed", 0, 2**31 - 1),
    ParamSpec(
        "sim_sweep",
        "transverse",
        "simulator: probe motion",
        choices=("transverse", "longitudinal", "raster"),
    ),
    ParamSpec("sim_tracker_rate_hz", 120.0, "simulator: tracker sample rate, Hz", 1.0, 1000.0),
    ParamSpec(
        "sim_time_offset_ms", 0.0, "simulator: video-to-tracker time offset, ms", -500.0, 500.0
    ),
    ParamSpec(
        "sim_queue_frames",
        2,
        "simulator: frames its grabber queue holds before it loses the oldest (frames_dropped)",
        1,
        64,
    ),
)

SPECS = spec_table(PARAMETERS)


def validate(name: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason."""
    reason = validate_value(SPECS, name, value)
    if reason is not None:
        return reason
    items = list(value) if name in ("roi", "spacing_mm") else []
    if name == "roi" and len(items) != 4:
        return f"roi needs 4 integers [x, y, width, height], got {items}"
    if name == "spacing_mm" and len(items) != 2:
        return f"spacing_mm needs [x, y], got {items}"
    return None
