"""The interpolating pose buffer, re-exported: it lives in :mod:`us_acquisition.poses`
(pure numpy), where the recorder and the gRPC bridge use it too without depending on this
package."""

from __future__ import annotations

from us_acquisition.poses import (
    POSE_GAP,
    POSE_INVALID,
    POSE_MISSING,
    POSE_REASONS,
    POSE_STALE,
    PoseBuffer,
    PoseLookupError,
    is_rigid,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp_quaternion,
    transform_from_ros,
    transform_to_ros,
)

__all__ = [
    "POSE_GAP",
    "POSE_INVALID",
    "POSE_MISSING",
    "POSE_REASONS",
    "POSE_STALE",
    "PoseBuffer",
    "PoseLookupError",
    "is_rigid",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "slerp_quaternion",
    "transform_from_ros",
    "transform_to_ros",
]
