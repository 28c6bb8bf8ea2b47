"""A synthetic test-pattern source: a device that delivers at a fixed rate.

It behaves like a grabber: frames are due every ``1 / fps`` s on the monotonic clock; a
reader that comes late gets the newest due frame and the ones it missed are counted as
``dropped`` (a real card drops them the same way). Frames come from a small set of
precomputed patterns (moving bars + the frame number as a bit row), so producing them
costs nothing and the benchmark measures the acquisition path, not pattern drawing.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt
from us_frame_channel.layout import PIXEL_LAYOUTS

from us_frame_channel import PixelFormat, array_shape

from .base import EndOfStream, FrameSource, SourceError, SourceFrame, SourceInfo


def _pattern(fmt: PixelFormat, width: int, height: int, phase: int) -> npt.NDArray[Any]:
    layout = PIXEL_LAYOUTS[fmt]
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    grey = (127.5 + 127.5 * np.sin((x + 8 * phase) / 23.0) * np.cos(y / 31.0)).astype(np.uint8)
    grey = np.broadcast_to(grey, (height, width))
    shape = array_shape(fmt, width, height)
    if layout.dtype == np.uint8:
        out = np.empty(shape, np.uint8)
        if out.ndim == 2:
            out[:] = grey
        elif fmt is PixelFormat.UYVY:
            out[..., 0] = 128  # chroma neutral
            out[..., 1] = grey  # luma
        else:
            out[...] = grey[..., None]
        return out
    if layout.dtype.kind == "u":
        return (grey.astype(layout.dtype) * 257).astype(layout.dtype)
    return (grey.astype(np.float32) / 255.0).astype(layout.dtype)


class SyntheticSource(FrameSource):
    """Moving test pattern at ``fps`` (``realtime``) or as fast as possible.

    ``count`` > 0 ends the stream after that many frames (EndOfStream).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        pixel_format: str | PixelFormat = "mono8",
        fps: float = 30.0,
        *,
        realtime: bool = True,
        count: int = 0,
        patterns: int = 16,
    ) -> None:
        super().__init__()
        try:
            self.pixel_format = PixelFormat.parse(pixel_format)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise SourceError(f"synthetic size {width}x{height} px out of range 16-8192")
        if self.pixel_format is PixelFormat.UYVY and width % 2:
            raise SourceError(f"uyvy needs an even width, got {width}")
        if not 0.1 <= fps <= 2000:
            raise SourceError(f"synthetic fps must be in [0.1, 2000], got {fps}")
        self.width, self.height, self.fps = width, height, fps
        self.realtime, self.count, self.n_patterns = realtime, count, max(1, patterns)
        self._frames: list[npt.NDArray[Any]] = []
        self._index = 0
        self._t0 = 0.0

    def open(self) -> SourceInfo:
        self._frames = [
            _pattern(self.pixel_format, self.width, self.height, i) for i in range(self.n_patterns)
        ]
        self._index = 0
        self._t0 = -1.0  # the clock starts at the first read
        return SourceInfo(
            self.width,
            self.height,
            self.pixel_format,
            self.fps,
            f"synthetic pattern {self.width}x{self.height} {self.pixel_format.label} "
            f"{self.fps:g} fps",
        )

    def read(self, timeout_s: float) -> SourceFrame | None:
        if not self._frames:
            raise SourceError("synthetic source is not open")
        if self.count and self._index >= self.count:
            raise EndOfStream
        if self.realtime:
            period = 1.0 / self.fps
            now = time.monotonic()
            if self._t0 < 0 or now - (self._t0 + self._index * period) > 1.0:
                # first read, or reading resumed after a pause: restart the clock here
                self._t0 = now - self._index * period
            due = self._t0 + self._index * period
            if due - now > timeout_s:
                time.sleep(max(0.0, timeout_s))
                return None
            if due > now:
                time.sleep(due - now)  # releases the GIL
            else:
                late = int((now - due) / period)
                if late:  # the reader missed these frames: a device would drop them
                    self.stats.dropped += late
                    self._index += late
        i = self._index
        self._index += 1
        self.stats.delivered += 1
        t_dev = int(i * 1e9 / self.fps)
        return SourceFrame(
            image=self._frames[i % len(self._frames)],
            pixel_format=self.pixel_format,
            host_timestamp_ns=time.time_ns(),
            device_timestamp_ns=t_dev,
        )

    def close(self) -> None:
        self._frames = []
