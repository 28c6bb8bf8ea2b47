"""Build a FrameSource from the node's parameters (imports each backend lazily)."""

from __future__ import annotations

import importlib
from typing import Any

from .base import FrameSource, SourceError


def make_source(p: dict[str, Any]) -> FrameSource:
    """``p`` holds the acquisition parameters (see ``us_acquisition.params``)."""
    kind = p["source"]
    if kind == "synthetic":
        from .synthetic import SyntheticSource

        return SyntheticSource(
            p["width"], p["height"], p["pixel_format"], p["fps"], realtime=p["realtime"]
        )
    if kind == "sim":
        try:
            sim = importlib.import_module(".sim_source", __package__)
        except ImportError as exc:
            raise SourceError(f"the simulator source is not available: {exc}") from None
        return sim.SimulatorSource.from_params(p)
    if kind in ("video", "sequence"):
        if not p["source_path"]:
            raise SourceError(f"source '{kind}' needs source_path (the recording to replay)")
        try:
            recording = importlib.import_module(".recording", __package__)
        except ImportError as exc:
            raise SourceError(f"recording replay is not available: {exc}") from None
        if kind == "video":
            return recording.VideoFileSource(
                p["source_path"],
                realtime=p["realtime"],
                loop=p["loop"],
                pixel_format=p["pixel_format"],
            )
        return recording.SequenceFileSource(
            p["source_path"], realtime=p["realtime"], loop=p["loop"]
        )
    if kind == "rosbag":
        if not p["source_path"]:
            raise SourceError("source 'rosbag' needs source_path (a ros2 bag directory or .mcap)")
        try:
            rosbag = importlib.import_module(".rosbag", __package__)
        except ImportError as exc:
            raise SourceError(f"ros2 bag replay is not available: {exc}") from None
        return rosbag.RosbagSource(
            p["source_path"], topic=p["bag_topic"], realtime=p["realtime"], loop=p["loop"]
        )
    if kind in ("decklink", "v4l2", "gst_test", "gst_pipeline"):
        try:
            gstreamer = importlib.import_module(".gstreamer", __package__)
        except ImportError as exc:
            raise SourceError(
                f"GStreamer capture is not available ({exc}); run `make setup` to install it"
            ) from None
        return gstreamer.GStreamerSource.from_params(p)
    raise SourceError(f"unknown source {kind!r}")
