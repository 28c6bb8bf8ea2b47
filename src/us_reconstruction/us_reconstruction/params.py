"""Parameters of the reconstruction node as data (no rclpy); see
:mod:`us_frame_channel.paramspec`."""

from __future__ import annotations

from typing import Any

from us_frame_channel.paramspec import ParamSpec, spec_table, validate_value

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("frames_channel", "us/frames", "frame channel to compound (every frame)"),
    ParamSpec("mask_channel", "us/masks", "mask channel paired by source seq; empty = no labels"),
    ParamSpec(
        "mask_transport",
        "shm",
        "where masks come from: shm = mask_channel (same host); topic = us_interfaces/Frame "
        "label8 masks on mask_topic (a segmentation node on another host)",
        choices=("shm", "topic"),
    ),
    ParamSpec(
        "mask_topic",
        "segmentation/mask",
        "mask_transport topic: the segmentation node's ~/mask (relative names resolve in the "
        "node's namespace)",
    ),
    ParamSpec("world_frame", "tracker", "TF frame of the volume (tracker, world, base_link, ...)"),
    ParamSpec("probe_frame", "probe", "TF frame of the probe"),
    ParamSpec(
        "time_offset_ms",
        0.0,
        "added to frame stamps before the pose lookup, ms (video lags tracker by L: -L)",
        -2000.0,
        2000.0,
        live=True,
    ),
    ParamSpec("max_pose_gap_ms", 100.0, "largest tracker gap interpolated over, ms", 1.0, 5000.0),
    ParamSpec(
        "max_pose_age_ms",
        20.0,
        "a frame this much newer than the newest pose uses it, ms",
        0.0,
        1000.0,
    ),
    ParamSpec("pose_wait_ms", 500.0, "how long a frame waits for its pose, ms", 0.0, 5000.0),
    ParamSpec("mask_wait_ms", 500.0, "how long a frame waits for its mask, ms", 0.0, 10000.0),
    ParamSpec(
        "calibration_file",
        "",
        "PLUS device-set XML with the ImageToProbe calibration; empty = parameters below",
    ),
    ParamSpec("calibration_image_frame", "Image", "image frame name in the PLUS XML"),
    ParamSpec("calibration_probe_frame", "Probe", "probe frame name in the PLUS XML"),
    ParamSpec(
        "image_spacing_mm",
        [0.0, 0.0],
        "calibrated pixel spacing [x, y], mm/px; 0 = the frames' spacing with the image's "
        "top-centre at the probe origin",
        0.0,
        10.0,
        length=2,
    ),
    ParamSpec(
        "image_to_probe_rpy_deg",
        [0.0, 0.0, 0.0],
        "rotation probe <- image, roll pitch yaw, deg",
        -360.0,
        360.0,
        length=3,
    ),
    ParamSpec(
        "image_to_probe_translation_mm",
        [0.0, 0.0, 0.0],
        "translation probe <- image, mm",
        -1000.0,
        1000.0,
        length=3,
    ),
    ParamSpec(
        "pixel_offset_px",
        [0.0, 0.0],
        "calibrated mode: offset of the frames' pixel (0, 0) in calibration pixels",
        -10000.0,
        10000.0,
        length=2,
    ),
    ParamSpec(
        "probe_mount_parent",
        "",
        "robot holders: frame the probe is mounted on (e.g. tool0); empty = none",
    ),
    ParamSpec(
        "probe_mount_translation_mm",
        [0.0, 0.0, 0.0],
        "static transform mount_parent <- probe, translation, mm",
        -5000.0,
        5000.0,
        length=3,
    ),
    ParamSpec(
        "probe_mount_rpy_deg",
        [0.0, 0.0, 0.0],
        "static transform mount_parent <- probe, roll pitch yaw, deg",
        -360.0,
        360.0,
        length=3,
    ),
    ParamSpec(
        "clip_rectangle_px",
        [0, 0, 0, 0],
        "pixels used, [x, y, width, height] of the frames in the channel; 0 = all",
        0,
        16384,
        length=4,
    ),
    ParamSpec(
        "fan_apex_px",
        [0.0, 0.0],
        "sector probes: fan origin [u, v] px (may lie above the image)",
        -1e5,
        1e5,
        length=2,
    ),
    ParamSpec(
        "fan_radius_px",
        [0.0, 0.0],
        "sector probes: [start, stop] distance from the apex, px; stop 0 = no fan",
        0.0,
        1e5,
        length=2,
    ),
    ParamSpec(
        "fan_angles_deg",
        [0.0, 0.0],
        "sector probes: [start, stop] angle from the depth axis, + towards +u, deg",
        -180.0,
        180.0,
        length=2,
    ),
    ParamSpec("spacing_mm", 0.5, "voxel size, mm", 0.05, 20.0),
    ParamSpec("interpolation", "nearest", "pixel -> voxel", choices=("nearest", "linear")),
    ParamSpec("compounding", "mean", "overlapping frames", choices=("mean", "max", "latest")),
    ParamSpec("auto_grow", True, "grow the grid to the sweep; false = roi_min/max_mm"),
    ParamSpec("roi_min_mm", [0.0, 0.0, 0.0], "fixed grid corner (world), mm", -1e5, 1e5, length=3),
    ParamSpec("roi_max_mm", [0.0, 0.0, 0.0], "fixed grid corner (world), mm", -1e5, 1e5, length=3),
    ParamSpec("max_voxels", 60_000_000, "memory guard: largest grid, voxels", 1000, 2_000_000_000),
    ParamSpec("grow_margin_mm", 10.0, "room added when the grid grows, mm", 0.0, 500.0),
    ParamSpec(
        "fill_holes_radius_vox",
        2,
        "labels of voxels no pixel hit, from neighbours within this radius (0 = off)",
        0,
        10,
        live=True,
    ),
    ParamSpec("surface_period_s", 2.0, "thyroid mesh + volume update period, s", 0.2, 600.0),
    ParamSpec(
        "surface_nice",
        10,
        "nice steps of the mesh + volume thread below the node (background work yields)",
        0,
        19,
    ),
    ParamSpec(
        "surface_level", 0.5, "iso-level of the thyroid vote fraction", 0.05, 0.95, live=True
    ),
    ParamSpec("cloud_period_s", 2.0, "volume PointCloud2 period, s (0 = off)", 0.0, 600.0),
    ParamSpec("cloud_max_points", 200_000, "volume cloud size limit", 1000, 10_000_000),
    ParamSpec(
        "cloud_min_intensity", 30.0, "voxels below this grey value are not shown", 0.0, 255.0
    ),
    ParamSpec("image_plane_rate_hz", 5.0, "image plane in 3D, Hz (0 = off)", 0.0, 60.0, live=True),
    ParamSpec("image_plane_max_width", 128, "image plane cloud width, px", 8, 2048, live=True),
    ParamSpec("output_dir", "", "default folder of ~/save; empty = ./us_volumes"),
    ParamSpec("status_rate_hz", 1.0, "status and info rate, Hz", 0.1, 50.0),
)

SPECS = spec_table(PARAMETERS)


def validate(name: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason."""
    return validate_value(SPECS, name, value)
