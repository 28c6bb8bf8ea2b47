"""Whole frames on a ROS topic (``us_interfaces/Frame``), for consumers on another host.

Shared memory is local to one machine; DDS is how frames cross to another one. This
module (messages only, no rclpy) builds and reads those messages and publishes them from
a thread of their own, so the capture thread never waits for the network:

- :func:`fill_frame_ref` / :func:`frame_msg`: metadata + pixels -> message (the pixels are
  copied; the channel slot they came from is reused by the producer);
- :func:`frame_from_msg`: message -> ``(array, FrameInfo)``, validated, with a clear
  :class:`FrameTopicError` for a malformed message;
- :class:`TopicFramePublisher`: newest-only hand-over to a publisher thread, used only
  while the topic has subscribers.

Time on the receiving host: ``FrameInfo.publish_monotonic_ns`` of a received frame is the
*capture* time mapped onto the local monotonic clock through CLOCK_REALTIME
(``monotonic_now - (realtime_now - host_timestamp_ns)``): latencies computed from it run
from capture, and across hosts they are only as good as the clock synchronisation
(chrony / PTP).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from us_frame_channel.latest import LatestMailbox, MailboxClosed
from us_frame_channel.layout import PIXEL_LAYOUTS, FrameInfo

from us_frame_channel import LAYOUT_VERSION, PixelFormat
from us_interfaces.msg import Frame, FrameRef

__all__ = [
    "ENCODINGS",
    "FrameTopicError",
    "TopicFramePublisher",
    "fill_frame_ref",
    "frame_from_msg",
    "frame_msg",
]

# sensor_msgs/Image encodings (REP / image_encodings names) per channel pixel format
ENCODINGS: dict[PixelFormat, str] = {
    PixelFormat.MONO8: "mono8",
    PixelFormat.MONO16: "mono16",
    PixelFormat.UYVY: "yuv422",
    PixelFormat.BGR8: "bgr8",
    PixelFormat.BGRA8: "bgra8",
    PixelFormat.FLOAT32: "32FC1",
    PixelFormat.LABEL8: "mono8",
}


class FrameTopicError(ValueError):
    """A ``us_interfaces/Frame`` message that cannot be a frame (the reason says why)."""


def _ns_to_stamp(ns: int, stamp: Any) -> None:
    stamp.sec, stamp.nanosec = divmod(int(ns), 1_000_000_000)


def fill_frame_ref(
    m: FrameRef,
    *,
    channel: str,
    frame_id: str,
    seq: int,
    epoch: int,
    device_timestamp_ns: int,
    host_timestamp_ns: int,
    width: int,
    height: int,
    pixel_format: PixelFormat,
    spacing_mm: tuple[float, float],
    roi: tuple[int, int, int, int],
    payload_bytes: int,
    source_seq: int | None = None,
    source_epoch: int | None = None,
) -> FrameRef:
    """Fill ``m`` (a FrameRef) with one frame's header; returns ``m``."""
    _ns_to_stamp(host_timestamp_ns, m.header.stamp)
    m.header.frame_id = frame_id
    m.channel = channel
    m.layout_version = LAYOUT_VERSION
    m.seq, m.producer_epoch = int(seq), int(epoch)
    m.source_seq = int(seq if source_seq is None else source_seq)
    m.source_epoch = int(epoch if source_epoch is None else source_epoch)
    m.device_timestamp_ns = int(device_timestamp_ns)
    m.host_timestamp_ns = int(host_timestamp_ns)
    m.payload_bytes = int(payload_bytes)
    m.width, m.height = int(width), int(height)
    m.stride_bytes = int(payload_bytes) // max(1, int(height))
    m.pixel_format = pixel_format.label
    m.spacing_x_mm, m.spacing_y_mm = float(spacing_mm[0]), float(spacing_mm[1])
    m.roi.x_offset, m.roi.y_offset, m.roi.width, m.roi.height = (int(v) for v in roi)
    return m


def frame_msg(ref: FrameRef, image: np.ndarray) -> Frame:
    """A Frame message: ``ref`` (metadata) + a copy of ``image`` (``(H, W[, C])``)."""
    fmt = PixelFormat.parse(ref.pixel_format)
    a = np.ascontiguousarray(image)
    m = Frame()
    m.ref = ref
    img = m.image
    img.header = ref.header
    img.height, img.width = int(a.shape[0]), int(a.shape[1])
    img.encoding = ENCODINGS[fmt]
    img.is_bigendian = 0
    img.step = int(a.strides[0])
    img.data.frombytes(a.reshape(a.shape[0], -1).view(np.uint8).data)  # one memcpy
    return m


