"""The producer side: one writer per channel, never blocked by its consumers."""

from __future__ import annotations

import ctypes
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import iceoryx2 as iox2
import numpy as np
import numpy.typing as npt

from . import _iox
from .config import ChannelConfig
from .errors import (
    ChannelError,
    ChannelFullError,
    FrameTooLargeError,
    IncompatibleChannelError,
    LayoutVersionError,
)
from .layout import (
    ATTR_LAYOUT_VERSION,
    ATTR_MAX_FRAME_BYTES,
    EVENT_FRAME,
    EVENT_METADATA,
    EVENT_PRODUCER_ONLINE,
    FRAME_MAGIC,
    HEADER_BYTES,
    LAYOUT_VERSION,
    METADATA_CAPACITY,
    METADATA_MAGIC,
    PIXEL_LAYOUTS,
    FrameHeader,
    MetadataRecord,
    PixelFormat,
    array_shape,
    infer_geometry,
)

#: The writer removes resources of crashed consumers at most this often, s.
_CLEANUP_PERIOD_S = 1.0


def metadata_service_name(name: str) -> str:
    return f"{name}/meta"


class FrameSlot:
    """A loaned slot: fill ``array`` in place, then :meth:`FrameWriter.send` it."""

    __slots__ = ("_sample", "array", "height", "pixel_format", "width")

    def __init__(self, sample: Any, array: npt.NDArray[Any], fmt: PixelFormat, w: int, h: int):
        self._sample = sample
        self.array = array
        self.pixel_format = fmt
        self.width = w
        self.height = h


