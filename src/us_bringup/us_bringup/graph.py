"""The nodes of the graph and how to start them (shared by the runner and the launch file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeEntry:
    name: str  # ROS node name
    package: str
    executable: str
    params_file: str  # in config/
    lifecycle: bool = True


#: In start order. Nodes of later issues are added here as they are built.
GRAPH: tuple[NodeEntry, ...] = (
    NodeEntry("acquisition", "us_acquisition", "acquisition_node", "acquisition.yaml"),
    NodeEntry("segmentation", "us_segmentation", "segmentation_node", "segmentation.yaml"),
    NodeEntry("reconstruction", "us_reconstruction", "reconstruction_node", "reconstruction.yaml"),
    NodeEntry("grpc_bridge", "us_grpc_bridge", "grpc_bridge_node", "grpc_bridge.yaml"),
    NodeEntry("recorder", "us_acquisition", "recorder_node", "recorder.yaml"),
)
NODES = {n.name: n for n in GRAPH}
DEFAULT_NAMESPACE = "us"
