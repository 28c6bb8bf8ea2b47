"""A one-item hand-over between a producer thread and consumer threads (no ROS).

:class:`LatestMailbox` holds only the newest item: ``put`` never blocks and replaces what
the consumer has not taken yet (counted: ``dropped``, or ``skipped`` while the consumer
waits for its own rate limit), ``get`` waits for the next item. Nothing queues, so a slow
consumer skips items instead of falling behind. Used by the gRPC bridge (one mailbox per
client), the acquisition's ``~/frames`` publisher and the segmentation's topic input.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["LatestMailbox", "MailboxClosed"]


class MailboxClosed(Exception):
    """The mailbox was closed (client gone or bridge stopping)."""


class LatestMailbox(Generic[T]):
    """A one-item slot holding the newest value; counts what it overwrites.

    ``put`` never blocks. ``get`` waits for a value, but not before ``not_before``
    (CLOCK_MONOTONIC s) - the client's rate limit.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: T | None = None
        self._closed = False
        self._pacing_until = 0.0
        self._waiting = False
        self.dropped = 0
        self.skipped = 0
        self.delivered = 0
        self.offered = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._closed:
                return
            self.offered += 1
            if self._item is not None:
                if self._waiting and time.monotonic() < self._pacing_until:
                    self.skipped += 1
                else:
                    self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout_s: float, not_before: float = 0.0) -> T | None:
        """The newest item, waiting at most ``timeout_s``; None on timeout.

        Raises :class:`MailboxClosed` once closed.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._waiting = True
            self._pacing_until = not_before
            try:
                while True:
                    if self._closed:
                        raise MailboxClosed
                    now = time.monotonic()
                    if self._item is not None and now >= not_before:
                        item, self._item = self._item, None
                        self.delivered += 1
                        return item
                    if now >= deadline:
                        return None
                    wake = deadline if self._item is None else min(deadline, not_before)
                    self._cond.wait(max(0.0, wake - now))
            finally:
                self._waiting = False

    def clear(self) -> None:
        """Drop a pending item without counting it (e.g. a consumer that pauses)."""
        with self._cond:
            self._item = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