def frame_from_msg(msg: Frame) -> tuple[np.ndarray, FrameInfo]:
    """``(array, info)`` of a received Frame; the array is a read-only view of the message.

    Raises :class:`FrameTopicError` when sizes, format or encoding do not agree."""
    ref, img = msg.ref, msg.image
    try:
        fmt = PixelFormat.parse(ref.pixel_format)
    except ValueError as exc:
        raise FrameTopicError(f"frame {ref.seq}: {exc}") from None
    if img.encoding != ENCODINGS[fmt]:
        raise FrameTopicError(
            f"frame {ref.seq}: encoding {img.encoding!r} does not carry pixel format "
            f"{fmt.label} (expected {ENCODINGS[fmt]!r})"
        )
    if (img.width, img.height) != (ref.width, ref.height) or img.width == 0 or img.height == 0:
        raise FrameTopicError(
            f"frame {ref.seq}: image {img.width}x{img.height} px but header "
            f"{ref.width}x{ref.height} px"
        )
    layout = PIXEL_LAYOUTS[fmt]
    row = img.width * layout.bytes_per_pixel
    if img.step < row or len(img.data) != img.step * img.height:
        raise FrameTopicError(
            f"frame {ref.seq}: {len(img.data)} bytes for {img.height} rows of step {img.step} "
            f"(a row needs {row})"
        )
    x, y, w, h = ref.roi.x_offset, ref.roi.y_offset, ref.roi.width, ref.roi.height
    if x + w > img.width or y + h > img.height:
        raise FrameTopicError(
            f"frame {ref.seq}: roi {[x, y, w, h]} outside the {img.width}x{img.height} frame"
        )
    raw = np.frombuffer(img.data, dtype=np.uint8).reshape(img.height, img.step)[:, :row]
    shape = (img.height, img.width) + ((layout.channels,) if layout.channels > 1 else ())
    array = raw.view(layout.dtype).reshape(shape)
    now_mono, now_real = time.monotonic_ns(), time.time_ns()
    age_ns = max(0, now_real - int(ref.host_timestamp_ns))
    info = FrameInfo(
        seq=int(ref.seq),
        producer_epoch=int(ref.producer_epoch),
        source_seq=int(ref.source_seq),
        source_epoch=int(ref.source_epoch),
        device_timestamp_ns=int(ref.device_timestamp_ns),
        host_timestamp_ns=int(ref.host_timestamp_ns),
        publish_monotonic_ns=now_mono - age_ns,
        width=int(img.width),
        height=int(img.height),
        stride_bytes=int(img.step),
        payload_bytes=int(img.step * img.height),
        pixel_format=fmt,
        spacing_x_mm=float(ref.spacing_x_mm),
        spacing_y_mm=float(ref.spacing_y_mm),
        roi=(int(x), int(y), int(w), int(h)),
        meta_revision=0,
        flags=0,
    )
    return array, info


class TopicFramePublisher:
    """Publish frames on a topic from a thread of its own, newest only, while subscribed.

    ``offer(ref, image)`` runs on the capture thread: when ``subscribers()`` is 0 it costs
    one call and returns False; otherwise the pixels are copied into a one-slot hand-over
    (a frame the publisher thread had not sent yet is replaced and counted in
    :attr:`superseded`), and the thread builds and publishes the message. The network or
    a slow subscriber therefore never holds up capture.
    """

    def __init__(
        self,
        publish: Callable[[Frame], None],
        subscribers: Callable[[], int],
        name: str = "frame-topic",
    ) -> None:
        self._publish = publish
        self._subscribers = subscribers
        self._slot: LatestMailbox[tuple[FrameRef, np.ndarray]] = LatestMailbox()
        self._stop = threading.Event()
        self.published = 0
        self.errors = 0
        self.last_error = ""
        self.publish_ms: deque[float] = deque(maxlen=300)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def superseded(self) -> int:
        """Frames replaced by a newer one before the thread could send them."""
        return self._slot.dropped + self._slot.skipped

    def subscribers(self) -> int:
        try:
            return int(self._subscribers())
        except Exception:  # noqa: BLE001 - a publisher being destroyed
            return 0

    def offer(self, ref: FrameRef, image: np.ndarray, copy: bool = True) -> bool:
        """Hand ``image`` over if somebody subscribes; ``copy=False`` for an array the
        caller will not touch again (the default copies: channel slots are reused)."""
        if self._stop.is_set() or self.subscribers() == 0:
            return False
        self._slot.put((ref, np.array(image, copy=True) if copy else image))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._slot.get(0.2)
            except MailboxClosed:
                return
            if item is None:
                continue
            t0 = time.perf_counter()
            try:
                self._publish(frame_msg(*item))
            except Exception as exc:  # noqa: BLE001 - never stop on one failed publish
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            self.publish_ms.append((time.perf_counter() - t0) * 1e3)
            self.published += 1

    def close(self) -> None:
        self._stop.set()
        self._slot.close()
        self._thread.join(timeout=5.0)
