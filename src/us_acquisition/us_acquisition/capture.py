"""The acquisition loop: source -> ROI crop -> shared-memory channel (no rclpy here).

One thread reads the source and writes each frame once into the frame channel. The node
(``node.py``) only wires this to ROS: it gets a callback per published frame (to publish
a FrameRef, TF and a throttled preview) and reads :meth:`CaptureLoop.snapshot` for status.
A failing callback is counted and logged but never stops acquisition.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from us_frame_channel import ChannelConfig, FrameWriter, PixelFormat, frame_bytes

from .geometry import FrameGeometry
from .sources.base import EndOfStream, FrameSource, SourceError, SourceFrame, SourceInfo

log = logging.getLogger(__name__)

_WINDOW = 240  # frames in the fps / jitter window


@dataclass(frozen=True)
class PublishedFrame:
    """What the node needs to announce one published frame."""

    seq: int
    epoch: int
    frame: SourceFrame  # the source's frame (image may be reused after the callback)
    image: np.ndarray  # the pixels as written to the channel (a view: copy to keep it)
    width: int  # px of the published (cropped) frame
    height: int
    pixel_format: PixelFormat
    spacing_mm: tuple[float, float]
    roi: tuple[int, int, int, int]  # as written into the header
    payload_bytes: int


@dataclass(frozen=True)
class CaptureSnapshot:
    """Live figures of the loop."""

    state: str  # "closed", "paused", "running", "ended", "error"
    produced: int  # frames written into the channel
    source_dropped: int  # frames the device/source lost
    callback_errors: int
    fps: float  # over the last window
    interval_jitter_p99_us: float  # |frame interval - median interval|, p99
    publish_p50_us: float  # loan + copy + send
    publish_p99_us: float
    consumers: int
    last_error: str


class CaptureLoop:
    """Owns a source and the frame channel it feeds.

    ``open()`` opens the source and creates the channel (sized for the cropped frame);
    ``start()`` streams on a thread, ``pause()`` stops streaming but keeps both open,
    ``close()`` releases everything. ``on_frame`` runs on the capture thread.
    """

    def __init__(
        self,
        source: FrameSource,
        channel: ChannelConfig,
        geometry: FrameGeometry,
        on_frame: Callable[[PublishedFrame], None] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.channel_template = channel
        self.geometry = geometry
        self.on_frame = on_frame
        self.metadata = dict(metadata or {})
        self.info: SourceInfo | None = None
        self.writer: FrameWriter | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._state = "closed"
        self._last_error = ""
        self._produced = 0
        self._callback_errors = 0
        self._stamps: collections.deque[int] = collections.deque(maxlen=_WINDOW)
        self._publish_ns: collections.deque[int] = collections.deque(maxlen=_WINDOW)

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> SourceInfo:
        """Open the source and create the channel; raise SourceError/ChannelError/GeometryError."""
        info = self.source.open()
        try:
            src_roi = info.extra.get("roi")
            if self.geometry.roi is None and src_roi:
                # the source knows where its image is on the screen (e.g. the simulator's
                # scanner-screen mode); a configured ROI always wins
                self.geometry = dataclasses.replace(self.geometry, roi=tuple(src_roi))
            self.geometry.check_fits(info.width, info.height)
            out_w, out_h = self.geometry.output_size(info.width, info.height)
            need = frame_bytes(info.pixel_format, out_w, out_h)
            tmpl = self.channel_template
            size = max(tmpl.max_frame_bytes, need) if tmpl.max_frame_bytes > 1 else need
            cfg = ChannelConfig(
                name=tmpl.name,
                max_frame_bytes=size,
                max_consumers=tmpl.max_consumers,
                buffer_frames=tmpl.buffer_frames,
                max_borrowed=tmpl.max_borrowed,
                kind=tmpl.kind,
            )
            self.writer = FrameWriter(cfg)
            meta = {
                "device": info.description,
                "source_width": info.width,
                "source_height": info.height,
                "source_roi": list(self.geometry.roi) if self.geometry.roi else None,
                "frame_rate_hz": info.nominal_fps,
                "imaging_depth_mm": self.geometry.imaging_depth_mm or None,
                **self.metadata,
            }
            self.writer.set_metadata(meta)
        except Exception:
            self.source.close()
            raise
        self.info = info
        self._state = "paused"
        return info

    def start(self) -> None:
        if self.writer is None:
            raise RuntimeError("open() the capture loop before start()")
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
            self._thread.start()
        self._running.set()
        if self._state in ("paused", "closed"):
            self._state = "running"

    def pause(self) -> None:
        """Stop publishing; when this returns no further frame enters the channel."""
        self._running.clear()
        with self._publish_lock:
            pass
        if self._state == "running":
            self._state = "paused"

    def close(self) -> None:
        self._running.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.source.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._state = "closed"

    def set_geometry(self, geometry: FrameGeometry) -> None:
        """Change spacing / depth live. A different published size needs a reconfigure."""
        if self.info is not None:
            geometry.check_fits(self.info.width, self.info.height)
            old = self.geometry.output_size(self.info.width, self.info.height)
            if geometry.output_size(self.info.width, self.info.height) != old:
                raise ValueError(
                    "a different ROI size changes the channel: deactivate, clean up and configure "
                    "again"
                )
        with self._lock:
            self.geometry = geometry

    # -- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._running.wait(timeout=0.2):
                continue
            try:
                frame = self.source.read(timeout_s=0.2)
            except EndOfStream:
                self._state = "ended"
                self._running.clear()
                log.info("source reached the end of the recording")
                continue
            except SourceError as exc:
                self._fail(f"source error: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - a source bug must not kill the thread
                self._fail(f"source failed: {type(exc).__name__}: {exc}")
                continue
            if frame is None:
                continue
            with self._publish_lock:  # pause() waits for a publish in flight
                if self._running.is_set():
                    self._publish(frame)

    def _fail(self, message: str) -> None:
        self._last_error = message
        self._state = "error"
        self._running.clear()
        log.error(message)

    def _publish(self, frame: SourceFrame) -> None:
        writer = self.writer
        if writer is None:
            return
        with self._lock:
            geo = self.geometry
        img = frame.image
        h_src, w_src = img.shape[0], img.shape[1]
        if geo.roi is not None and geo.crop_to_roi:
            x, y, w, h = geo.roi
            if x + w > w_src or y + h > h_src:
                self._fail(
                    f"frame of {w_src}x{h_src} px no longer contains roi {list(geo.roi)} "
                    "(source changed mode?)"
                )
                return
            img = img[y : y + h, x : x + w]
            roi = (0, 0, w, h)
        else:
            roi = geo.roi if geo.roi is not None else (0, 0, w_src, h_src)
        spacing = frame.spacing_mm if frame.spacing_mm is not None else geo.spacing()
        t0 = time.perf_counter_ns()
        try:
            seq = writer.publish(
                img,
                frame.pixel_format,
                device_timestamp_ns=frame.device_timestamp_ns,
                host_timestamp_ns=frame.host_timestamp_ns,
                spacing_mm=spacing,
                roi=roi,
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a frame larger than the channel
            self._fail(f"cannot publish frame: {exc}")
            return
        self._publish_ns.append(time.perf_counter_ns() - t0)
        self._stamps.append(frame.host_timestamp_ns)
        self._produced += 1
        if self.on_frame is not None:
            pub = PublishedFrame(
                seq=seq,
                epoch=writer.epoch,
                frame=frame,
                image=img,
                width=int(img.shape[1]),
                height=int(img.shape[0]),
                pixel_format=frame.pixel_format,
                spacing_mm=spacing,
                roi=roi,
                payload_bytes=int(
                    img.shape[0]
                    * img.shape[1]
                    * img.itemsize
                    * (img.shape[2] if img.ndim == 3 else 1)
                ),
            )
            try:
                self.on_frame(pub)
            except Exception as exc:  # announcing must not stop capture
                self._callback_errors += 1
                if self._callback_errors <= 3:
                    log.exception("frame callback failed: %s", exc)

    # -- figures ------------------------------------------------------------------------
    def snapshot(self) -> CaptureSnapshot:
        stamps = np.asarray(self._stamps, dtype=np.int64)
        fps = jitter = 0.0
        if stamps.size >= 3:
            d = np.diff(stamps).astype(np.float64)
            span = (stamps[-1] - stamps[0]) / 1e9
            fps = (stamps.size - 1) / span if span > 0 else 0.0
            jitter = float(np.percentile(np.abs(d - np.median(d)), 99)) / 1e3
        pub = np.asarray(self._publish_ns, dtype=np.float64) / 1e3
        return CaptureSnapshot(
            state=self._state,
            produced=self._produced,
            source_dropped=self.source.stats.dropped,
            callback_errors=self._callback_errors,
            fps=fps,
            interval_jitter_p99_us=jitter,
            publish_p50_us=float(np.percentile(pub, 50)) if pub.size else 0.0,
            publish_p99_us=float(np.percentile(pub, 99)) if pub.size else 0.0,
            consumers=self.writer.consumer_count() if self.writer is not None else 0,
            last_error=self._last_error,
        )
