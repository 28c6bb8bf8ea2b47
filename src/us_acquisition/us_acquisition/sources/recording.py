"""Replay sources: PLUS/Slicer tracked sequence files and plain video files.

* :class:`SequenceFileSource` replays a ``.seq.mha`` / ``.igs.mha`` / ``.seq.nrrd`` /
  ``.igs.nrrd`` recording (see :mod:`us_acquisition.sequence_io`) with its per-frame
  tracker transforms.
* :class:`VideoFileSource` replays a video file with PyAV (``pip install av``), without
  tracking.

Both deliver frames at the recorded rate (``realtime=True``, the default: frame *k* is
delivered ``(t_k - t_0) / speed`` seconds after the first :meth:`read`) or as fast as the
caller reads (``realtime=False``), and can loop. While waiting they sleep on an event
(releasing the GIL); :meth:`close` from another thread wakes a waiting :meth:`read`.
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from us_frame_channel import PixelFormat

from ..sequence_io import SequenceFileError, TrackedSequence, read_sequence, split_transform_name
from .base import EndOfStream, FrameSource, SourceError, SourceFrame, SourceInfo, TrackedTransform

__all__ = ["SequenceFileSource", "VideoFileSource", "default_frame_name"]

_NS_PER_S = 1_000_000_000
#: frames the video decoder may run ahead of delivery
_DECODE_AHEAD = 4


def default_frame_name(plus_name: str) -> str:
    """TF frame name of a PLUS coordinate frame: snake_case (``"StylusTip"`` ->
    ``"stylus_tip"``, ``"Tracker"`` -> ``"tracker"``)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", plus_name.strip())
    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_").lower() or "frame"


class _Pacer:
    """Real-time schedule of a replay: maps recorded offsets (s) onto wall/monotonic time.

    The schedule is anchored at the first frame; frame offsets are divided by ``speed``.
    """

    def __init__(self, realtime: bool, speed: float, stop: threading.Event) -> None:
        self.realtime = realtime
        self.speed = speed
        self._stop = stop
        self._t0_mono: float | None = None
        self._t0_wall_ns = 0

    def anchor(self) -> None:
        if self._t0_mono is None:
            self._t0_mono = time.monotonic()
            self._t0_wall_ns = time.time_ns()

    def wait(self, offset_s: float, timeout_s: float) -> bool:
        """Sleep until ``offset_s`` (recorded seconds after the first frame) is due.

        Returns False if that is more than ``timeout_s`` away (after sleeping
        ``timeout_s``) or if the source was closed meanwhile.
        """
        self.anchor()
        if not self.realtime:
            return not self._stop.is_set()
        assert self._t0_mono is not None
        remaining = self._t0_mono + offset_s / self.speed - time.monotonic()
        if remaining > timeout_s:
            self._stop.wait(max(timeout_s, 0.0))
            return False
        if remaining > 0:
            self._stop.wait(remaining)
        return not self._stop.is_set()

    def host_ns(self, offset_s: float) -> int:
        """CLOCK_REALTIME (ns) at which ``offset_s`` is (or would be) delivered."""
        self.anchor()
        return self._t0_wall_ns + round(offset_s / self.speed * _NS_PER_S)


def _check_common(path: str | os.PathLike[str], speed: float) -> Path:
    if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    return Path(path)


