"""Zero-copy shared-memory frame channel on iceoryx2 (layout version 1).

A producer (:class:`FrameWriter`) copies each frame once into shared memory; any number
of consumer processes (:class:`FrameReader`) get read-only numpy views of it, woken by an
event. The byte layout is specified in ``docs/shared-memory-layout.md``. This package
never imports rclpy.
"""

from .config import ChannelConfig
from .errors import (
    BorrowLimitError,
    ChannelConfigError,
    ChannelError,
    ChannelFullError,
    ChannelNotFoundError,
    FrameTooLargeError,
    IncompatibleChannelError,
    LayoutVersionError,
)
from .layout import LAYOUT_VERSION, FrameHeader, FrameInfo, PixelFormat, array_shape, frame_bytes
from .reader import Frame, FrameReader, ReaderStats, ReadMode
from .writer import FrameSlot, FrameWriter

__all__ = [
    "LAYOUT_VERSION",
    "BorrowLimitError",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelError",
    "ChannelFullError",
    "ChannelNotFoundError",
    "Frame",
    "FrameHeader",
    "FrameInfo",
    "FrameReader",
    "FrameSlot",
    "FrameTooLargeError",
    "FrameWriter",
    "IncompatibleChannelError",
    "LayoutVersionError",
    "PixelFormat",
    "ReadMode",
    "ReaderStats",
    "array_shape",
    "frame_bytes",
]
