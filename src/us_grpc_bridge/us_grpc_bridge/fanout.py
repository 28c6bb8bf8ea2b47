"""Fan-out of channel frames to remote clients: one reader per channel, one mailbox per
client (no rclpy, no gRPC).

Backpressure: every client owns a :class:`LatestMailbox` that holds only the newest item.
The channel reader thread only ever replaces mailbox contents (O(1), never blocks), so a
slow or stalled client loses items (counted) and never slows the reader, the producer or
the other clients. Items replaced while the client waits for its rate limit are counted as
``skipped`` (on purpose); items replaced while the client is busy sending are ``dropped``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from us_frame_channel.latest import LatestMailbox, MailboxClosed

from us_frame_channel import FrameInfo, PixelFormat

T = TypeVar("T")


class _Memo:
    """Values computed once per key (thread-safe; concurrent callers of one key wait for
    the first one instead of computing it again: N clients, one JPEG encode)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._values: dict[Any, Any] = {}

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:  # held while making: encodes of one item are serialized
            if key not in self._values:
                self._values[key] = make()
            return self._values[key]


@dataclass
class ImageItem:
    """A frame or mask copied out of shared memory.

    ``raw`` holds the packed pixel bytes (one copy out of the channel); ``pixels`` is a
    read-only ``(H, W[, C])`` numpy view of them. Encodings made for one client are
    memoized per item (:meth:`cached`), so clients asking the same thing share one encode.
    """

    info: FrameInfo
    raw: bytes
    pixels: npt.NDArray[Any]
    received_ns: int  # CLOCK_REALTIME when the bridge copied it, ns
    memo: _Memo = field(default_factory=_Memo)

    @property
    def pixel_format(self) -> PixelFormat:
        return self.info.pixel_format

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` once per key for this item."""
        return self.memo.get(key, make)


@dataclass
class CombinedItem:
    """A frame with its mask (None when segmentation has none for it)."""

    frame: ImageItem
    mask: ImageItem | None
    memo: _Memo = field(default_factory=_Memo)

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        return self.memo.get(key, make)


def copy_frame(info: FrameInfo, view: npt.NDArray[Any]) -> ImageItem:
    """Copy a borrowed frame view into an :class:`ImageItem` (one memcpy, rows packed)."""
    raw = view.tobytes()
    pixels = np.frombuffer(raw, dtype=view.dtype).reshape(view.shape)  # read-only view
    return ImageItem(info, raw, pixels, time.time_ns())


class Hub(Generic[T]):
    """Publishes items to every subscribed mailbox. ``publish`` is O(clients), never blocks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._boxes: list[LatestMailbox[T]] = []
        self.published = 0
        self.last: T | None = None

    def subscribe(self) -> LatestMailbox[T]:
        box: LatestMailbox[T] = LatestMailbox()
        with self._lock:
            self._boxes.append(box)
        return box

    def unsubscribe(self, box: LatestMailbox[T]) -> None:
        box.close()
        with self._lock:
            if box in self._boxes:
                self._boxes.remove(box)

    def publish(self, item: T) -> None:
        with self._lock:
            boxes = list(self._boxes)
            self.published += 1
            self.last = item
        for b in boxes:
            b.put(item)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._boxes)

    def close_all(self) -> None:
        with self._lock:
            boxes, self._boxes = self._boxes, []
        for b in boxes:
            b.close()


class FramePairer:
    """Pairs masks with the frames they were computed from (``mask.source_seq == frame.seq``
    and same epoch) and publishes :class:`CombinedItem` s.

    Frames wait in a ring of the last ``keep`` frames for their mask. A frame is published
    alone when no mask arrived for ``mask_timeout_s`` (segmentation not running).
    """

    def __init__(self, hub: Hub[CombinedItem], keep: int = 16, mask_timeout_s: float = 1.0):
        self.hub = hub
        self._frames: collections.OrderedDict[tuple[int, int], ImageItem] = (
            collections.OrderedDict()
        )
        self._keep = keep
        self._mask_timeout_s = mask_timeout_s
        self._last_mask = 0.0
        self._last_paired_seq = -1
        self._lock = threading.Lock()

    def masks_active(self) -> bool:
        return time.monotonic() - self._last_mask < self._mask_timeout_s

    def on_frame(self, item: ImageItem) -> None:
        with self._lock:
            self._frames[(item.info.producer_epoch, item.info.seq)] = item
            while len(self._frames) > self._keep:
                self._frames.popitem(last=False)
            alone = not self.masks_active()
        if alone:
            self.hub.publish(CombinedItem(item, None))

    def on_mask(self, mask: ImageItem) -> None:
        key = (mask.info.source_epoch, mask.info.source_seq)
        with self._lock:
            self._last_mask = time.monotonic()
            frame = self._frames.get(key)
            if frame is None:
                return  # the frame is older than the ring: nothing to pair with
            # frames older than the paired one will not get masks any more
            for k in list(self._frames):
                if k == key:
                    break
                del self._frames[k]
        self.hub.publish(CombinedItem(frame, mask))


class ChannelPump:
    """A thread reading one frame channel in latest-frame mode into ``on_item``.

    Waits for the channel's producer (retrying every ``retry_s``), copies each frame out of
    shared memory (so clients never hold channel slots) and hands it over. Reader losses
    are in :attr:`source_dropped`.
    """

    def __init__(
        self,
        channel: str,
        on_item: Callable[[ImageItem], None],
        *,
        retry_s: float = 0.5,
        reader_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.channel = channel
        self._on_item = on_item
        self._retry_s = retry_s
        self._factory = reader_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.items = 0
        self.source_dropped = 0
        self.connected = False
        self.last_error = ""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"pump:{self.channel}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _open(self) -> Any:
        from us_frame_channel import ChannelError, FrameReader

        while not self._stop.is_set():
            try:
                if self._factory is not None:
                    return self._factory(self.channel)
                return FrameReader(self.channel, mode="latest", wait_s=self._retry_s)
            except ChannelError as exc:
                self.last_error = str(exc)
                self._stop.wait(0.05)
        return None

    def _run(self) -> None:
        from us_frame_channel import ChannelError

        reader = self._open()
        if reader is None:
            return
        self.connected = True
        try:
            while not self._stop.is_set():
                try:
                    frame = reader.read(0.2)
                except ChannelError as exc:
                    self.last_error = str(exc)
                    continue
                if frame is None:
                    continue
                with frame:
                    item = copy_frame(frame.info, frame.array)
                self.source_dropped = int(reader.stats.dropped)
                self.items += 1
                self._on_item(item)
        finally:
            self.connected = False
            reader.close()


class UpdateQueue(Generic[T]):
    """A small bounded queue per client for sparse updates (drops the oldest when full)."""

    def __init__(self, maxlen: int = 64) -> None:
        self._q: collections.deque[T] = collections.deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._q) == self._q.maxlen:
                self.dropped += 1
            self._q.append(item)
            self._cond.notify()

    def get(self, timeout_s: float) -> T | None:
        with self._cond:
            if not self._q and not self._closed:
                self._cond.wait(timeout_s)
            if self._closed:
                raise MailboxClosed
            return self._q.popleft() if self._q else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class UpdateHub(Generic[T]):
    """Broadcasts sparse updates to every subscribed :class:`UpdateQueue`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: list[UpdateQueue[T]] = []

    def subscribe(self) -> UpdateQueue[T]:
        q: UpdateQueue[T] = UpdateQueue()
        with self._lock:
            self._queues.append(q)
        return q

    def unsubscribe(self, q: UpdateQueue[T]) -> None:
        q.close()
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def publish(self, item: T) -> None:
        with self._lock:
            queues = list(self._queues)
        for q in queues:
            q.put(item)

    def close_all(self) -> None:
        with self._lock:
            queues, self._queues = self._queues, []
        for q in queues:
            q.close()


def iterate(box: LatestMailbox[T], period_s: float, alive: Callable[[], bool]) -> Iterator[T]:
    """Items of ``box`` at most every ``period_s`` while ``alive()``; ends when closed."""
    next_at = 0.0
    while alive():
        try:
            item = box.get(0.25, not_before=next_at)
        except MailboxClosed:
            return
        if item is None:
            continue
        if period_s > 0:  # a token bucket of one: no drift, no bursts after a stall
            next_at = max(next_at, time.monotonic() - period_s) + period_s
        yield item
