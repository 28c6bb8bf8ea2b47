"""The acquisition node in a real process: lifecycle, parameters, topics, channel."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from us_acquisition.node_common import LATCHED  # noqa: E402
from us_acquisition.ros_testing import RosProbe  # noqa: E402

from us_frame_channel import FrameReader  # noqa: E402
from us_interfaces.msg import FrameRef, NodeStatus  # noqa: E402


class Probe(RosProbe):
    """A test-side ROS node that drives and watches one acquisition node process."""

    def __init__(self, ns: str) -> None:
        super().__init__(ns)
        self.refs: list[FrameRef] = self.subscribe(
            FrameRef, "acquisition/frame_ref", qos_profile_sensor_data
        )
        self.status: list[NodeStatus] = self.subscribe(NodeStatus, "acquisition/status", LATCHED)

    def transition(self, tid: int) -> tuple[bool, float]:  # type: ignore[override]
        t0 = time.monotonic()
        ok = super().transition("acquisition", tid)
        return ok, time.monotonic() - t0

    def set_params(self, **values: Any) -> list[Any]:  # type: ignore[override]
        return super().set_params("acquisition", **values)


@pytest.fixture
def acquisition() -> Iterator[tuple[subprocess.Popen[str], Probe, str, str]]:
    uid = uuid.uuid4().hex[:8]
    ns, channel = f"/t{uid}", f"test/acq-{uid}"
    proc = subprocess.Popen(
        [
            "acquisition_node",
            "--ros-args",
            "-r",
            f"__ns:={ns}",
            "-p",
            "source:=synthetic",
            "-p",
            "fps:=50.0",
            "-p",
            "width:=64",
            "-p",
            "height:=48",
            "-p",
            f"channel_name:={channel}",
            "-p",
            "roi:=[0, 0, 5000, 10]",
            "-p",
            "status_rate_hz:=5.0",
            "-p",
            "preview_rate_hz:=5.0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    probe = Probe(ns)
    try:
        yield proc, probe, ns, channel
    finally:
        probe.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_lifecycle_failure_then_success_then_clean_exit(acquisition: Any) -> None:
    proc, probe, _, channel = acquisition
    # a bad ROI: configure fails fast with a reason and the process stays up
    ok, dt = probe.transition(Transition.TRANSITION_CONFIGURE)
    assert not ok and dt < 10.0
    assert proc.poll() is None
    assert probe.spin_until(lambda: any("outside" in s.last_error for s in probe.status), 10)

    # fix the parameter (allowed while unconfigured) and configure again
    res = probe.set_params(roi=[8, 4, 48, 40], spacing_mm=[0.11, 0.12])
    assert all(r.successful for r in res), [r.reason for r in res]
    ok, _ = probe.transition(Transition.TRANSITION_CONFIGURE)
    assert ok
    ok, _ = probe.transition(Transition.TRANSITION_ACTIVATE)
    assert ok

    with FrameReader(channel, wait_s=5.0) as reader:
        f = reader.read(5.0)
        assert f is not None
        with f:
            assert f.array.shape == (40, 48)
            assert (f.info.spacing_x_mm, f.info.spacing_y_mm) == (0.11, 0.12)
        assert probe.spin_until(lambda: len(probe.refs) >= 3, 10), "no FrameRef messages"
        ref = probe.refs[-1]
        assert ref.channel == channel and ref.width == 48 and ref.height == 40
        assert ref.pixel_format == "mono8" and ref.spacing_y_mm == pytest.approx(0.12)
        assert ref.header.frame_id == "us_image"

        # not live: refused while active, with the reason
        (r,) = probe.set_params(fps=10.0)
        assert not r.successful and "applies at configure" in r.reason
        (r,) = probe.set_params(pixel_format="rgb565")
        assert not r.successful and "one of" in r.reason
        # live: spacing changes while streaming
        (r,) = probe.set_params(spacing_mm=[0.2, 0.3])
        assert r.successful, r.reason
        deadline = time.monotonic() + 5
        seen = False
        while time.monotonic() < deadline and not seen:
            f = reader.read(1.0)
            if f is not None:
                seen = f.info.spacing_y_mm == 0.3
                f.release()
        assert seen

        ok, _ = probe.transition(Transition.TRANSITION_DEACTIVATE)
        assert ok
        while (f := reader.try_read()) is not None:  # published before the pause
            f.release()
        assert reader.read(0.5) is None  # inactive: the channel stays, frames stop
        ok, _ = probe.transition(Transition.TRANSITION_ACTIVATE)  # resumes on the same channel
        assert ok
        assert reader.read(5.0) is not None

    assert probe.spin_until(
        lambda: any(s.state == NodeStatus.STATE_ACTIVE and s.fps > 10 for s in probe.status), 10
    )
    for tid in (
        Transition.TRANSITION_DEACTIVATE,
        Transition.TRANSITION_CLEANUP,
        Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    ):
        ok, _ = probe.transition(tid)
        assert ok
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_missing_recording_fails_configure_with_the_file_named(acquisition: Any) -> None:
    proc, probe, _, _ = acquisition
    res = probe.set_params(
        source="sequence", source_path="/nonexistent/scan.igs.mha", roi=[0, 0, 0, 0]
    )
    assert all(r.successful for r in res)
    ok, dt = probe.transition(Transition.TRANSITION_CONFIGURE)
    assert not ok and dt < 10.0 and proc.poll() is None
    assert probe.spin_until(lambda: any(s.last_error for s in probe.status), 10)
    # whichever layer refuses (the replay source or its absence), it says what is wrong
    errors = [s.last_error for s in probe.status if s.last_error]
    assert any("scan.igs.mha" in e or "not available" in e for e in errors), errors


@contextlib.contextmanager
def _configured_node_on_tf(**params: str) -> Iterator[tuple[Probe, str, Any]]:
    """An acquisition node process, configured, with a probe listening to /tf.

    Yields ``(probe, uid, ours)``; ``ours()`` lists the received transforms whose child
    frame is this node's ``probe_<uid>`` (parallel tests use other frame names).
    """
    from tf2_msgs.msg import TFMessage

    uid = uuid.uuid4().hex[:8]
    ns = f"/t{uid}"
    params = {
        "channel_name": f"test/tf-{uid}",
        "tf_parent_frames": f"[tracker_{uid}]",
        "tf_child_frames": f"[probe_{uid}]",
        **params,
    }
    args = ["acquisition_node", "--ros-args", "-r", f"__ns:={ns}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Probe(ns)
    got: list[Any] = []
    probe.node.create_subscription(TFMessage, "/tf", got.append, 100)

    def ours() -> list[Any]:
        return [t for m in got for t in m.transforms if t.child_frame_id == f"probe_{uid}"]

    try:
        ok, _ = probe.transition(Transition.TRANSITION_CONFIGURE)
        assert ok
        yield probe, uid, ours
    finally:
        probe.close()
        proc.kill()
        proc.wait(timeout=10)


def test_simulated_sweep_publishes_tracker_poses_on_tf() -> None:
    with _configured_node_on_tf(
        source="sim", width="160", height="120", fps="30.0", sim_tracker_rate_hz="120.0"
    ) as (probe, uid, ours):
        ok, _ = probe.transition(Transition.TRANSITION_ACTIVATE)
        assert ok
        assert probe.spin_until(lambda: len(ours()) >= 2, 20), "no probe pose on /tf"
        n0, t0 = len(ours()), time.monotonic()
        probe.spin_until(lambda: False, 1.0)
        rate = (len(ours()) - n0) / (time.monotonic() - t0)
        assert 60 <= rate <= 180, rate  # ~120 Hz tracker, delivered in bursts per frame
        t = ours()[-1]
        assert t.header.frame_id == f"tracker_{uid}"
        q = t.transform.rotation
        assert abs(q.x**2 + q.y**2 + q.z**2 + q.w**2 - 1) < 1e-6
        assert abs(t.transform.translation.z) < 0.2  # metres: the neck is ~ +-5 cm
        stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in ours()]
        assert stamps == sorted(stamps)


def test_rclpy_after_gstreamer_in_one_process_does_not_abort() -> None:
    """GStreamer's libunwind must not break Fast DDS's C++ exceptions (see gstreamer.py)."""
    pytest.importorskip("gi")
    code = (
        "from us_acquisition.sources.gstreamer import GStreamerConfig, GStreamerSource\n"
        "s = GStreamerSource(GStreamerConfig(kind='test', pixel_format='mono8', width=64,"
        " height=48, fps=30))\n"
        "s.open(); assert s.read(2.0) is not None; s.close()\n"
        "import rclpy\n"
        "rclpy.init(); n = rclpy.create_node('after_gst'); n.destroy_node(); rclpy.shutdown()\n"
        "print('survived')\n"
    )
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "survived" in out.stdout, out.stderr[-2000:]


def test_tracked_recording_replays_with_its_transforms_on_tf(tmp_path: Any) -> None:
    """A PLUS sequence file: frames into the channel, ProbeToTracker onto /tf, invalid
    tracker samples left out (a gap, never a guess)."""
    import numpy as np
    from us_acquisition.sequence_io import TrackedSequence, write_sequence

    n = 20
    frames = np.stack([np.full((24, 32), 10 * i, np.uint8) for i in range(n)])
    mats = np.repeat(np.eye(4)[None], n, axis=0)
    mats[:, 0, 3] = np.arange(n) * 1.0  # probe moves 1 mm per frame along x
    status = np.ones(n, dtype=bool)
    status[5] = False  # the tracker lost the probe for one frame
    path = tmp_path / "scan.igs.mha"
    write_sequence(
        path,
        TrackedSequence(
            frames=frames,
            timestamps_s=np.arange(n) * 0.05,
            transforms={"ProbeToTracker": mats},
            transform_status={"ProbeToTracker": status},
            spacing_mm=(0.2, 0.2),
        ),
    )

    with _configured_node_on_tf(
        source="sequence", source_path=str(path), loop="false", realtime="true"
    ) as (probe, uid, ours):
        with FrameReader(f"test/tf-{uid}", wait_s=5.0) as reader:
            ok, _ = probe.transition(Transition.TRANSITION_ACTIVATE)
            assert ok
            seen = []
            while len(seen) < n:
                f = reader.read(5.0)
                assert f is not None, f"only {len(seen)} of {n} frames replayed"
                with f:
                    seen.append(int(f.array[0, 0]))
                    assert f.info.spacing_x_mm == pytest.approx(0.2)
            assert seen == [10 * i for i in range(n)]
        assert probe.spin_until(lambda: len(ours()) >= n - 1, 10)
        xs = sorted(round(t.transform.translation.x * 1000) for t in ours())  # m -> mm
        assert xs == [i for i in range(n) if i != 5]  # frame 5's invalid pose left out
        assert all(t.header.frame_id == f"tracker_{uid}" for t in ours())


def test_quaternion_of_tracker_matrices_matches_scipy() -> None:
    import numpy as np
    from scipy.spatial.transform import Rotation
    from us_acquisition.node import _quaternion

    for seed in range(200):
        r = Rotation.random(random_state=seed)
        m = np.eye(4)
        m[:3, :3] = r.as_matrix() * (1 + 1e-4)  # trackers' matrices are not exactly orthonormal
        q = np.array(_quaternion(m))
        want = r.as_quat()
        assert min(np.abs(q - want).max(), np.abs(q + want).max()) < 1e-6


def test_bad_values_in_the_config_refuse_configure_without_crashing() -> None:
    uid = uuid.uuid4().hex[:8]
    ns = f"/t{uid}"
    proc = subprocess.Popen(
        [
            "acquisition_node",
            "--ros-args",
            "-r",
            f"__ns:={ns}",
            "-p",
            "fps:=-5.0",
            "-p",
            "width:=abc",
            "-p",
            "source:=firewire",
            "-p",
            f"channel_name:=test/bad-{uid}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    probe = Probe(ns)
    try:
        ok, dt = probe.transition(Transition.TRANSITION_CONFIGURE)
        assert not ok and dt < 10.0 and proc.poll() is None
        assert probe.spin_until(lambda: any(s.last_error for s in probe.status), 10)
        err = next(s.last_error for s in probe.status if s.last_error)
        assert "fps" in err and "width" in err and "firewire" in err, err
    finally:
        probe.close()
        proc.kill()
        proc.wait(timeout=10)


def test_recorded_topics_replay_as_a_bag(tmp_path: Any) -> None:
    """What `ros2 bag record /<ns>/acquisition/frames /tf` captures of a live scan (here:
    the same messages, received by a probe and written to MCAP the way rosbag2 stores them)
    replays through `source:=rosbag`: the same pixels into the channel, the poses on /tf."""
    import numpy as np
    from tf2_msgs.msg import TFMessage
    from us_acquisition.frame_topic import frame_from_msg
    from us_acquisition.sources.rosbag import FRAME_TYPE, TF_TYPE, write_bag

    from us_interfaces.msg import Frame

    recorded: list[tuple[str, str, Any, int]] = []
    with _configured_node_on_tf(
        source="sim", width="160", height="120", fps="15.0", sim_tracker_rate_hz="60.0"
    ) as (probe, uid, _):
        topic = f"/t{uid}/acquisition/frames"
        probe.node.create_subscription(
            Frame, topic, lambda m: recorded.append((topic, FRAME_TYPE, m, time.time_ns())), 10
        )
        probe.node.create_subscription(
            TFMessage,
            "/tf",
            lambda m: recorded.append(("/tf", TF_TYPE, m, time.time_ns())),
            100,
        )
        ok, _ = probe.transition(Transition.TRANSITION_ACTIVATE)
        assert ok
        assert probe.spin_until(lambda: sum(1 for r in recorded if r[1] == FRAME_TYPE) >= 12, 20), (
            "no whole frames on ~/frames while subscribed"
        )
    frames = [r[2] for r in recorded if r[1] == FRAME_TYPE]
    poses = [t for r in recorded if r[1] == TF_TYPE for t in r[2].transforms]
    assert any(t.child_frame_id == f"probe_{uid}" for t in poses)
    bag = tmp_path / "scan_bag"
    bag.mkdir()
    write_bag(bag / "scan_bag_0.mcap", recorded)
    expected = [np.array(frame_from_msg(m)[0]) for m in frames]

    with _configured_node_on_tf(
        source="rosbag", source_path=str(bag), loop="false", realtime="true"
    ) as (probe, uid2, _):
        tf_again: list[Any] = []
        probe.node.create_subscription(TFMessage, "/tf", tf_again.append, 100)
        with FrameReader(f"test/tf-{uid2}", wait_s=5.0) as reader:
            ok, _ = probe.transition(Transition.TRANSITION_ACTIVATE)
            assert ok
            replayed = []
            while len(replayed) < len(expected):
                f = reader.read(5.0)
                assert f is not None, f"{len(replayed)} of {len(expected)} frames replayed"
                with f:
                    replayed.append(np.array(f.array))
        for a, b in zip(replayed, expected, strict=True):
            np.testing.assert_array_equal(a, b)
        # the recorded poses go out on /tf again (frame names as recorded)
        assert probe.spin_until(
            lambda: any(t.child_frame_id == f"probe_{uid}" for m in tf_again for t in m.transforms),
            10,
        )
