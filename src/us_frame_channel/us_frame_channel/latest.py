"""A one-slot hand-over between a producer thread and a consumer thread (no ROS).

Used where frames arrive by callback (a ROS topic) and a worker must only ever see the
newest one: ``put`` replaces what the worker has not taken yet (counted in
:attr:`LatestSlot.superseded`), ``take`` waits for the next item. Nothing queues, so a slow
worker skips items instead of falling behind.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["LatestSlot"]


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has = False
        self.put_count = 0  # items handed in
        self.taken = 0  # items a worker took
        self.superseded = 0  # items replaced before anybody took them

    def put(self, item: T) -> None:
        with self._cond:
            if self._has:
                self.superseded += 1
            self._item, self._has = item, True
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout_s: float) -> T | None:
        """The newest item not taken yet, waiting up to ``timeout_s``; None on timeout."""
        with self._cond:
            if not self._has and not self._cond.wait_for(lambda: self._has, timeout_s):
                return None
            item, self._item, self._has = self._item, None, False
            self.taken += 1
            return item

    def clear(self) -> None:
        """Drop a pending item (not counted as superseded: e.g. on pause)."""
        with self._cond:
            self._item, self._has = None, False
