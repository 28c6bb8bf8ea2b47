"""The recorder node in a real process next to a real acquisition node (simulator): refusals
with reasons, a recording started and stopped through ~/recording while acquisition runs
(the producer drops nothing), the file read back, replayed by a second acquisition node and
reconstructed offline by ``us-reconstruct``."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from lifecycle_msgs.msg import Transition  # noqa: E402
from us_acquisition.node_common import LATCHED  # noqa: E402
from us_acquisition.ros_testing import RosProbe, start_node, stop_node  # noqa: E402
from us_acquisition.sequence_io import read_sequence  # noqa: E402

from us_frame_channel import FrameReader  # noqa: E402
from us_interfaces.msg import NodeStatus  # noqa: E402
from us_interfaces.srv import Recording  # noqa: E402

CONFIGURE, ACTIVATE = Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE

# ImageToProbe for us-reconstruct: 0.3 mm/px, any placement will do for the check
PLUS_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<PlusConfiguration version="2.1">
  <CoordinateDefinitions>
    <Transform From="Image" To="Probe"
      Matrix="0.3 0 0 -24  0 0.3 0 0  0 0 0.3 0  0 0 0 1" />
  </CoordinateDefinitions>
  <VolumeReconstruction OutputSpacing="1 1 1" ImageCoordinateFrame="Image"
    ReferenceCoordinateFrame="Tracker" />
</PlusConfiguration>
"""


def _values(s: NodeStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in s.values}


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[dict[str, Any]]:
    uid = uuid.uuid4().hex[:8]
    ns, frames = f"/t{uid}", f"test/rf-{uid}"
    acq = start_node(
        "acquisition_node",
        ns,
        {"source": "sim", "width": 160, "height": 120, "fps": 20.0, "channel_name": frames},
    )
    rec = start_node(
        "recorder_node",
        ns,
        {"frames_channel": frames, "mask_channel": "", "status_rate_hz": 5.0,
         "output_dir": str(tmp_path / "auto")},
    )  # fmt: skip
    probe = RosProbe(ns)
    try:
        yield {"probe": probe, "rec": rec, "acq": acq, "uid": uid}
    finally:
        probe.close()
        stop_node(rec)
        stop_node(acq)


