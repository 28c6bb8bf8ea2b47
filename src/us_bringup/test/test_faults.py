"""Faults the running graph must survive (issue "The whole system", reliability).

Each case starts the nodes it needs in real processes (``us-run`` or single nodes), with a
namespace and channel names of its own, injects one fault and asserts with deadlines:

(a) a consumer (segmentation) is SIGKILLed under ``us-run --respawn``: the producer keeps
    its rate, the runner restarts the node to active, masks resume;
(b) the producer (acquisition) is SIGKILLed and respawned: segmentation and
    reconstruction pick up the new producer by themselves (new ``producer_epoch``);
(c) the tracker stops publishing: reconstruction skips and counts the frames
    (``pose_stale``), and compounds again when poses return;
(d) a corrupt recording and a bad parameter: configure fails with the reason in
    ``~/status.last_error``, the process stays up, the other nodes keep running;
(e) a gRPC client that stalls or vanishes mid-stream does not slow the producer.

Measured recovery times are printed (``pytest -s``) and written up in docs/reliability.md.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_system import ChannelWatcher, Graph, channels, free_port, graph_args

FPS = 15.0


def _rate(rx: list[tuple[int, int, int]], t0: float, t1: float) -> float:
    """Frames / s the watcher received between monotonic times ``t0`` and ``t1`` (s)."""
    a, b = int(t0 * 1e9), int(t1 * 1e9)
    n = sum(1 for t, _, _ in list(rx) if a <= t < b)
    return n / max(t1 - t0, 1e-9)


def _probe(ns: str) -> tuple[Any, dict[str, list[Any]], list[Any]]:
    from us_acquisition.node_common import LATCHED
    from us_acquisition.ros_testing import RosProbe

    from us_interfaces.msg import NodeStatus, ReconstructionInfo

    probe = RosProbe(ns)
    names = ("acquisition", "segmentation", "reconstruction", "grpc_bridge")
    status = {n: probe.subscribe(NodeStatus, f"{n}/status", LATCHED) for n in names}
    info = probe.subscribe(ReconstructionInfo, "reconstruction/info", LATCHED)
    return probe, status, info


def _active(status: dict[str, list[Any]], nodes: tuple[str, ...]) -> bool:
    return all(status[n] and status[n][-1].state == 3 for n in nodes)


# ------------------------------------------------------------------------------------------
# (a) a consumer dies


@pytest.mark.parametrize("standby", [True, False], ids=["warm-spare", "fresh-process"])
def test_killed_consumer_is_respawned_and_masks_resume(standby: bool) -> None:
    uid = uuid.uuid4().hex[:8]
    nodes = ("acquisition", "segmentation")
    frames_ch, masks_ch = channels(uid)
    extra = ["--respawn"] if standby else ["--respawn", "--no-standby"]
    graph = Graph([*graph_args(uid, free_port(), nodes=nodes), *extra])
    probe, status, _ = _probe(f"/sys{uid}")
    try:
        with ChannelWatcher(frames_ch, masks_ch) as w:
            assert probe.spin_until(
                lambda: _active(status, nodes) and len(w.seen.masks) > 10, 40
            ), graph.text
            old_epoch = w.seen.masks[-1][1]
            if standby:  # us-run --respawn warms a spare process per node, one at a time
                assert probe.spin_until(
                    lambda: graph.when("segmentation: warm spare ready") is not None, 60
                ), graph.text
            probe.spin_until(lambda: False, 1.0)
            t_before = time.monotonic()
            fps_before = _rate(w.seen.frame_rx, t_before - 2.0, t_before)
            acq_before = status["acquisition"][-1]
            pid = graph.pids("segmentation")[-1]

            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            assert probe.spin_until(
                lambda: graph.when("segmentation: activate ok", after=t_kill) is not None, 30
            ), graph.text
            t_active = graph.when("segmentation: activate ok", after=t_kill)
            assert t_active is not None and len(graph.pids("segmentation")) == 2

            def new_masks() -> list[Any]:
                return [m for m in list(w.seen.masks) if m[1] != old_epoch]

            assert probe.spin_until(lambda: len(new_masks()) >= 5, 15), graph.text
            t_mask = new_masks()[0][0] / 1e9
            t_end = time.monotonic()
            # the producer kept its rate through the whole episode, lost nothing at the source
            fps_during = _rate(w.seen.frame_rx, t_kill, t_end)
            probe.spin_until(lambda: False, 1.5)  # a fresh 1 Hz status
            acq_after = status["acquisition"][-1]
    finally:
        probe.close()
        rc = graph.stop()
    restart_s, resume_s = t_active - t_kill, t_mask - t_active
    print(
        f"\n(a, {'warm spare' if standby else 'fresh process'}) segmentation SIGKILL: "
        f"respawned to active {restart_s:.2f} s after the kill, "
        f"first new mask {resume_s:.2f} s after activation ({t_mask - t_kill:.2f} s after "
        f"the kill); producer {fps_before:.1f} fps before, {fps_during:.1f} fps during; "
        f"acquisition frames_dropped {acq_before.frames_dropped} -> {acq_after.frames_dropped}; "
        f"requests sent again by us-run: {graph.text.count('sent again')}"
    )
    assert rc == 0, graph.text
    assert "segmentation died (exit -9); respawn #1" in graph.text
    # the warm spare (or, without spares, a fresh process) took over and activated itself
    spare = re.search(r"started segmentation \(pid \d+\) from its warm spare", graph.text)
    assert bool(spare) == standby, graph.text
    assert ("warm spare ready" in graph.text) == standby
    assert "segmentation: activate ok (autostart)" in graph.text
    assert fps_during >= 0.8 * FPS, (fps_before, fps_during)
    assert acq_after.frames_dropped == acq_before.frames_dropped
    assert acq_after.frames_out > acq_before.frames_out and acq_after.fps >= 0.8 * FPS
    # the target is 2 s from the kill; measured in bench_system (docs/reliability.md)
    assert t_mask - t_kill <= 10.0 and resume_s <= 5.0, (restart_s, resume_s)


# ------------------------------------------------------------------------------------------
# (b) the producer dies


def test_consumers_follow_a_restarted_producer() -> None:
    uid = uuid.uuid4().hex[:8]
    nodes = ("acquisition", "segmentation", "reconstruction")
    frames_ch, masks_ch = channels(uid)
    graph = Graph([*graph_args(uid, free_port(), nodes=nodes), "--respawn"])
    probe, status, info = _probe(f"/sys{uid}")
    try:
        with ChannelWatcher(frames_ch, masks_ch) as w:
            assert probe.spin_until(
                lambda: (
                    _active(status, nodes)
                    and len(w.seen.masks) > 5
                    and bool(info)
                    and info[-1].frames_used > 0
                ),
                45,
            ), graph.text
            old_epoch = w.seen.frame_rx[-1][1]
            pid = graph.pids("acquisition")[-1]
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            assert probe.spin_until(
                lambda: graph.when("acquisition: activate ok", after=t_kill) is not None, 30
            ), graph.text
            t_active = graph.when("acquisition: activate ok", after=t_kill)
            assert t_active is not None
            used_at_restart = info[-1].frames_used

            def new_masks() -> list[Any]:
                return [m for m in list(w.seen.masks) if m[3] != old_epoch]

            # segmentation re-opens the channel by itself: masks of the new producer's frames
            assert probe.spin_until(lambda: len(new_masks()) >= 5, 20), graph.text
            t_mask = new_masks()[0][0] / 1e9
            new_epoch = new_masks()[0][3]
            assert any(e == new_epoch for _, e, _ in list(w.seen.frame_rx))
            # reconstruction too: it compounds frames again
            assert probe.spin_until(lambda: info[-1].frames_used >= used_at_restart + 10, 20), (
                used_at_restart,
                info[-1],
            )
            t_vol = time.monotonic()
            seg = status["segmentation"][-1]
            reopens = {kv.key: kv.value for kv in seg.values}.get("input_reopens")
    finally:
        probe.close()
        rc = graph.stop()
    print(
        f"\n(b) acquisition SIGKILL: respawned to active {t_active - t_kill:.2f} s after the "
        f"kill; first mask of the new producer {t_mask - t_active:.2f} s after its activation; "
        f"reconstruction +10 frames within {t_vol - t_active:.2f} s; segmentation "
        f"input_reopens={reopens}; requests sent again by us-run: "
        f"{graph.text.count('sent again')}"
    )
    assert rc == 0, graph.text
    assert t_mask - t_active <= 10.0


# ------------------------------------------------------------------------------------------
# (c) the tracker stops


def _pose_msg(stamp_ns: int, world: str, probe_frame: str, z_mm: float) -> Any:
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    ts = TransformStamped()
    ts.header.stamp.sec, ts.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    ts.header.frame_id, ts.child_frame_id = world, probe_frame
    ts.transform.translation.x = 0.0
    ts.transform.translation.y = 0.0
    ts.transform.translation.z = z_mm / 1000.0
    ts.transform.rotation.w = 1.0
    return TFMessage(transforms=[ts])


@pytest.mark.parametrize("tf_batch", [1, 5], ids=["tf-per-sample", "tf-per-frame"])
def test_tracker_dropout_skips_frames_and_recovers(tf_batch: int) -> None:
    from lifecycle_msgs.msg import Transition
    from tf2_msgs.msg import TFMessage
    from us_acquisition.node_common import LATCHED
    from us_acquisition.ros_testing import RosProbe, start_node, stop_node

    from us_frame_channel import ChannelConfig, FrameWriter
    from us_interfaces.msg import ReconstructionInfo

    uid = uuid.uuid4().hex[:8]
    ns, frames_ch = f"/trk{uid}", f"test/trk-{uid}/frames"
    world, probe_frame = f"tracker_{uid}", f"probe_{uid}"
    w, h = 160, 120
    writer = FrameWriter(ChannelConfig.for_frames(frames_ch, w, h, "mono8"))
    proc = start_node(
        "reconstruction_node",
        ns,
        {
            "frames_channel": frames_ch,
            "mask_channel": "",
            "world_frame": world,
            "probe_frame": probe_frame,
            "surface_period_s": 1.0,
        },
    )
    probe = RosProbe(ns)
    info = probe.subscribe(ReconstructionInfo, "reconstruction/info", LATCHED)
    tf_pub = probe.node.create_publisher(TFMessage, "/tf", 100)
    tracking = threading.Event()
    tracking.set()
    stop = threading.Event()
    rng = np.random.default_rng(1)
    img = rng.integers(20, 230, size=(h, w), dtype=np.uint8)

    def stream() -> None:
        # a tracker sampled at 100 Hz whose samples go out one message each (a robot's
        # state publisher) or with each frame (20 fps: the acquisition node publishes its
        # source's poses that way); slow sweep along z
        t0 = time.monotonic()
        n = 0
        batch: list[Any] = []
        while not stop.is_set():
            now_ns = time.time_ns()
            z = 5.0 * math.sin(0.5 * (time.monotonic() - t0))
            if tracking.is_set():
                batch += _pose_msg(now_ns, world, probe_frame, z).transforms
                pose_ns.append(now_ns)
            if batch and n % tf_batch == 0:
                tf_pub.publish(TFMessage(transforms=batch))
                batch = []
            if n % 5 == 0:
                writer.publish(img, "mono8", spacing_mm=(0.2, 0.2))
            n += 1
            stop.wait(0.01)

    pose_ns: list[int] = []
    streamer = threading.Thread(target=stream, daemon=True)
    try:
        assert probe.transition("reconstruction", Transition.TRANSITION_CONFIGURE, 60)
        assert probe.transition("reconstruction", Transition.TRANSITION_ACTIVATE, 30)
        streamer.start()

        def used() -> int:
            return int(info[-1].frames_used) if info else 0

        def skipped(reason: str) -> int:
            if not info:
                return 0
            return int({kv.key: kv.value for kv in info[-1].skip_reasons}.get(reason, "0"))

        def diag() -> str:
            i = info[-1] if info else None
            got = (i.frames_used, i.frames_skipped, list(i.skip_reasons)) if i else "no info"
            return f"{got}\n{stop_node(proc)}"

        assert probe.spin_until(lambda: used() >= 20, 20), diag()
        # the tracker stops: frames are skipped and counted, none compounded
        tracking.clear()
        t_stop = time.monotonic()
        probe.spin_until(lambda: False, 1.0)  # frames in flight at the stop may still go in
        used_stopped = used()
        assert probe.spin_until(
            lambda: skipped("pose_stale") + skipped("pose_missing") >= 20, 10
        ), info[-1]
        assert used() <= used_stopped + 2, (used_stopped, info[-1])
        stale = skipped("pose_stale") + skipped("pose_missing")
        # the tracker returns: compounding resumes
        tracking.set()
        t_back = time.monotonic()
        assert probe.spin_until(lambda: used() >= used_stopped + 20, 10), info[-1]
        t_resumed = time.monotonic()
        probe.spin_until(lambda: False, 0.5)
        assert min(info[-1].dims) > 0
        reasons = {kv.key: kv.value for kv in info[-1].skip_reasons}
    finally:
        stop.set()
        if streamer.is_alive():
            streamer.join(timeout=5)
        probe.close()
        out = stop_node(proc)
        writer.close()
    gaps = np.diff(np.asarray(pose_ns)) / 1e6
    gaps = gaps[gaps < 500]  # not the deliberate stop
    print(
        f"\n(c) test's pose stream: {len(pose_ns)} poses, gap p50 {np.median(gaps):.1f} ms, "
        f"max {gaps.max():.1f} ms, {int((gaps > 50).sum())} gaps > 50 ms"
    )
    print(
        f"(c) tracker stopped {t_back - t_stop:.1f} s: {stale} frames skipped "
        f"({reasons}); +20 frames compounded {t_resumed - t_back:.2f} s after poses returned"
    )
    assert proc.returncode == 0, out


# ------------------------------------------------------------------------------------------
# (d) a corrupt recording and a bad parameter


def _corrupt_sequence(path: Path) -> None:
    """A PLUS-style .igs.mha whose pixel data is cut short."""
    header = (
        "ObjectType = Image\nNDims = 3\nAnatomicalOrientation = RAI\nBinaryData = True\n"
        "BinaryDataByteOrderMSB = False\nCompressedData = False\nDimSize = 64 48 10\n"
        "ElementSpacing = 0.2 0.2 1\nOffset = 0 0 0\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
        "UltrasoundImageOrientation = MF\nUltrasoundImageType = BRIGHTNESS\n"
    )
    for i in range(10):
        header += (
            f"Seq_Frame{i:04d}_FrameNumber = {i}\n"
            f"Seq_Frame{i:04d}_ProbeToTrackerTransform = 1 0 0 0 0 1 0 0 0 0 1 {i} 0 0 0 1\n"
            f"Seq_Frame{i:04d}_ProbeToTrackerTransformStatus = OK\n"
            f"Seq_Frame{i:04d}_Timestamp = {i * 0.05:.3f}\n"
            f"Seq_Frame{i:04d}_ImageStatus = OK\n"
        )
    header += "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    path.write_bytes(header.encode() + bytes(64 * 48 * 3))  # 3 of 10 frames


def test_corrupt_recording_fails_configure_with_a_reason(tmp_path: Path) -> None:
    from lifecycle_msgs.msg import Transition
    from us_acquisition.node_common import LATCHED
    from us_acquisition.ros_testing import RosProbe, start_node, stop_node

    from us_interfaces.msg import NodeStatus

    uid = uuid.uuid4().hex[:8]
    bad = tmp_path / "scan.igs.mha"
    _corrupt_sequence(bad)
    ns = f"/bad{uid}"
    proc = start_node(
        "acquisition_node",
        ns,
        {"source": "sequence", "source_path": str(bad), "channel_name": f"test/bad-{uid}"},
    )
    probe = RosProbe(ns)
    status = probe.subscribe(NodeStatus, "acquisition/status", LATCHED)
    try:
        assert not probe.transition("acquisition", Transition.TRANSITION_CONFIGURE, 30)
        assert probe.spin_until(lambda: bool(status) and status[-1].last_error, 5)
        err = status[-1].last_error
        assert "cannot replay sequence file" in err and str(bad) in err, err
        assert "truncated" in err, err
        assert status[-1].state_label == "unconfigured"
        assert proc.poll() is None  # the process stays up
        # fixed without a restart: another source, configure again
        assert all(r.successful for r in probe.set_params("acquisition", source="synthetic"))
        assert probe.transition("acquisition", Transition.TRANSITION_CONFIGURE, 30)
        assert probe.spin_until(lambda: status[-1].last_error == "", 5), status[-1]
    finally:
        probe.close()
        out = stop_node(proc)
    print(f"\n(d) corrupt recording: last_error = {err!r}")
    assert proc.returncode == 0, out


def test_bad_parameter_fails_one_node_and_the_rest_keep_running() -> None:
    uid = uuid.uuid4().hex[:8]
    nodes = ("acquisition", "segmentation", "reconstruction")
    frames_ch, masks_ch = channels(uid)
    extra = ("reconstruction.spacing_mm=100.0",)
    args = [*graph_args(uid, free_port(), nodes=nodes, extra=extra), "--keep-going"]
    graph = Graph(args)
    probe, status, _ = _probe(f"/sys{uid}")
    try:
        with ChannelWatcher(frames_ch, masks_ch) as w:
            assert probe.spin_until(
                lambda: (
                    _active(status, ("acquisition", "segmentation"))
                    and bool(status["reconstruction"])
                    and bool(status["reconstruction"][-1].last_error)
                ),
                45,
            ), graph.text
            rec = status["reconstruction"][-1]
            assert rec.state_label == "unconfigured", rec
            assert "invalid parameters" in rec.last_error and "spacing_mm" in rec.last_error
            n_masks = len(w.seen.masks)
            # the others keep running, the failed node's process stays up
            assert probe.spin_until(lambda: len(w.seen.masks) >= n_masks + 15, 10)
            assert graph.proc.poll() is None
            assert "reconstruction exited" not in graph.text
            assert "reconstruction: configure FAILED" in graph.text
    finally:
        probe.close()
        rc = graph.stop()
    print(f"\n(d) bad parameter: reconstruction last_error = {rec.last_error!r}")
    assert rc == 1, graph.text  # us-run reports that a node did not come up
    for n in nodes:
        assert f"{n} exited with code 0" in graph.text, graph.text


# ------------------------------------------------------------------------------------------
# (e) gRPC clients that stall or vanish


_VANISHING_CLIENT = """
import sys
from us_grpc_bridge.client import UltrasoundClient
with UltrasoundClient(sys.argv[1]) as c:
    for i, m in enumerate(c.stream("frames")):
        if i == 5:
            print("streaming", flush=True)