class SequenceFileSource(FrameSource):
    """Replays a PLUS/Slicer tracked sequence file as a :class:`FrameSource`.

    Args:
        path: ``.seq.mha``, ``.igs.mha``, ``.mhd``, ``.seq.nrrd``, ``.igs.nrrd`` file.
        realtime: deliver frames at the recorded rate (timestamps relative to the first
            frame, divided by ``speed``); False = as fast as :meth:`read` is called.
        loop: start over at the end (timestamps keep increasing); False = raise
            :class:`EndOfStream` after the last frame.
        speed: playback rate factor (2.0 = twice as fast), > 0.
        transform_map: PLUS coordinate-frame name -> frame name used in the delivered
            :class:`TrackedTransform` (e.g. ``{"Tracker": "tracker", "Probe":
            "us_probe"}``); names not in the map become snake_case
            (:func:`default_frame_name`). ``"ProbeToTracker"`` is delivered as
            ``from_frame="probe"``, ``to_frame="tracker"`` (``T_tracker_probe``, i.e. TF
            parent ``tracker``, child ``probe``).

    Delivered frames:
        * ``image``: mono8 (``MET_UCHAR`` grey), mono16 (``MET_USHORT``), float32
          (``MET_FLOAT``), bgr8 (3-channel uint8, converted from the file's RGB) or bgra8
          (4-channel uint8, from RGBA). Other pixel types make :meth:`open` fail.
        * ``host_timestamp_ns``: CLOCK_REALTIME at the first read + recorded offset /
          speed, i.e. the delivery time in real-time mode (a synthetic, evenly paced
          clock when ``realtime=False``); strictly increasing across loops.
        * ``device_timestamp_ns``: the recorded timestamp (s) in ns, plus one recording
          length per completed loop.
        * ``transforms``: every per-frame transform with ``valid`` from its status field;
          ``timestamp_ns`` = the frame's ``host_timestamp_ns``.
        * ``spacing_mm``: the file's pixel spacing, except PLUS's placeholder ``1 1``
          (treated as unknown -> None).

    Frames whose ``ImageStatus`` is not OK are skipped (their pixels are blank).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = True,
        loop: bool = False,
        speed: float = 1.0,
        transform_map: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.path = _check_common(path, speed)
        self.realtime = realtime
        self.loop = loop
        self.speed = float(speed)
        self.transform_map = dict(transform_map or {})
        self._seq: TrackedSequence | None = None
        self._order: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self._pos = 0
        self._loops = 0
        self._period_s = 0.0
        self._last_offset = -math.inf
        self._pixel_format = PixelFormat.MONO8
        self._spacing: tuple[float, float] | None = None
        self._frame_names: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._pacer = _Pacer(realtime, self.speed, self._stop)
        self._closed = False

    # -- FrameSource ----------------------------------------------------------------

    def open(self) -> SourceInfo:
        """Load the recording; raise :class:`SourceError` saying why it cannot be replayed."""
        if self._seq is not None:
            raise SourceError(f"{self.path}: source is already open")
        try:
            seq = read_sequence(self.path)
        except SequenceFileError as exc:
            raise SourceError(f"cannot replay sequence file: {exc}") from exc
        if seq.num_frames == 0 or seq.width == 0 or seq.height == 0:
            raise SourceError(f"{self.path}: the sequence contains no image data")
        assert seq.image_valid is not None
        order = np.flatnonzero(seq.image_valid)
        if order.size == 0:
            raise SourceError(f"{self.path}: no frame has ImageStatus = OK")
        self._pixel_format = self._convert_pixels(seq)

        names: dict[str, tuple[str, str]] = {}
        for name in seq.transforms:
            try:
                child, parent = split_transform_name(name)
            except ValueError as exc:
                raise SourceError(f"{self.path}: {exc}") from exc
            names[name] = (self._map(child), self._map(parent))
        self._frame_names = names

        ts = seq.timestamps_s[order]
        diffs = np.diff(ts)
        positive = diffs[diffs > 0]
        step = float(np.median(positive)) if positive.size else 0.1
        span = float(ts.max() - ts[0]) if ts.size else 0.0
        self._period_s = max(span, 0.0) + step
        spacing = seq.spacing_mm
        self._spacing = None if spacing is None or spacing == (1.0, 1.0) else spacing
        self._seq = seq
        self._order = order
        self._pos = 0
        self._loops = 0
        fps = (len(ts) - 1) / span if span > 0 else 0.0
        return SourceInfo(
            width=seq.width,
            height=seq.height,
            pixel_format=self._pixel_format,
            nominal_fps=fps,
            description=(
                f"sequence file {self.path.name}: {seq.num_frames} frames "
                f"{seq.width}x{seq.height} {self._pixel_format.label}, {span:.3f} s"
            ),
            transform_names=tuple(seq.transforms),
            extra={
                "path": str(self.path),
                "frames": int(seq.num_frames),
                "valid_frames": int(order.size),
                "duration_s": span,
                "orientation": seq.orientation,
                "image_type": seq.image_type,
                "spacing_mm": self._spacing,
                "frame_names": dict(names),
                "realtime": self.realtime,
                "loop": self.loop,
                "speed": self.speed,
            },
        )

    def read(self, timeout_s: float) -> SourceFrame | None:
        """Next frame (blocking up to ``timeout_s`` s in real-time mode); None on timeout;
        :class:`EndOfStream` after the last frame when not looping."""
        seq = self._seq
        if seq is None or self._closed:
            raise SourceError(f"{self.path}: source is not open")
        if self._pos >= self._order.size:
            if not self.loop:
                raise EndOfStream(str(self.path))
            self._pos = 0
            self._loops += 1
        i = int(self._order[self._pos])
        t0 = float(seq.timestamps_s[self._order[0]])
        offset = float(seq.timestamps_s[i]) - t0 + self._loops * self._period_s
        offset = max(offset, self._last_offset)  # keep time monotonic on unordered stamps
        if not self._pacer.wait(offset, timeout_s):
            if self._closed:
                raise SourceError(f"{self.path}: source was closed")
            return None
        self._pos += 1
        self._last_offset = offset
        host_ns = self._pacer.host_ns(offset)
        device_ns = round((float(seq.timestamps_s[i]) + self._loops * self._period_s) * _NS_PER_S)
        transforms = [
            TrackedTransform(
                from_frame=self._frame_names[name][0],
                to_frame=self._frame_names[name][1],
                matrix=mats[i],
                valid=bool(seq.transform_status[name][i]),
                timestamp_ns=host_ns,
                name=name,
            )
            for name, mats in seq.transforms.items()
        ]
        self.stats.delivered += 1
        return SourceFrame(
            image=seq.frames[i],
            pixel_format=self._pixel_format,
            host_timestamp_ns=host_ns,
            device_timestamp_ns=device_ns,
            transforms=transforms,
            spacing_mm=self._spacing,
        )

    def close(self) -> None:
        """Release the recording (idempotent); wakes a :meth:`read` that is waiting."""
        self._closed = True
        self._stop.set()
        self._seq = None

    # -- helpers --------------------------------------------------------------------

    def _map(self, plus_name: str) -> str:
        return self.transform_map.get(plus_name, default_frame_name(plus_name))

    def _convert_pixels(self, seq: TrackedSequence) -> PixelFormat:
        """Pick the pixel format; reorder RGB(A) -> BGR(A) in place (no copy)."""
        dtype, channels = seq.frames.dtype, seq.channels
        if channels == 1 and dtype == np.uint8:
            return PixelFormat.MONO8
        if channels == 1 and dtype == np.uint16:
            return PixelFormat.MONO16
        if channels == 1 and dtype == np.float32:
            return PixelFormat.FLOAT32
        if channels in (3, 4) and dtype == np.uint8:
            frames = seq.frames
            red = frames[..., 0].copy()
            frames[..., 0] = frames[..., 2]
            frames[..., 2] = red
            return PixelFormat.BGR8 if channels == 3 else PixelFormat.BGRA8
        raise SourceError(
            f"{self.path}: pixel type {dtype} with {channels} channel(s) cannot be streamed "
            "(supported: uint8 grey/RGB/RGBA, uint16 grey, float32 grey)"
        )


#: PyAV conversion per delivered pixel format (PyAV cannot export uyvy422: we swap yuyv422)
_AV_FORMATS = {
    PixelFormat.MONO8: "gray",
    PixelFormat.MONO16: "gray16le",
    PixelFormat.BGR8: "bgr24",
    PixelFormat.BGRA8: "bgra",
    PixelFormat.UYVY: "yuyv422",
}


class VideoFileSource(FrameSource):
    """Replays a video file (anything FFmpeg decodes) through PyAV.

    Args:
        path: the video file.
        realtime: deliver frames at the stream's presentation timestamps (relative to the
            first frame); False = as fast as :meth:`read` is called.
        loop: start over at the end (timestamps keep increasing); False = raise
            :class:`EndOfStream` after the last frame.
        pixel_format: ``"mono8"`` (grey), ``"mono16"``, ``"bgr8"``, ``"bgra8"`` or ``"uyvy"``.

    ``device_timestamp_ns`` is the frame's presentation time in ns (plus one video
    length per completed loop); ``host_timestamp_ns`` is CLOCK_REALTIME at the first read
    plus that offset. ``stats.dropped`` stays 0 (a file loses nothing).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = True,
        loop: bool = False,
        pixel_format: str | PixelFormat = "mono8",
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        try:
            fmt = PixelFormat.parse(pixel_format)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if fmt not in _AV_FORMATS:
            raise SourceError(
                f"video replay delivers {', '.join(f.label for f in _AV_FORMATS)}; got {fmt.label}"
            )
        self.pixel_format = fmt
        self._av_format = _AV_FORMATS[fmt]
        self._av: Any = None
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._pending: Any = None
        # decoder-thread state: timeline of the decoded frames
        self._first_time: float | None = None
        self._last_time = 0.0
        self._step_s = 0.0
        self._loop_offset_s = 0.0
        self._last_offset = -math.inf
        self._index = 0
        self._fps = 0.0
        self._stop = threading.Event()
        self._pacer = _Pacer(realtime, 1.0, self._stop)
        self._closed = False
        self._opened = False
        #: decoded + converted frames, decoded ahead by a thread so that decoding time
        #: (up to a frame period at 1080p60) does not add to when frames are delivered
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_DECODE_AHEAD)
        self._first_frame: Any = None
        self._decoder: threading.Thread | None = None

    def open(self) -> SourceInfo:
        """Open the file and decode its first frame; :class:`SourceError` if impossible."""
        if self._opened:
            raise SourceError(f"{self.path}: source is already open")
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            import av
        except ImportError as exc:
            raise SourceError("VideoFileSource needs PyAV: install av (pip install av)") from exc
        self._av = av
        self._start_container()
        try:
            self._first_frame = next(self._frames_iter())
        except StopIteration:
            self._close_container()
            raise SourceError(f"{self.path}: the video stream has no decodable frame") from None
        except Exception as exc:  # FFmpeg raises many error types
            self._close_container()
            raise SourceError(f"{self.path}: cannot decode video: {exc}") from exc
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self._fps = float(rate) if rate else 0.0
        self._step_s = 1.0 / self._fps if self._fps > 0 else 0.04
        width, height = int(self._first_frame.width), int(self._first_frame.height)
        self._opened = True
        self._decoder = threading.Thread(
            target=self._decode_ahead, name="video-decode", daemon=True
        )
        self._decoder.start()
        codec = stream.codec_context.name
        return SourceInfo(
            width=width,
            height=height,
            pixel_format=self.pixel_format,
            nominal_fps=self._fps,
            description=f"video file {self.path.name}: {codec} {width}x{height} @ "
            f"{self._fps:.3g} fps -> {self.pixel_format.label}",
            extra={
                "path": str(self.path),
                "codec": codec,
                "frames": int(stream.frames or 0),
                "realtime": self.realtime,
                "loop": self.loop,
            },
        )

    def read(self, timeout_s: float) -> SourceFrame | None:
        """Next frame; None on timeout; :class:`EndOfStream` at the end (no loop)."""
        if not self._opened or self._closed:
            raise SourceError(f"{self.path}: source is not open")
        item = self._pending
        if item is None:
            try:
                item = self._queue.get(timeout=max(timeout_s, 0.0))
            except queue.Empty:
                return None  # decoding is behind; the caller tries again
            if isinstance(item, BaseException):
                self._pending = item  # keep raising it
        if isinstance(item, BaseException):
            raise item
        offset, device_s, image = item
        if not self._pacer.wait(offset, timeout_s):
            if self._closed:
                raise SourceError(f"{self.path}: source was closed")
            self._pending = item
            return None
        self._pending = None
        self.stats.delivered += 1
        return SourceFrame(
            image=image,
            pixel_format=self.pixel_format,
            host_timestamp_ns=self._pacer.host_ns(offset),
            device_timestamp_ns=round(device_s * _NS_PER_S),
        )

    def _decode_ahead(self) -> None:
        """Decoder thread: decode, convert and queue frames with their timeline offsets."""
        first = self._first_frame
        self._first_frame = None
        while not self._stop.is_set():
            try:
                frame = first if first is not None else self._next_frame()
                first = None
                item: Any = (*self._timeline(frame), self._convert(frame))
            except (EndOfStream, SourceError) as exc:
                item = exc
            except Exception as exc:  # noqa: BLE001 - FFmpeg raises many types
                item = SourceError(f"{self.path}: decoding failed: {exc}")
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def _timeline(self, frame: Any) -> tuple[float, float]:
        """(offset from the first frame incl. loops, device time) of a decoded frame, s."""
        t = self._frame_time(frame)
        if self._first_time is None:
            self._first_time = t
        offset = max(t - self._first_time + self._loop_offset_s, self._last_offset)
        if self._last_offset > -math.inf and offset > self._last_offset:
            self._step_s = offset - self._last_offset
        self._last_offset = offset
        self._last_time = t
        self._index += 1
        return offset, t + self._loop_offset_s

    def _convert(self, frame: Any) -> npt.NDArray[Any]:
        try:
            image = frame.to_ndarray(format=self._av_format)
        except Exception as exc:  # FFmpeg conversion errors
            self.stats.errors += 1
            raise SourceError(f"{self.path}: cannot convert frame: {exc}") from exc
        if self.pixel_format is PixelFormat.UYVY:
            image = image[..., ::-1]  # YUYV (Y0 U Y1 V) -> UYVY (U Y0 V Y1) per pixel pair
        return np.ascontiguousarray(image)

    def close(self) -> None:
        """Close the file (idempotent); wakes a :meth:`read` that is waiting."""
        self._closed = True
        self._stop.set()
        self._pending = None
        if self._decoder is not None and self._decoder is not threading.current_thread():
            self._decoder.join(timeout=5.0)
            self._decoder = None
        self._close_container()

    # -- helpers --------------------------------------------------------------------

    def _start_container(self) -> None:
        av = self._av
        try:
            container = av.open(str(self.path), mode="r")
        except Exception as exc:  # av.error.* and OSError
            raise SourceError(f"{self.path}: cannot open video file: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.path}: the file has no video stream")
        container.streams.video[0].thread_type = "AUTO"
        self._container = container
        self._frames = None

    def _frames_iter(self) -> Iterator[Any]:
        if self._frames is None:
            self._frames = iter(self._container.decode(self._container.streams.video[0]))
        return self._frames

    def _close_container(self) -> None:
        container, self._container, self._frames = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                pass

    def _next_frame(self) -> Any:
        """Decode the next frame, reopening the file when looping; EndOfStream at the end."""
        for attempt in range(2):
            try:
                return next(self._frames_iter())
            except StopIteration:
                if not self.loop or attempt:
                    raise EndOfStream(str(self.path)) from None
            except Exception as exc:  # FFmpeg decode errors
                self.stats.errors += 1
                raise SourceError(f"{self.path}: decoding failed: {exc}") from exc
            # loop: the next pass starts one frame interval after the last frame
            assert self._first_time is not None
            self._loop_offset_s += self._last_time - self._first_time + self._step_s
            self._first_time = None
            self._close_container()
            self._start_container()
        raise EndOfStream(str(self.path))  # pragma: no cover

    def _frame_time(self, frame: Any) -> float:
        t = frame.time
        if t is None:
            return self._index * self._step_s
        return float(t)
