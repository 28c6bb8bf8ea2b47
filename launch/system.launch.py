"""Start the tracked-ultrasound graph: ``ros2 launch us_bringup system.launch.py``.

Every node is a lifecycle node started with its YAML from ``config/`` (installed into
``share/us_bringup/config``); with ``autostart`` (default) each brings itself to active
(its ``autostart`` parameter), so a node restarted by ``respawn`` comes back active too.
Without ROS 2 installed (``launch``/``launch_ros`` are not on PyPI) the same graph starts
with ``us-run``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode
from launch_ros.actions import Node as LaunchNode
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

# name, package, executable, params file (same table as us_bringup.graph.GRAPH)
NODES = [
    ("acquisition", "us_acquisition", "acquisition_node", "acquisition.yaml"),
    ("segmentation", "us_segmentation", "segmentation_node", "segmentation.yaml"),
    ("reconstruction", "us_reconstruction", "reconstruction_node", "reconstruction.yaml"),
    ("grpc_bridge", "us_grpc_bridge", "grpc_bridge_node", "grpc_bridge.yaml"),
    ("recorder", "us_acquisition", "recorder_node", "recorder.yaml"),
]


def _lifecycle_node(name, package, executable, params_file):
    enabled = PythonExpression(
        [
            "'",
            name,
            "' in '",
            LaunchConfiguration("nodes"),
            "'.split(',') or '",
            LaunchConfiguration("nodes"),
            "' == 'all'",
        ]
    )
    overrides = {}
    if name == "acquisition":
        overrides = {
            "source": LaunchConfiguration("source"),
            "source_path": LaunchConfiguration("source_path"),
        }
    node = LifecycleNode(
        package=package,
        executable=executable,
        name=name,
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            PathJoinSubstitution([LaunchConfiguration("config_dir"), params_file]),
            overrides,
            # the node configures and activates itself, also when respawned (a launch event
            # would only drive the first process)
            {"autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool)},
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        respawn=LaunchConfiguration("respawn"),
        respawn_delay=1.0,
        output="screen",
        condition=IfCondition(enabled),
    )
    return [node]


def generate_launch_description():
    share = get_package_share_directory("us_bringup")
    default_config = os.path.join(share, "config")
    args = [
        DeclareLaunchArgument(
            "namespace", default_value="us", description="ROS namespace of every node of the graph"
        ),
        DeclareLaunchArgument(
            "config_dir",
            default_value=default_config,
            description="folder with one YAML per node (acquisition.yaml, ...)",
        ),
        DeclareLaunchArgument(
            "nodes", default_value="all", description="comma-separated nodes to run, or 'all'"
        ),
        DeclareLaunchArgument(
            "source",
            default_value="sim",
            description="acquisition source: sim, synthetic, video, sequence, rosbag, "
            "decklink, v4l2, gst_test, gst_pipeline",
        ),
        DeclareLaunchArgument(
            "source_path",
            default_value="",
            description="recording to replay (source:=video or sequence)",
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", description="also start RViz with rviz/us_system.rviz"
        ),
        DeclareLaunchArgument(
            "log_level",
            default_value="info",
            description="log level of the nodes: debug, info, warn, error",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="configure and activate the lifecycle nodes on start",
        ),
        DeclareLaunchArgument(
            "respawn", default_value="false", description="restart a node that dies"
        ),
        DeclareLaunchArgument(
            "dds_profile",
            default_value="",
            description="Fast DDS XML profile file for the nodes, e.g. "
            "<share>/config/fastdds/large_frames.xml (frames to other hosts, docs/cross-host.md)",
        ),
    ]
    dds = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        LaunchConfiguration("dds_profile"),
        condition=IfCondition(
            PythonExpression(["'", LaunchConfiguration("dds_profile"), "' != ''"])
        ),
    )
    actions = []
    for name, package, executable, params_file in NODES:
        actions += _lifecycle_node(name, package, executable, params_file)
    rviz = LaunchNode(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "rviz", "us_system.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*args, dds, GroupAction(actions), rviz])