"""


def test_stalled_or_vanished_grpc_client_does_not_slow_the_producer() -> None:
    import grpc
    from us_grpc_bridge.client import UltrasoundClient

    uid = uuid.uuid4().hex[:8]
    nodes = ("acquisition", "grpc_bridge")
    port = free_port()
    target = f"127.0.0.1:{port}"
    frames_ch, masks_ch = channels(uid)
    graph = Graph(graph_args(uid, port, nodes=nodes))
    probe, status, _ = _probe(f"/sys{uid}")
    vanishing: subprocess.Popen[str] | None = None
    stalled: Any = None
    try:
        with ChannelWatcher(frames_ch, masks_ch) as w:
            assert probe.spin_until(lambda: _active(status, nodes), 40), graph.text
            probe.spin_until(lambda: False, 2.0)
            t0 = time.monotonic()
            fps_idle = _rate(w.seen.frame_rx, t0 - 2.0, t0)
            drops0 = status["acquisition"][-1].frames_dropped

            # a client that takes two frames and then stops reading (raw 320x240 frames)
            client = UltrasoundClient(target)
            stalled = client.stream("frames")
            for _ in range(2):
                next(stalled)
            # a client process that streams and is then SIGKILLed mid-stream
            vanishing = subprocess.Popen(
                [sys.executable, "-c", _VANISHING_CLIENT, target],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert vanishing.stdout is not None
            assert vanishing.stdout.readline().strip() == "streaming"
            t1 = time.monotonic()
            probe.spin_until(lambda: False, 3.0)
            vanishing.kill()
            vanishing.wait(10)
            t2 = time.monotonic()
            probe.spin_until(lambda: False, 3.0)
            t3 = time.monotonic()
            fps_stalled = _rate(w.seen.frame_rx, t1, t2)
            fps_vanished = _rate(w.seen.frame_rx, t2, t3)
            probe.spin_until(lambda: False, 1.2)
            drops1 = status["acquisition"][-1].frames_dropped
            # the bridge still serves a new client, with fresh frames
            with UltrasoundClient(target) as c2:
                fresh = list(c2.stream("frames", max_messages=3, timeout_s=10))
            assert len(fresh) == 3
            stalled.cancel()
            client.close()
    except grpc.RpcError as exc:
        raise AssertionError(f"gRPC: {exc.code().name} {exc.details()}\n{graph.text}") from None
    finally:
        if vanishing is not None and vanishing.poll() is None:
            vanishing.kill()
        probe.close()
        rc = graph.stop()
    print(
        f"\n(e) producer fps: {fps_idle:.1f} without clients, {fps_stalled:.1f} with a "
        f"stalled client, {fps_vanished:.1f} after a client vanished; source drops "
        f"{drops0} -> {drops1}"
    )
    assert rc == 0, graph.text
    for fps in (fps_stalled, fps_vanished):
        assert fps >= 0.9 * FPS and fps >= 0.9 * fps_idle, (fps_idle, fps_stalled, fps_vanished)
    assert drops1 == drops0
