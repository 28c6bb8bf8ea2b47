"""The segmentation node in a real process next to a real acquisition node (simulator)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from us_acquisition.node_common import LATCHED  # noqa: E402
from us_acquisition.ros_testing import RosProbe, start_node, stop_node  # noqa: E402

from us_frame_channel import FrameReader, PixelFormat  # noqa: E402
from us_interfaces.msg import Frame, FrameRef, NodeStatus, SegmentationResult  # noqa: E402

CONFIGURE, ACTIVATE = Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[dict[str, Any]]:
    uid = uuid.uuid4().hex[:8]
    ns, frames, masks = f"/t{uid}", f"test/f-{uid}", f"test/m-{uid}"
    acq = start_node(
        "acquisition_node",
        ns,
        {
            "source": "sim",
            "width": 320,
            "height": 240,
            "fps": 15.0,
            "channel_name": frames,
            "status_rate_hz": 5.0,
        },
    )
    seg = start_node(
        "segmentation_node",
        ns,
        {
            "input_channel": frames,
            "mask_channel": masks,
            "model_path": str(tmp_path / "no-such-model"),
            "status_rate_hz": 5.0,
            "preview_rate_hz": 10.0,
        },
    )
    probe = RosProbe(ns)
    try:
        yield {"ns": ns, "frames": frames, "masks": masks, "probe": probe, "seg": seg, "acq": acq}
    finally:
        probe.close()
        for p in (seg, acq):
            stop_node(p)


def test_bad_model_fails_configure_then_live_masks(graph: dict[str, Any]) -> None:
    probe: RosProbe = graph["probe"]
    status = probe.subscribe(NodeStatus, "segmentation/status", LATCHED)
    results = probe.subscribe(SegmentationResult, "segmentation/result", 50)
    overlays = probe.subscribe(Image, "segmentation/overlay", qos_profile_sensor_data)
    diags = probe.subscribe(DiagnosticArray, "/diagnostics", 50)

    # a missing model: configure fails with the reason, the process stays up
    assert not probe.transition("segmentation", CONFIGURE)
    assert graph["seg"].poll() is None
    assert probe.spin_until(lambda: any("no-such-model" in s.last_error for s in status), 10)
    ns = graph["ns"]

    def diag_level(level: int) -> bool:
        return any(
            d.name == f"us: {ns}/segmentation" and d.level == level for a in diags for d in a.status
        )

    assert probe.spin_until(lambda: diag_level(DiagnosticStatus.ERROR), 10)  # failed configure

    rs = probe.set_params("segmentation", model_path="", backend="torchscript", threads=1)
    assert all(r.successful for r in rs), [r.reason for r in rs]
    assert probe.transition("segmentation", CONFIGURE)
    assert probe.transition("segmentation", ACTIVATE)
    # segmentation may start before the producer exists: it waits for the channel
    assert probe.transition("acquisition", CONFIGURE)
    assert probe.transition("acquisition", ACTIVATE)

    with (
        FrameReader(graph["frames"], mode="every", wait_s=10.0) as frames,
        FrameReader(graph["masks"], mode="every", wait_s=20.0) as masks,
    ):
        stamps: dict[int, tuple[int, int]] = {}
        linked = 0
        deadline = time.monotonic() + 30.0
        while linked < 5:
            assert time.monotonic() < deadline, f"only {linked} masks linked to frames in 30 s"
            m = masks.read(5.0)
            assert m is not None, "no mask within 5 s"
            # a frame is published before its mask: drain the frames after taking the mask
            while (f := frames.try_read()) is not None:
                with f:
                    stamps[f.info.seq] = (f.info.host_timestamp_ns, f.info.producer_epoch)
            with m:
                assert m.info.pixel_format is PixelFormat.LABEL8
                assert m.array.shape == (240, 320)
                if m.info.source_seq in stamps:
                    ts, epoch = stamps[m.info.source_seq]
                    assert (m.info.host_timestamp_ns, m.info.source_epoch) == (ts, epoch)
                    linked += 1
    assert probe.spin_until(lambda: len(results) >= 5 and len(overlays) >= 1, 20)
    r = results[-1]
    assert r.mask_channel == graph["masks"] and list(r.class_names) == ["background", "thyroid"]
    assert r.inference_ms > 0 and 0 < r.confidence <= 1 and r.latency_ms > 0
    assert overlays[-1].encoding == "bgr8" and overlays[-1].width <= 320
    assert probe.spin_until(
        lambda: any(s.state == NodeStatus.STATE_ACTIVE and s.frames_out > 0 for s in status), 10
    )
    assert probe.spin_until(lambda: diag_level(DiagnosticStatus.OK), 10)
    # a parameter that applies at configure is refused while active, a live one is taken
    (r1,) = probe.set_params("segmentation", threads=2)
    assert not r1.successful and "applies at configure" in r1.reason
    rs = probe.set_params("segmentation", temporal_weight=1.0, largest_component=True)
    assert all(r.successful for r in rs), [r.reason for r in rs]
    (r3,) = probe.set_params("segmentation", temporal_weight=0.0)
    assert not r3.successful and "range" in r3.reason


def _values(s: NodeStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in s.values}


def test_frames_from_a_topic_instead_of_shared_memory(tmp_path: Path) -> None:
    """input_transport topic (what a segmentation node on another host uses): masks link to
    the acquisition's frames; the acquisition publishes whole frames only while subscribed;
    a malformed frame message is an error, not a crash. (Across real network namespaces:
    us_bringup/test/test_cross_host.py.)"""
    uid = uuid.uuid4().hex[:8]
    ns, frames, masks = f"/t{uid}", f"test/f-{uid}", f"test/m-{uid}"
    acq = start_node(
        "acquisition_node",
        ns,
        {
            "source": "sim",
            "width": 320,
            "height": 240,
            "fps": 15.0,
            "channel_name": frames,
            "status_rate_hz": 5.0,
        },
    )
    seg = start_node(
        "segmentation_node",
        ns,
        {
            "input_transport": "topic",
            "input_topic": "acquisition/frames",
            "mask_channel": masks,
            "backend": "torchscript",
            "threads": 1,
            "status_rate_hz": 5.0,
        },
    )
    probe = RosProbe(ns)
    try:
        acq_status = probe.subscribe(NodeStatus, "acquisition/status", LATCHED)
        seg_status = probe.subscribe(NodeStatus, "segmentation/status", LATCHED)
        refs = probe.subscribe(FrameRef, "acquisition/frame_ref", qos_profile_sensor_data)
        results = probe.subscribe(SegmentationResult, "segmentation/result", 50)
        assert probe.transition("acquisition", CONFIGURE)
        assert probe.transition("acquisition", ACTIVATE)

        def published() -> tuple[int, int]:
            """(frames produced, frames sent on ~/frames) from the newest active status."""
            for s in reversed(acq_status):
                v = _values(s)
                if s.state == NodeStatus.STATE_ACTIVE and "frames_topic_published" in v:
                    return s.frames_out, int(v["frames_topic_published"])
            return 0, 0

        # nobody subscribes to ~/frames yet: frames are produced, none is sent
        assert probe.spin_until(lambda: published()[0] >= 10, 20)
        assert published()[1] == 0

        assert probe.transition("segmentation", CONFIGURE)
        assert probe.transition("segmentation", ACTIVATE)
        assert probe.spin_until(lambda: len(results) >= 8, 30), [
            s.last_error for s in seg_status[-1:]
        ]
        stamps = {r.seq: (r.header.stamp.sec, r.header.stamp.nanosec) for r in refs}
        linked = [r for r in results if r.source_seq in stamps]
        assert linked, "no mask names a frame seen on acquisition/frame_ref"
        for r in linked:
            assert (r.header.stamp.sec, r.header.stamp.nanosec) == stamps[r.source_seq]
            assert r.source_epoch == refs[-1].producer_epoch
        assert published()[1] > 0
        v = _values(seg_status[-1])
        assert v["input"] == f"topic {ns}/acquisition/frames"

        # the node's masks on ~/mask (for a reconstruction on another host)
        mask_msgs = probe.subscribe(Frame, "segmentation/mask", 10)
        assert probe.spin_until(lambda: len(mask_msgs) >= 2, 20)
        mm = mask_msgs[-1]
        assert mm.ref.pixel_format == "label8" and (mm.image.width, mm.image.height) == (320, 240)
        assert mm.ref.source_epoch == refs[-1].producer_epoch

        # a malformed frame on the input topic: counted as an error, the node goes on
        bad_pub = probe.node.create_publisher(Frame, f"{ns}/acquisition/frames", 10)
        bad = Frame()
        bad.ref.pixel_format, bad.ref.width, bad.ref.height = "mono8", 4, 4
        bad.image.encoding, bad.image.width, bad.image.height, bad.image.step = "mono8", 4, 4, 4
        n0 = len(results)

        def errors_reported() -> bool:
            if not bad_pub.get_subscription_count():
                return False
            bad_pub.publish(bad)
            return any("bytes for" in s.last_error for s in seg_status)

        assert probe.spin_until(errors_reported, 20)
        assert probe.spin_until(lambda: len(results) >= n0 + 5, 20)  # still segmenting

        # the consumer goes away: the acquisition stops sending whole frames
        assert probe.transition("segmentation", Transition.TRANSITION_DEACTIVATE)
        assert probe.transition("segmentation", Transition.TRANSITION_CLEANUP)
        probe.node.destroy_publisher(bad_pub)
        del mask_msgs[:]

        def stopped_sending() -> bool:
            n = len(acq_status)
            if n < 2:
                return False
            a, b = acq_status[-2], acq_status[-1]
            pa, pb = (int(_values(x).get("frames_topic_published", "-1")) for x in (a, b))
            return b.frames_out > a.frames_out and pa == pb and pa > 0

        assert probe.spin_until(stopped_sending, 20)
        assert acq.poll() is None and seg.poll() is None
    finally:
        probe.close()
        for p in (seg, acq):
            stop_node(p)
