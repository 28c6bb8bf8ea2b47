"""Frame sources of the acquisition node (see base.py for the interface)."""

from .base import (
    EndOfStream,
    FrameSource,
    SourceError,
    SourceFrame,
    SourceInfo,
    SourceStats,
    TrackedTransform,
)

__all__ = [
    "EndOfStream",
    "FrameSource",
    "SourceError",
    "SourceFrame",
    "SourceInfo",
    "SourceStats",
    "TrackedTransform",
]
