"""Parameters of the grpc_bridge node as data (no rclpy): type, default, range, text.

None of them is live: the server is built at ``configure`` from these values; changing one
while configured is refused with the reason (clean up, set, configure again).
"""

from __future__ import annotations

from typing import Any

from us_frame_channel.paramspec import ParamSpec, spec_table, validate_value

from .pose import IMAGE_ORIGINS

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("host", "127.0.0.1", "address the gRPC server binds (0.0.0.0 = every interface)"),
    ParamSpec("port", 50051, "gRPC port (0 = any free port, logged)", 0, 65535),
    ParamSpec("max_clients", 16, "streams served at once; more get RESOURCE_EXHAUSTED", 1, 256),
    ParamSpec(
        "max_message_bytes",
        16 * 1024 * 1024,
        "largest message sent, bytes; larger frames end the stream with RESOURCE_EXHAUSTED",
        64 * 1024,
        256 * 1024 * 1024,
    ),
    ParamSpec(
        "max_rate_hz",
        120.0,
        "highest per-client stream rate a request may ask for, messages / s",
        0.1,
        1000.0,
    ),
    ParamSpec("token_file", "", "bearer tokens: YAML/JSON 'token: role' or 'role:token' lines"),
    ParamSpec(
        "token_env",
        "US_GRPC_TOKENS",
        "environment variable with 'role:token' items (comma separated); '' = none",
    ),
    ParamSpec(
        "allow_insecure_remote",
        False,
        "serve beyond loopback without tokens (logged as a warning); never in production",
    ),
    ParamSpec("tls_cert", "", "server certificate chain (PEM); with tls_key enables TLS"),
    ParamSpec("tls_key", "", "server private key (PEM)"),
    ParamSpec("tls_client_ca", "", "CA of client certificates (PEM): mutual TLS when set"),
    ParamSpec("frames_channel", "us/frames", "shared-memory frame channel to stream"),
    ParamSpec("masks_channel", "us/masks", "shared-memory mask channel (label8) to stream"),
    ParamSpec("world_frame", "tracker", "TF frame of T_world_image"),
    ParamSpec("probe_frame", "probe", "TF frame of the probe"),
    ParamSpec(
        "probe_image_rotation_deg",
        [0.0, 0.0, 0.0],
        "calibration probe <- image: rotation about x, y, z, degrees",
        -360.0,
        360.0,
        length=3,
    ),
    ParamSpec(
        "probe_image_translation_mm",
        [0.0, 0.0, 0.0],
        "calibration probe <- image: translation, mm",
        -1000.0,
        1000.0,
        length=3,
    ),
    ParamSpec(
        "image_origin",
        "top_center",
        "where image pixel coordinates sit on the probe before the calibration",
        choices=IMAGE_ORIGINS,
    ),
    ParamSpec("pose_max_gap_ms", 100.0, "largest tracker gap interpolated across, ms", 0.0, 5000.0),
    ParamSpec(
        "pose_max_age_ms",
        50.0,
        "a frame newer than the newest pose by at most this gets that pose, ms",
        0.0,
        5000.0,
    ),
    ParamSpec(
        "pose_time_offset_ms",
        0.0,
        "added to frame stamps before the pose lookup (temporal calibration), ms",
        -1000.0,
        1000.0,
    ),
    ParamSpec(
        "service_timeout_s", 5.0, "deadline of calls to other nodes' services, s", 0.1, 120.0
    ),
    ParamSpec(
        "reconstruction_node", "reconstruction", "node serving reset/save/get_volume/get_mesh"
    ),
    ParamSpec("recorder_node", "recorder", "node serving the recording service"),
    ParamSpec(
        "reconstruction_info_topic",
        "reconstruction/info",
        "ReconstructionInfo topic (relative to the namespace) for StreamUpdates",
    ),
    ParamSpec(
        "segmentation_topic",
        "segmentation/result",
        "SegmentationResult topic (relative to the namespace) for StreamUpdates",
    ),
    ParamSpec("igtl_port", 18944, "OpenIGTLink server port for 3D Slicer (0 = off)", 0, 65535),
    ParamSpec("igtl_host", "127.0.0.1", "OpenIGTLink bind address (loopback unless set otherwise)"),
    ParamSpec("igtl_rate_hz", 15.0, "OpenIGTLink IMAGE/TRANSFORM rate, messages / s", 0.1, 120.0),
    ParamSpec("igtl_image_name", "Image_Reference", "OpenIGTLink device name of the frame"),
    ParamSpec("igtl_labels_name", "Image_Labels", "OpenIGTLink device name of the mask"),
    ParamSpec("igtl_transform_name", "ProbeToTracker", "OpenIGTLink device name of the probe pose"),
    ParamSpec("status_rate_hz", 1.0, "rate of the latched NodeStatus, Hz", 0.1, 10.0),
)

SPECS = spec_table(PARAMETERS)


def validate(name: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason."""
    return validate_value(SPECS, name, value)