class FrameWriter:
    """Producer of one frame channel (an iceoryx2 publish-subscribe + event service).

    The writer creates the channel, or joins it if consumers already hold it open from a
    previous producer run (same layout version and slot size, else
    :class:`IncompatibleChannelError`). Publishing never waits for consumers: a consumer
    that lags loses its oldest queued frames, which it sees as sequence gaps.
    """

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.epoch = secrets.randbits(63) | 1
        self._seq = 0
        self._meta_revision = 0
        self._closed = False
        self._last_cleanup = 0.0
        self._node = _iox.create_node("us-writer")
        _iox.cleanup_dead_nodes(self._node)
        self._events = _iox.event_service(self._node, config.name)
        self._notifier = self._events.notifier_builder().create()
        # metadata before frames: a reader that finds the frame service finds this too
        self._meta_service = (
            self._node.service_builder(_iox.service_name(metadata_service_name(config.name)))
            .publish_subscribe(MetadataRecord)
            .history_size(1)
            .subscriber_max_buffer_size(1)
            .max_subscribers(_iox.EVENT_MAX_LISTENERS)
            .max_nodes(_iox.EVENT_MAX_NODES)
            .open_or_create()
        )
        self._meta_publisher = self._meta_service.publisher_builder().create()
        self._service = self._open_or_create()
        try:
            self._publisher = (
                self._service.publisher_builder()
                .initial_max_slice_len(config.max_frame_bytes)
                .allocation_strategy(iox2.AllocationStrategy.Static)
                .max_loaned_samples(2)
                .create()
            )
        except iox2.PublisherCreateError as exc:
            kind = _iox.error_kind(exc)
            if "ExceedsMaxSupportedPublishers" in kind:
                raise ChannelFullError(
                    f"channel '{config.name}' already has a producer; one writer per channel"
                ) from None
            raise ChannelError(f"cannot create the producer of '{config.name}': {kind}") from None
        self._notifier.notify_with_custom_event_id(iox2.EventId.new(EVENT_PRODUCER_ONLINE))

    # -- set-up --------------------------------------------------------------------
    def _builder(self) -> Any:
        c = self.config
        return (
            _iox.frame_service_builder(self._node, c.name)
            .max_publishers(1)
            .max_subscribers(c.max_consumers)
            .max_nodes(c.max_consumers + 2)
            .subscriber_max_buffer_size(c.buffer_frames)
            .subscriber_max_borrowed_samples(c.max_borrowed)
            .history_size(0)
            .enable_safe_overflow(True)
        )

    def _open_or_create(self) -> Any:
        c = self.config
        existing = _iox.service_attributes(c.name)
        if existing is not None:
            version = existing.get(ATTR_LAYOUT_VERSION)
            if version != str(LAYOUT_VERSION):
                raise LayoutVersionError(
                    f"channel '{c.name}' exists with layout version {version}, this producer "
                    f"writes version {LAYOUT_VERSION}; stop its consumers or use another name"
                )
            size = existing.get(ATTR_MAX_FRAME_BYTES)
            if size != str(c.max_frame_bytes):
                raise IncompatibleChannelError(
                    f"channel '{c.name}' exists with max_frame_bytes={size} (held open by its "
                    f"consumers), this producer is configured for {c.max_frame_bytes}; restart "
                    "the consumers or use the same size"
                )
        attrs = _iox.attribute_specifier(LAYOUT_VERSION, c.max_frame_bytes, c.kind)
        try:
            return self._builder().create_with_attributes(attrs)
        except iox2.PublishSubscribeCreateError as exc:
            if "AlreadyExists" not in _iox.error_kind(exc):
                raise ChannelError(
                    f"cannot create channel '{c.name}': {_iox.error_kind(exc)}"
                ) from None
        verifier = _iox.attribute_verifier(
            {ATTR_LAYOUT_VERSION: str(LAYOUT_VERSION), ATTR_MAX_FRAME_BYTES: str(c.max_frame_bytes)}
        )
        try:
            return self._builder().open_with_attributes(verifier)
        except iox2.PublishSubscribeOpenError as exc:
            raise IncompatibleChannelError(
                f"channel '{c.name}' exists but does not fit this producer "
                f"({_iox.error_kind(exc)}): it was created with other limits "
                "(max_consumers, buffer_frames, max_borrowed); restart its consumers"
            ) from None

    # -- publishing ------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """Sequence number the next frame gets."""
        return self._seq

    def loan(self, width: int, height: int, pixel_format: PixelFormat | str) -> FrameSlot:
        """Loan a slot of shared memory shaped for the frame; fill ``slot.array`` in place."""
        self._check_open()
        fmt = PixelFormat.parse(pixel_format)
        layout = PIXEL_LAYOUTS[fmt]
        nbytes = width * height * layout.bytes_per_pixel
        if nbytes > self.config.max_frame_bytes:
            raise FrameTooLargeError(
                f"a {width}x{height} {fmt.label} frame needs {nbytes} bytes; channel "
                f"'{self.config.name}' slots hold {self.config.max_frame_bytes} "
                "(raise max_frame_bytes in the channel config)"
            )
        sample = self._publisher.loan_slice_uninit(nbytes)
        buf = (ctypes.c_uint8 * nbytes).from_address(sample.payload_ptr)
        arr = np.frombuffer(memoryview(buf).cast("B"), dtype=layout.dtype).reshape(
            array_shape(fmt, width, height)
        )
        return FrameSlot(sample, arr, fmt, width, height)

    def send(
        self,
        slot: FrameSlot,
        *,
        device_timestamp_ns: int = 0,
        host_timestamp_ns: int | None = None,
        spacing_mm: tuple[float, float] = (0.0, 0.0),
        roi: tuple[int, int, int, int] | None = None,
        source_seq: int | None = None,
        source_epoch: int = 0,
    ) -> int:
        """Publish a filled slot; returns its sequence number. Never blocks."""
        self._check_open()
        h: FrameHeader = slot._sample.user_header().contents
        seq = self._seq
        bpp = PIXEL_LAYOUTS[slot.pixel_format].bytes_per_pixel
        h.magic = FRAME_MAGIC
        h.layout_version = LAYOUT_VERSION
        h.header_bytes = HEADER_BYTES
        h.seq = seq
        h.producer_epoch = self.epoch
        h.source_seq = seq if source_seq is None else source_seq
        h.source_epoch = self.epoch if source_seq is None else source_epoch
        h.device_timestamp_ns = device_timestamp_ns
        h.host_timestamp_ns = time.time_ns() if host_timestamp_ns is None else host_timestamp_ns
        h.width = slot.width
        h.height = slot.height
        h.stride_bytes = slot.width * bpp
        h.payload_bytes = slot.width * bpp * slot.height
        h.pixel_format = int(slot.pixel_format)
        h.flags = 0
        h.spacing_x_mm = float(spacing_mm[0])
        h.spacing_y_mm = float(spacing_mm[1])
        x, y, w, hh = roi if roi is not None else (0, 0, slot.width, slot.height)
        h.roi_x, h.roi_y, h.roi_width, h.roi_height = x, y, w, hh
        h.meta_revision = self._meta_revision
        h.reserved0 = 0
        h.publish_monotonic_ns = time.monotonic_ns()
        slot._sample.assume_init().send()
        slot._sample = None
        self._notifier.notify_with_custom_event_id(iox2.EventId.new(EVENT_FRAME))
        # delivers the latest metadata to consumers that connected since (~0.1 us)
        self._meta_publisher.update_connections()
        self._seq = seq + 1
        now = time.monotonic()
        if now - self._last_cleanup > _CLEANUP_PERIOD_S:
            self._last_cleanup = now
            self._service.try_cleanup_dead_nodes()
        return seq

    def publish(self, array: npt.NDArray[Any], pixel_format: PixelFormat | str, **kw: Any) -> int:
        """Copy ``array`` into shared memory once and publish it; returns the seq.

        ``array`` is ``(H, W)`` or ``(H, W, C)`` of the format's dtype; it may be a
        strided view (e.g. an ROI crop). Keyword arguments as in :meth:`send`.
        """
        fmt = PixelFormat.parse(pixel_format)
        width, height = infer_geometry(array, fmt)
        slot = self.loan(width, height, fmt)
        np.copyto(slot.array, array, casting="no")
        return self.send(slot, **kw)

    @contextmanager
    def frame(
        self, width: int, height: int, pixel_format: PixelFormat | str, **kw: Any
    ) -> Iterator[npt.NDArray[Any]]:
        """``with writer.frame(w, h, fmt) as arr: arr[...] = ...`` publishes on exit."""
        slot = self.loan(width, height, pixel_format)
        yield slot.array
        self.send(slot, **kw)

    def set_metadata(self, metadata: dict[str, Any]) -> int:
        """Publish the channel's metadata (JSON object); returns its revision.

        Conventional keys: ``device``, ``probe_model``, ``imaging_depth_mm``,
        ``frame_rate_hz``, ``image_frame_id``; anything else is free.
        """
        self._check_open()
        doc = json.dumps(metadata, sort_keys=True, allow_nan=False).encode()
        if len(doc) > METADATA_CAPACITY:
            raise ValueError(
                f"channel metadata is {len(doc)} bytes as JSON; the limit is {METADATA_CAPACITY}"
            )
        self._meta_revision += 1
        rec = MetadataRecord()
        rec.magic = METADATA_MAGIC
        rec.layout_version = LAYOUT_VERSION
        rec.revision = self._meta_revision
        rec.json_bytes = len(doc)
        rec.json = doc
        self._meta_publisher.send_copy(rec)
        self._notifier.notify_with_custom_event_id(iox2.EventId.new(EVENT_METADATA))
        return self._meta_revision

    def consumer_count(self) -> int:
        """Consumers connected now (crashed ones are removed within about 1 s)."""
        return int(self._service.dynamic_config.number_of_subscribers)

    # -- lifetime ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ChannelError(f"writer of '{self.config.name}' is closed")

    def close(self) -> None:
        """Release the channel; consumers keep waiting for the next producer."""
        if self._closed:
            return
        self._closed = True
        for attr in ("_meta_publisher", "_notifier", "_publisher"):
            port = getattr(self, attr, None)
            if port is not None:
                port.delete()
        for attr in (
            "_meta_publisher",
            "_notifier",
            "_publisher",
            "_meta_service",
            "_events",
            "_service",
            "_node",
        ):
            setattr(self, attr, None)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
