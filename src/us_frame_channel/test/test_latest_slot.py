"""LatestSlot: newest-only hand-over between threads (no ROS)."""

from __future__ import annotations

import threading

from us_frame_channel.latest import LatestSlot


def test_take_returns_the_newest_and_counts_the_superseded() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take(0.01) is None
    for i in range(5):
        slot.put(i)
    assert slot.take(0.01) == 4
    assert slot.take(0.01) is None  # taken once only
    assert (slot.put_count, slot.taken, slot.superseded) == (5, 1, 4)


def test_take_waits_for_a_put_from_another_thread() -> None:
    slot: LatestSlot[str] = LatestSlot()
    t = threading.Timer(0.05, slot.put, args=("frame",))
    t.start()
    assert slot.take(5.0) == "frame"
    t.join()


def test_clear_drops_the_pending_item_without_counting_it() -> None:
    slot: LatestSlot[int] = LatestSlot()
    slot.put(1)
    slot.clear()
    assert slot.take(0.01) is None
    assert slot.superseded == 0
