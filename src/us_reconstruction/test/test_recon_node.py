"""The reconstruction node in a real process next to a real acquisition node (simulator):
configure failure with a reason, live compounding from TF, services, robot-holder TF chain."""

from __future__ import annotations

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
from us_reconstruction.export import read_volume  # noqa: E402

from us_interfaces.msg import ReconstructionInfo  # noqa: E402
from us_interfaces.srv import GetVolume, SaveVolume, SetRoi, Trigger  # noqa: E402

CONFIGURE, ACTIVATE = Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE


def _graph(
    tmp_path: Path, acq_params: dict[str, Any], rec_params: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    uid = uuid.uuid4().hex[:8]
    ns, frames = f"/t{uid}", f"test/rf-{uid}"
    acq = start_node(
        "acquisition_node",
        ns,
        {"source": "sim", "width": 160, "height": 120, "fps": 20.0, "channel_name": frames}
        | acq_params,
    )
    rec = start_node(
        "reconstruction_node",
        ns,
        {"frames_channel": frames, "mask_channel": "", "spacing_mm": 1.0, "status_rate_hz": 5.0,
         "surface_period_s": 0.5} | rec_params,
    )  # fmt: skip
    probe = RosProbe(ns)
    try:
        yield {"probe": probe, "rec": rec, "acq": acq}
    finally:
        probe.close()
        stop_node(rec)
        stop_node(acq)


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield from _graph(tmp_path, {}, {"calibration_file": str(tmp_path / "missing.xml")})


def test_configure_failure_then_live_volume_and_services(
    graph: dict[str, Any], tmp_path: Path
) -> None:
    probe: RosProbe = graph["probe"]
    info = probe.subscribe(ReconstructionInfo, "reconstruction/info", LATCHED)
    assert not probe.transition("reconstruction", CONFIGURE)  # missing PLUS XML
    assert graph["rec"].poll() is None
    (r,) = probe.set_params("reconstruction", calibration_file="")
    assert r.successful
    assert probe.transition("reconstruction", CONFIGURE)
    assert probe.transition("reconstruction", ACTIVATE)
    assert probe.transition("acquisition", CONFIGURE)
    assert probe.transition("acquisition", ACTIVATE)
    assert probe.spin_until(lambda: info and info[-1].frames_used >= 20, 30), (
        info[-1] if info else "no info"
    )
    i = info[-1]
    assert i.header.frame_id == "tracker" and list(i.spacing_mm) == [1.0, 1.0, 1.0]
    assert all(d > 0 for d in i.dims)

    vol = probe.call(GetVolume, "reconstruction/get_volume", GetVolume.Request(downsample=2))
    assert vol.success, vol.message
    v = vol.volume
    n = int(np.prod(v.dims))
    assert len(v.intensity) == n and len(v.labels) == n and list(v.spacing_mm) == [2.0] * 3
    assert max(v.intensity) > 0

    req = SaveVolume.Request(directory=str(tmp_path / "out"), basename="scan", formats=["nrrd"])
    saved = probe.call(SaveVolume, "reconstruction/save", req, 60)
    assert saved.success, saved.message
    data, grid = read_volume(tmp_path / "out" / "scan.nrrd")
    assert data.ndim == 3 and tuple(grid.spacing_mm) == (1.0, 1.0, 1.0)
    bad = probe.call(
        SaveVolume, "reconstruction/save", SaveVolume.Request(directory="/tmp", formats=["jpg"])
    )
    assert not bad.success and "unknown formats" in bad.message

    roi = probe.call(
        SetRoi, "reconstruction/set_roi", SetRoi.Request(min_mm=[0.0, 0, 0], max_mm=[-1.0, 5, 5])
    )
    assert not roi.success and "must exceed" in roi.message
    assert probe.call(Trigger, "reconstruction/reset", Trigger.Request()).success
    (r,) = probe.set_params("reconstruction", spacing_mm=0.3)
    assert not r.successful and "applies at configure" in r.reason


@pytest.fixture
def robot_graph(tmp_path: Path) -> Iterator[dict[str, Any]]:
    # the "robot" (here the simulator's tracker output renamed) publishes tracker -> tool0;
    # the probe hangs below the flange by a static transform from the config
    yield from _graph(
        tmp_path,
        {"tf_child_frames": "[tool0]"},
        {"probe_mount_parent": "tool0", "probe_mount_translation_mm": "[0.0, 0.0, 0.0]"},
    )


def test_robot_flange_chain_places_frames(robot_graph: dict[str, Any]) -> None:
    probe: RosProbe = robot_graph["probe"]
    info = probe.subscribe(ReconstructionInfo, "reconstruction/info", LATCHED)
    for node in ("reconstruction", "acquisition"):
        assert probe.transition(node, CONFIGURE)
        assert probe.transition(node, ACTIVATE)
    assert probe.spin_until(lambda: info and info[-1].frames_used >= 10, 30), (
        info[-1] if info else "no info"
    )
