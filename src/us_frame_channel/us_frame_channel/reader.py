"""The consumer side: read-only numpy views of frames in shared memory, no copies."""

from __future__ import annotations

import ctypes
import enum
import json
import time
from dataclasses import dataclass
from typing import Any

import iceoryx2 as iox2
import numpy as np
import numpy.typing as npt

from . import _iox
from .errors import (
    BorrowLimitError,
    ChannelError,
    ChannelFullError,
    ChannelNotFoundError,
    IncompatibleChannelError,
    LayoutVersionError,
)
from .layout import (
    ATTR_LAYOUT_VERSION,
    ATTR_MAX_FRAME_BYTES,
    FRAME_MAGIC,
    LAYOUT_VERSION,
    METADATA_MAGIC,
    PIXEL_LAYOUTS,
    FrameHeader,
    FrameInfo,
    MetadataRecord,
    PixelFormat,
)
from .writer import metadata_service_name


class ReadMode(enum.Enum):
    """How :meth:`FrameReader.read` picks the next frame."""

    #: Every frame in order; a consumer further behind than ``buffer_frames`` loses the
    #: oldest (counted in ``dropped``).
    EVERY = "every"
    #: Only the newest frame; older queued frames are released unread (``skipped``).
    LATEST = "latest"


@dataclass
class ReaderStats:
    """Counters of one reader since it was created."""

    received: int = 0  # frames handed to the caller
    dropped: int = 0  # sequence gaps: frames overwritten before this consumer read them
    skipped: int = 0  # LATEST mode: older frames released unread on purpose
    producer_restarts: int = 0  # producer epoch changes seen


class Frame:
    """One frame borrowed from shared memory.

    ``array`` is a read-only numpy view of the pixels, valid until :meth:`release` (or the
    end of a ``with`` block). Copy what you need to keep; after release the memory is
    reused by the producer. A reader lends at most ``max_borrowed`` frames at once.
    """

    __slots__ = ("_array", "_sample", "info", "received_monotonic_ns")

    def __init__(self, sample: Any, info: FrameInfo, array: npt.NDArray[Any], t_ns: int):
        self._sample = sample
        self._array: npt.NDArray[Any] | None = array
        self.info = info
        self.received_monotonic_ns = t_ns

    @property
    def array(self) -> npt.NDArray[Any]:
        if self._array is None:
            raise ChannelError("frame was released; its view is no longer valid")
        return self._array

    @property
    def seq(self) -> int:
        return self.info.seq

    def latency_ns(self) -> int:
        """Time from the producer's send to this reader holding the view, ns."""
        return self.received_monotonic_ns - self.info.publish_monotonic_ns

    def release(self) -> None:
        """Give the slot back to the producer. Idempotent."""
        self._array = None
        if self._sample is not None:
            self._sample.delete()
            self._sample = None

    def __enter__(self) -> Frame:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _view(sample: Any, h: FrameHeader, fmt: PixelFormat) -> npt.NDArray[Any]:
    layout = PIXEL_LAYOUTS[fmt]
    nbytes = int(h.payload_bytes)
    raw = (ctypes.c_uint8 * nbytes).from_address(sample.payload_ptr)
    # A read-only memoryview: numpy cannot be talked into writing through it, and a
    # write into a subscriber's read-only mapping would otherwise segfault.
    ro = memoryview(raw).cast("B").toreadonly()
    flat = np.frombuffer(ro, dtype=np.uint8)
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    item = layout.dtype.itemsize
    if layout.channels == 1:
        shape = (int(h.height), int(h.width))
        strides = (int(h.stride_bytes), item)
    else:
        shape = (int(h.height), int(h.width), layout.channels)
        strides = (int(h.stride_bytes), item * layout.channels, item)
    return np.ndarray(shape, dtype=layout.dtype, buffer=flat, strides=strides)