def test_record_while_acquiring_then_replay(graph: dict[str, Any], tmp_path: Path) -> None:
    probe: RosProbe = graph["probe"]
    status = probe.subscribe(NodeStatus, "recorder/status", LATCHED)
    acq_status = probe.subscribe(NodeStatus, "acquisition/status", LATCHED)
    out = tmp_path / "scan.igs.mha"

    def call(start: bool, path: str = "") -> Any:
        req = Recording.Request(start=start, path=path)
        return probe.call(Recording, "recorder/recording", req)

    assert probe.transition("recorder", CONFIGURE)
    r = call(True, str(out))
    assert not r.success and "not active" in r.message
    assert probe.transition("recorder", ACTIVATE)
    for node in ("acquisition",):
        assert probe.transition(node, CONFIGURE)
        assert probe.transition(node, ACTIVATE)

    r = call(True, str(tmp_path / "scan.mha"))
    assert not r.success and "unsupported extension" in r.message
    r = call(True, str(tmp_path / "missing" / "scan.igs.mha"))
    assert not r.success and "does not exist" in r.message
    r = call(False)
    assert not r.success and "not recording" in r.message

    r = call(True, str(out))
    assert r.success, r.message
    assert r.path == str(out)
    r2 = call(True, str(tmp_path / "other.igs.mha"))
    assert not r2.success and "already recording" in r2.message

    def written() -> int:
        if not status or _values(status[-1]).get("recording") != "yes":
            return 0
        return int(_values(status[-1]).get("frames_written", "0"))

    assert probe.spin_until(lambda: written() >= 20, 30), status[-1] if status else "no status"
    v = _values(status[-1])
    assert v["path"] == str(out) and float(v["mb_written"]) > 0

    stop = call(False)
    assert stop.success, stop.message
    assert stop.path == str(out) and stop.frames_written >= 20
    assert probe.spin_until(lambda: _values(status[-1]).get("recording") == "no", 10)

    # the producer dropped nothing while the recorder ran
    assert probe.spin_until(lambda: acq_status and acq_status[-1].frames_out > 0, 10)
    assert acq_status[-1].frames_dropped == 0, acq_status[-1]

    seq = read_sequence(out)
    assert seq.num_frames == stop.frames_written
    assert seq.frames.shape[1:] == (120, 160) and seq.frames.dtype == np.uint8
    assert np.all(np.diff(seq.timestamps_s) > 0)
    seqs = [int(s) for s in seq.frame_fields["FrameSeq"]]
    # every frame of the channel between the first and the last is in the file or lost
    assert seqs[-1] - seqs[0] + 1 == stop.frames_written + stop.frames_lost
    ok = seq.transform_status["ProbeToTracker"]
    assert ok.mean() >= 0.8, f"{int(ok.sum())} of {len(ok)} poses valid"
    assert seq.spacing_mm is not None and seq.spacing_mm[0] > 0
    assert not (tmp_path / "scan-labels.igs.mha").exists()  # no mask channel configured

    # empty path: a new file in output_dir; Ctrl-C of the recorder writes it
    auto = call(True)
    assert auto.success and auto.path.startswith(str(tmp_path / "auto" / "scan-"))
    assert probe.spin_until(lambda: written() >= 3, 30)
    log = stop_node(graph["rec"], timeout_s=30)
    assert graph["rec"].returncode == 0, log
    assert read_sequence(auto.path).num_frames >= 3, log
    assert [p.name for p in (tmp_path / "auto").iterdir()] == [Path(auto.path).name]

    # offline reconstruction of the recording (PLUS style, with an ImageToProbe config)
    cfg = tmp_path / "PlusDeviceSet.xml"
    cfg.write_text(PLUS_CONFIG)
    vol = tmp_path / "volume.nrrd"
    done = subprocess.run(
        ["nice", "-n", "15", "us-reconstruct", str(out), "-c", str(cfg), "-o", str(vol)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert vol.is_file() and vol.stat().st_size > 0

    # the recording replays through a second acquisition node (source=sequence)
    ns2, ch2 = f"/r{graph['uid']}", f"test/rp-{graph['uid']}"
    replay = start_node(
        "acquisition_node",
        ns2,
        {"source": "sequence", "source_path": str(out), "channel_name": ch2, "loop": True},
    )
    probe2 = RosProbe(ns2)
    try:
        assert probe2.transition("acquisition", CONFIGURE)
        with FrameReader(ch2, wait_s=10.0) as reader:
            assert probe2.transition("acquisition", ACTIVATE)
            f = reader.read(10.0)
            assert f is not None
            with f:
                assert f.array.shape == (120, 160)
                assert any(np.array_equal(f.array, seq.frames[i]) for i in range(seq.num_frames))
    finally:
        probe2.close()
        stop_node(replay)


def test_node_in_process_guard_background_write_and_bad_parameters(tmp_path: Path) -> None:
    """Without spinning: a bad parameter fails configure; the size guard ends a recording
    and its file is written by the background writer."""
    import time

    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from us_acquisition.recorder_node import RecorderNode

    from us_frame_channel import ChannelConfig, FrameWriter

    uid = uuid.uuid4().hex[:8]
    ch = f"test/rn-{uid}"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    fw = FrameWriter(ChannelConfig.for_frames(ch, 32, 24, "mono8", buffer_frames=16))
    nodes: list[Any] = []
    try:
        bad = RecorderNode(
            context=ctx, parameter_overrides=[Parameter("transform_name", value="probe")]
        )
        nodes.append(bad)
        assert bad.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "transform_name" in bad._last_error

        node = RecorderNode(
            context=ctx,
            parameter_overrides=[
                Parameter("frames_channel", value=ch),
                Parameter("mask_channel", value=""),
                Parameter("max_gb", value=32 * 24 * 5 / 1e9),  # five frames
                Parameter("pose_wait_ms", value=0.0),
            ],
        )
        nodes.append(node)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        out = tmp_path / "guard.igs.nrrd"
        ok, msg, path = node._start(str(out))
        assert ok and path == str(out), msg
        for i in range(8):
            fw.publish(np.full((24, 32), i, np.uint8), "mono8")
        rec = node._rec
        assert rec is not None
        deadline = time.monotonic() + 10
        while not rec.limit_reached and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "max_bytes" in rec.stats.limit_reason
        node._on_timer()  # the status timer notices the guard and writes in the background
        assert node._rec is None
        deadline = time.monotonic() + 10
        while node._writing is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node._writing is None and node._last_result is not None
        seq = read_sequence(out)
        assert seq.num_frames == 5 and [int(f[0, 0]) for f in seq.frames] == [0, 1, 2, 3, 4]
        assert not seq.transform_status["ProbeToTracker"].any()  # no /tf at all: INVALID
        ok, msg, _ = node._start(str(out))
        assert not ok and "already exists" in msg
    finally:
        fw.close()
        for n in nodes:
            n.release()
            n.destroy_node()
        rclpy.shutdown(context=ctx)
