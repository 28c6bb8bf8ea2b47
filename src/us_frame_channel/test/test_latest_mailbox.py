"""LatestMailbox: newest-only hand-over between threads (no ROS); the gRPC bridge's
per-client pacing is tested in us_grpc_bridge/test/test_grpc_units.py."""

from __future__ import annotations

import threading

from us_frame_channel.latest import LatestMailbox


def test_take_returns_the_newest_and_counts_the_superseded() -> None:
    slot: LatestMailbox[int] = LatestMailbox()
    assert slot.get(0.01) is None
    for i in range(5):
        slot.put(i)
    assert slot.get(0.01) == 4
    assert slot.get(0.01) is None  # taken once only
    assert (slot.offered, slot.delivered, slot.dropped + slot.skipped) == (5, 1, 4)


def test_take_waits_for_a_put_from_another_thread() -> None:
    slot: LatestMailbox[str] = LatestMailbox()
    t = threading.Timer(0.05, slot.put, args=("frame",))
    t.start()
    assert slot.get(5.0) == "frame"
    t.join()


def test_clear_drops_the_pending_item_without_counting_it() -> None:
    slot: LatestMailbox[int] = LatestMailbox()
    slot.put(1)
    slot.clear()
    assert slot.get(0.01) is None
    assert slot.dropped + slot.skipped == 0