class FrameReader:
    """Consumer of one frame channel.

    Opens the channel (waiting up to ``wait_s`` for a producer to create it), then
    :meth:`read` blocks on the channel's event (no polling) until a frame arrives.
    ``expect_max_frame_bytes``, if given, must match the producer's slot size.
    """

    def __init__(
        self,
        name: str,
        *,
        mode: ReadMode | str = ReadMode.EVERY,
        wait_s: float = 5.0,
        expect_max_frame_bytes: int | None = None,
    ) -> None:
        self.name = name
        self.mode = ReadMode(mode) if isinstance(mode, str) else mode
        self.stats = ReaderStats()
        self._last: tuple[int, int] | None = None  # (epoch, seq) of the last frame seen
        self._closed = False
        self._meta: dict[str, Any] = {}
        self._meta_revision = 0
        self._node = _iox.create_node("us-reader")
        self._events = _iox.event_service(self._node, name)
        self._listener = self._events.listener_builder().create()
        self._service = self._open(expect_max_frame_bytes, wait_s)
        try:
            self._subscriber = self._service.subscriber_builder().create()
        except iox2.SubscriberCreateError as exc:
            kind = _iox.error_kind(exc)
            if "ExceedsMaxSupportedSubscribers" in kind:
                limit = self._service.static_config.max_subscribers
                raise ChannelFullError(
                    f"channel '{name}' allows {limit} consumers and all are connected; "
                    "raise max_consumers in the producer's channel config"
                ) from None
            raise ChannelError(f"cannot subscribe to '{name}': {kind}") from None
        self.max_borrowed = int(self._service.static_config.subscriber_max_borrowed_samples)
        self._meta_subscriber: Any = None
        self._meta_service: Any = None
        self._subscribe_metadata()

    def _open(self, expect_bytes: int | None, wait_s: float) -> Any:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            attrs = _iox.service_attributes(self.name)
            if attrs is not None:
                return self._open_existing(attrs, expect_bytes)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelNotFoundError(
                    f"no producer has created channel '{self.name}' within {wait_s:.1f} s"
                )
            # The producer notifies PRODUCER_ONLINE right after creating the channel;
            # wake at least every 100 ms in case the notification predates our listener.
            self._listener.timed_wait(iox2.Duration.from_secs_f64(min(remaining, 0.1)))

    def _open_existing(self, attrs: dict[str, str], expect_bytes: int | None) -> Any:
        version = attrs.get(ATTR_LAYOUT_VERSION)
        if version != str(LAYOUT_VERSION):
            raise LayoutVersionError(
                f"channel '{self.name}' speaks layout version {version}; this reader "
                f"understands version {LAYOUT_VERSION} (docs/shared-memory-layout.md)"
            )
        size = attrs.get(ATTR_MAX_FRAME_BYTES)
        if expect_bytes is not None and size != str(expect_bytes):
            raise IncompatibleChannelError(
                f"channel '{self.name}' has max_frame_bytes={size}, this consumer expects "
                f"{expect_bytes}"
            )
        verifier = _iox.attribute_verifier({ATTR_LAYOUT_VERSION: str(LAYOUT_VERSION)})
        try:
            return _iox.frame_service_builder(self._node, self.name).open_with_attributes(verifier)
        except iox2.PublishSubscribeOpenError as exc:
            kind = _iox.error_kind(exc)
            if "DoesNotExist" in kind:
                raise ChannelNotFoundError(
                    f"channel '{self.name}' vanished while opening"
                ) from None
            raise IncompatibleChannelError(
                f"cannot open channel '{self.name}': {kind} (a producer of another layout or type?)"
            ) from None

    # -- reading ---------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """The next frame per :attr:`mode`, or None when none arrives within ``timeout_s``."""
        if self._closed:
            raise ChannelError(f"reader of '{self.name}' is closed")
        frame = self._take()
        if frame is not None:
            return frame
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._listener.timed_wait(iox2.Duration.from_secs_f64(remaining))
            frame = self._take()
            if frame is not None:
                return frame

    def try_read(self) -> Frame | None:
        """A frame if one is queued now, else None (never waits)."""
        return self._take()

    def _receive(self) -> Any:
        try:
            return self._subscriber.receive()
        except iox2.ReceiveError as exc:
            kind = _iox.error_kind(exc)
            if "ExceedsMaxBorrows" in kind:
                raise BorrowLimitError(
                    f"this consumer holds {self.max_borrowed} frames of '{self.name}' "
                    "(its max_borrowed); release frames before reading more"
                ) from None
            raise ChannelError(f"receive from '{self.name}' failed: {kind}") from None

    def _take(self) -> Frame | None:
        sample = self._receive()
        if sample is None:
            return None
        if self.mode is ReadMode.LATEST:
            # release each older frame before taking the next, so that skipping never
            # needs more than one borrowed sample (the caller may hold the others)
            while self._subscriber.has_samples():
                self._account(sample.user_header().contents)
                sample.delete()
                self.stats.skipped += 1
                sample = self._receive()
                if sample is None:  # pragma: no cover - has_samples() said otherwise
                    return None
        now = time.monotonic_ns()
        h: FrameHeader = sample.user_header().contents
        if h.magic != FRAME_MAGIC or h.layout_version != LAYOUT_VERSION:
            sample.delete()
            raise LayoutVersionError(
                f"frame on '{self.name}' has magic 0x{h.magic:08x} version {h.layout_version}; "
                f"expected 0x{FRAME_MAGIC:08x} version {LAYOUT_VERSION}"
            )
        try:
            fmt = PixelFormat(h.pixel_format)
        except ValueError:
            sample.delete()
            raise LayoutVersionError(
                f"frame on '{self.name}' has unknown pixel format code {h.pixel_format}"
            ) from None
        self._account(h)
        info = FrameInfo.from_header(h)
        self.stats.received += 1
        return Frame(sample, info, _view(sample, h, fmt), now)

    def _account(self, h: FrameHeader) -> None:
        epoch, seq = int(h.producer_epoch), int(h.seq)
        if self._last is not None:
            last_epoch, last_seq = self._last
            if epoch != last_epoch:
                self.stats.producer_restarts += 1
            elif seq > last_seq + 1:
                self.stats.dropped += seq - last_seq - 1
        self._last = (epoch, seq)

    # -- metadata --------------------------------------------------------------------
    def _subscribe_metadata(self) -> None:
        try:
            svc = (
                self._node.service_builder(_iox.service_name(metadata_service_name(self.name)))
                .publish_subscribe(MetadataRecord)
                .open()
            )
        except iox2.PublishSubscribeOpenError:
            return  # a producer of this library always creates it; others may not
        self._meta_service = svc
        self._meta_subscriber = svc.subscriber_builder().create()

    def metadata(self) -> dict[str, Any]:
        """The channel's newest metadata document ({} if the producer set none)."""
        if self._meta_subscriber is None:
            self._subscribe_metadata()
            if self._meta_subscriber is None:
                return dict(self._meta)
        while True:
            s = self._meta_subscriber.receive()
            if s is None:
                break
            rec: MetadataRecord = s.payload().contents
            if rec.magic == METADATA_MAGIC and rec.revision >= self._meta_revision:
                raw = bytes(rec.json[: rec.json_bytes])
                self._meta = json.loads(raw.decode())
                self._meta_revision = int(rec.revision)
            s.delete()
        return dict(self._meta)

    @property
    def metadata_revision(self) -> int:
        return self._meta_revision

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for attr in ("_meta_subscriber", "_subscriber", "_listener"):
            port = getattr(self, attr, None)
            if port is not None:
                port.delete()
        self._meta_subscriber = self._subscriber = self._listener = None
        self._meta_service = self._service = self._events = self._node = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
