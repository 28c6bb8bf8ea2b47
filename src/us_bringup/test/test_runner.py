"""us-run brings the graph up and down cleanly; the launch file is well-formed."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from us_frame_channel import FrameReader

ROOT = Path(__file__).resolve().parents[3]


def _run(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["us-run", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def test_runner_starts_streams_and_stops_on_sigint() -> None:
    uid = uuid.uuid4().hex[:8]
    channel = f"test/run-{uid}"
    proc = _run(
        "--namespace",
        f"r{uid}",
        "--set",
        "acquisition.source=synthetic",
        "--set",
        f"acquisition.channel_name={channel}",
        "--set",
        "acquisition.fps=60.0",
    )
    try:
        with FrameReader(channel, wait_s=30.0) as reader:  # the graph is up when frames flow
            for _ in range(10):
                f = reader.read(5.0)
                assert f is not None
                f.release()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    for line in (
        "acquisition: configure ok",
        "acquisition: activate ok",
        "acquisition: deactivate ok",
        "acquisition: cleanup ok",
        "acquisition: shutdown ok",
        "acquisition exited with code 0",
    ):
        assert line in out, out


def test_runner_reports_a_node_that_cannot_configure() -> None:
    uid = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    proc = _run(
        "--namespace",
        f"r{uid}",
        "--set",
        "acquisition.source=video",
        "--set",
        "acquisition.source_path=/nonexistent/clip.mp4",
        "--set",
        f"acquisition.channel_name=test/run-{uid}",
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "configure FAILED" in out and "configure failed" in out
    assert "acquisition exited with code 0" in out  # taken down cleanly all the same
    assert time.monotonic() - t0 < 40


def test_unknown_node_is_refused() -> None:
    proc = _run("--nodes", "acquisition,teleporter")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "unknown nodes ['teleporter']" in out


def test_launch_file_is_well_formed() -> None:
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (no ROS 2 installation; not on PyPI)")
    spec = importlib.util.spec_from_file_location("system_launch", ROOT / "launch/system.launch.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    names = {a.name for a in ld.get_launch_arguments()}
    assert {
        "namespace",
        "config_dir",
        "nodes",
        "source",
        "log_level",
        "autostart",
        "respawn",
    } <= names


def test_launch_file_and_runner_start_the_same_nodes() -> None:
    import ast

    from us_bringup.graph import GRAPH

    tree = ast.parse((ROOT / "launch/system.launch.py").read_text())
    nodes = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODES"
    )
    launched = [tuple(ast.literal_eval(e)) for e in nodes.elts]  # type: ignore[attr-defined]
    assert launched == [(n.name, n.package, n.executable, n.params_file) for n in GRAPH]
    for n in GRAPH:
        assert (ROOT / "config" / n.params_file).exists()


def test_set_values_get_the_parameter_type() -> None:
    """`--set acquisition.fps=15` must reach the node as a double (ROS would type 15 as an
    integer and the node would refuse it); other values pass through unchanged."""
    from us_bringup.graph import NODES
    from us_bringup.runner import _ros_value

    acq, seg = NODES["acquisition"], NODES["segmentation"]
    assert _ros_value(acq, "fps", "15") == "15.0"
    assert _ros_value(acq, "fps", "29.97") == "29.97"
    assert _ros_value(acq, "width", "320") == "320"  # an int parameter stays an int
    assert _ros_value(acq, "source", "sim") == "sim"
    assert _ros_value(seg, "temporal_weight", "1") == "1.0"
    assert _ros_value(seg, "no_such_parameter", "1") == "1"  # the node reports unknown ones
    for entry in NODES.values():  # every node names the module of its parameters
        assert importlib.import_module(entry.params_module).PARAMETERS


def test_unknown_dds_profile_is_refused_with_the_reason() -> None:
    out = subprocess.run(
        ["us-run", "--dds-profile", "no_such_profile", "--nodes", "acquisition"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "no_such_profile: no such file or config/fastdds/ profile" in out.stderr
    from us_bringup.runner import dds_profile_path

    shipped = dds_profile_path("large_frames")
    assert shipped is not None and shipped.name == "large_frames.xml"
