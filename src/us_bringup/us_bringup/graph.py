"""The nodes of the graph and how to start them (shared by the runner and the launch file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeEntry:
    name: str  # ROS node name
    package: str
    executable: str
    params_file: str  # in config/
    params_module: str = ""  # module with the node's PARAMETERS (ParamSpec tuple)
    lifecycle: bool = True


#: In start order. Nodes of later issues are added here as they are built.
GRAPH: tuple[NodeEntry, ...] = (
    NodeEntry(
        "acquisition", "us_acquisition", "acquisition_node", "acquisition.yaml",
        "us_acquisition.params",
    ),
    NodeEntry(
        "segmentation", "us_segmentation", "segmentation_node", "segmentation.yaml",
        "us_segmentation.params",
    ),
    NodeEntry(
        "reconstruction", "us_reconstruction", "reconstruction_node", "reconstruction.yaml",
        "us_reconstruction.params",
    ),
    NodeEntry(
        "grpc_bridge", "us_grpc_bridge", "grpc_bridge_node", "grpc_bridge.yaml",
        "us_grpc_bridge.params",
    ),
    NodeEntry(
        "recorder", "us_acquisition", "recorder_node", "recorder.yaml",
        "us_acquisition.recorder_params",
    ),
)  # fmt: skip
NODES = {n.name: n for n in GRAPH}
DEFAULT_NAMESPACE = "us"
