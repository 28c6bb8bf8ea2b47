"""The frame-source interface every acquisition source implements (no rclpy here).

A source owns a device or a file. :meth:`FrameSource.open` acquires it and says what it
will deliver, or raises :class:`SourceError` with a reason a person can act on (no card,
no driver, missing file, wrong format) within ~2 s. :meth:`FrameSource.read` blocks until
the next frame (releasing the GIL while it waits) and returns it, ``None`` on timeout, and
raises :class:`EndOfStream` when a finite recording is exhausted (and not looping).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from us_frame_channel import PixelFormat


class SourceError(RuntimeError):
    """A source cannot open or deliver; the message says why and what to check."""


class EndOfStream(Exception):
    """A finite source (a recording without looping) has no more frames."""


@dataclass(frozen=True)
class SourceInfo:
    """What an opened source delivers."""

    width: int  # px
    height: int  # px
    pixel_format: PixelFormat
    nominal_fps: float  # frames / s the device or file declares; 0 = unknown
    description: str  # e.g. "DeckLink Mini Recorder 4K, 1080p60, UYVY"
    #: names of the tracker transforms each frame carries (tracked recordings, simulator),
    #: e.g. ("ProbeToTracker", "ReferenceToTracker"); empty for plain video
    transform_names: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackedTransform:
    """One tracker transform sampled with a frame or on its own clock.

    ``matrix`` (4, 4) float64 maps ``from_frame`` coordinates into ``to_frame``
    coordinates, translation in mm (PLUS naming: "ProbeToTracker" = T_tracker_probe).
    ``from_frame``/``to_frame`` are TF-style frame names (``probe``, ``tracker``);
    ``name`` is the source's own transform name (``ProbeToTracker``), which the node's
    ``tf_transform_names`` map onto configured TF frames.
    """

    from_frame: str
    to_frame: str
    matrix: npt.NDArray[np.float64]
    valid: bool
    timestamp_ns: int  # host CLOCK_REALTIME (or recording) time of the sample, ns
    name: str = ""


@dataclass
class SourceFrame:
    """One frame as delivered by a source.

    ``image`` is ``(H, W)`` or ``(H, W, C)`` of the pixel format's dtype; it may be a view
    into the source's own buffer, valid until the next :meth:`FrameSource.read`.
    """

    image: npt.NDArray[Any]
    pixel_format: PixelFormat
    host_timestamp_ns: int  # CLOCK_REALTIME at capture (recordings: recorded time), ns
    device_timestamp_ns: int = 0  # device / stream clock, ns; 0 = none
    #: tracker transforms that belong to this frame (tracked recordings, simulator)
    transforms: list[TrackedTransform] = field(default_factory=list)
    #: ground-truth label image of the frame (simulator only), (H, W) uint8
    labels: npt.NDArray[np.uint8] | None = None
    #: pixel spacing the source knows (mm / px along columns, rows); None = from config
    spacing_mm: tuple[float, float] | None = None


@dataclass
class SourceStats:
    """Counters a source keeps; ``dropped`` = frames the device/pipeline lost."""

    delivered: int = 0
    dropped: int = 0
    errors: int = 0


class FrameSource(abc.ABC):
    """Base class of acquisition sources."""

    def __init__(self) -> None:
        self.stats = SourceStats()

    @abc.abstractmethod
    def open(self) -> SourceInfo:
        """Acquire the device/file; raise :class:`SourceError` with a clear reason."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> SourceFrame | None:
        """The next frame; None on timeout; :class:`EndOfStream` at the end."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device/file. Idempotent."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
