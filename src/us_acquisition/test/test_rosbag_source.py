"""RosbagSource: replay of MCAP ros2 bags of us_interfaces/Frame or sensor_msgs/Image with
their /tf and /tf_static; clear errors for what cannot be replayed (no rclpy node)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from us_acquisition.frame_topic import fill_frame_ref, frame_msg
from us_acquisition.sources import EndOfStream, SourceError
from us_acquisition.sources.factory import make_source
from us_acquisition.sources.rosbag import (
    FRAME_TYPE,
    IMAGE_TYPE,
    TF_TYPE,
    RosbagSource,
    message_definition,
    write_bag,
)

from us_frame_channel import PixelFormat

pytest.importorskip("mcap_ros2")

from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage

from us_interfaces.msg import FrameRef

T0 = 1_780_000_000_000_000_000
DT = 33_000_000  # ns between frames
N = 8
W, H = 40, 30


def _tf(t_ns: int, parent: str, child: str, x_m: float) -> TransformStamped:
    ts = TransformStamped()
    ts.header.stamp.sec, ts.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
    ts.header.frame_id, ts.child_frame_id = parent, child
    ts.transform.translation.x = x_m
    ts.transform.rotation.w = 1.0
    return ts


def _frame_bag(path: Path) -> list[np.ndarray]:
    """N frames (pixel value 10 * i, ROI cropped below row 2) with two /tf samples before
    each (x = i mm and i + 0.5 mm) and one /tf_static."""
    images, msgs = [], []
    static = TFMessage(transforms=[_tf(T0, "tool0", "probe", 0.01)])
    msgs.append(("/tf_static", TF_TYPE, static, T0))
    for i in range(N):
        t = T0 + i * DT
        for k, dx in enumerate((0.0, 0.5)):
            tf = TFMessage(
                transforms=[_tf(t - (10 - 5 * k) * 1_000_000, "tracker", "probe", (i + dx) / 1000)]
            )
            msgs.append(("/tf", TF_TYPE, tf, t - (10 - 5 * k) * 1_000_000))
        img = np.full((H, W), 10 * i, np.uint8)
        img[:2] = 255  # scanner chrome outside the ROI
        images.append(img[2:])
        ref = fill_frame_ref(
            FrameRef(), channel="us/frames", frame_id="us_image", seq=100 + i, epoch=7,
            device_timestamp_ns=0, host_timestamp_ns=t, width=W, height=H,
            pixel_format=PixelFormat.MONO8, spacing_mm=(0.1, 0.2), roi=(0, 2, W, H - 2),
            payload_bytes=W * H,
        )  # fmt: skip
        msgs.append(("/us/acquisition/frames", FRAME_TYPE, frame_msg(ref, img), t + 2_000_000))
    write_bag(path, msgs)
    return images


def test_frames_and_poses_replay_as_recorded(tmp_path: Path) -> None:
    bag = tmp_path / "scan"
    bag.mkdir()
    images = _frame_bag(bag / "scan_0.mcap")
    src = RosbagSource(bag, realtime=False)
    info = src.open()
    assert (info.width, info.height, info.pixel_format) == (W, H - 2, PixelFormat.MONO8)
    assert info.extra["topic"] == "/us/acquisition/frames" and info.extra["frames"] == N
    got = []
    while True:
        try:
            f = src.read(1.0)
        except EndOfStream:
            break
        assert f is not None
        got.append(f)
    assert len(got) == N
    for i, f in enumerate(got):
        np.testing.assert_array_equal(f.image, images[i])  # the ROI, chrome cropped
        assert f.spacing_mm == (0.1, 0.2)
        assert f.device_timestamp_ns == T0 + i * DT  # the recorded capture time
        moving = [t for t in f.transforms if t.from_frame == "probe" and t.to_frame == "tracker"]
        assert [round(t.matrix[0, 3], 3) for t in moving] == [i, i + 0.5]  # m -> mm
        # poses keep their offsets to the frame on the replay clock: 10 and 5 ms before
        assert [f.host_timestamp_ns - t.timestamp_ns for t in moving] == [10_000_000, 5_000_000]
        (st,) = [t for t in f.transforms if t.to_frame == "tool0"]
        assert st.matrix[0, 3] == pytest.approx(10.0) and st.timestamp_ns == f.host_timestamp_ns
    stamps = [f.host_timestamp_ns for f in got]
    assert np.diff(stamps).tolist() == [DT] * (N - 1)
    src.close()


def test_loop_keeps_time_increasing(tmp_path: Path) -> None:
    path = tmp_path / "scan.mcap"
    _frame_bag(path)
    src = make_source(
        {"source": "rosbag", "source_path": str(path), "bag_topic": "", "realtime": False,
         "loop": True}
    )  # fmt: skip
    src.open()
    frames = [src.read(1.0) for _ in range(2 * N + 3)]
    src.close()
    stamps = [f.host_timestamp_ns for f in frames if f is not None]
    assert len(stamps) == 2 * N + 3 and all(b > a for a, b in itertools.pairwise(stamps))
    assert frames[N] is not None and int(frames[N].image[5, 5]) == 0  # pass 2 starts over
    assert stamps[N] - stamps[N - 1] == DT  # one frame interval between passes


def test_realtime_replay_is_paced_by_capture_times(tmp_path: Path) -> None:
    path = tmp_path / "scan.mcap"
    _frame_bag(path)
    src = RosbagSource(path, realtime=True, speed=4.0)
    src.open()
    t0 = time.monotonic()
    for _ in range(N):
        while src.read(0.5) is None:
            pass
    elapsed = time.monotonic() - t0
    src.close()
    assert elapsed >= (N - 1) * DT / 1e9 / 4.0 * 0.9  # 7 intervals of 33 ms at 4x


def test_sensor_msgs_image_bags_replay_without_spacing(tmp_path: Path) -> None:
    path = tmp_path / "camera.mcap"
    msgs = []
    for i in range(3):
        img = Image()
        img.header.stamp.sec, img.header.stamp.nanosec = divmod(T0 + i * DT, 1_000_000_000)
        img.height, img.width, img.encoding, img.step = 2, 3, "rgb8", 9
        img.data.frombytes(bytes([10 * i, 1, 200] * 6))
        msgs.append(("/camera/image_raw", IMAGE_TYPE, img, T0 + i * DT))
    write_bag(path, msgs)
    src = RosbagSource(path, realtime=False)
    info = src.open()
    assert info.pixel_format is PixelFormat.BGR8 and info.extra["topic"] == "/camera/image_raw"
    f = src.read(1.0)
    assert f is not None and f.spacing_mm is None and f.transforms == []
    assert f.image.shape == (2, 3, 3) and f.image[0, 0].tolist() == [200, 1, 0]  # rgb -> bgr
    src.close()


def test_what_cannot_be_replayed_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such bag"):
        RosbagSource(tmp_path / "missing").open()
    sqlite = tmp_path / "old_bag"
    sqlite.mkdir()
    (sqlite / "old_bag_0.db3").write_bytes(b"SQLite format 3\0")
    with pytest.raises(SourceError, match="SQLite3 bag"):
        RosbagSource(sqlite).open()
    poses_only = tmp_path / "poses.mcap"
    write_bag(poses_only, [("/tf", TF_TYPE, TFMessage(transforms=[_tf(T0, "a", "b", 0.0)]), T0)])
    with pytest.raises(SourceError, match=r"no us_interfaces/msg/Frame or sensor_msgs/msg/Image"):
        RosbagSource(poses_only).open()
    with pytest.raises(SourceError, match="carries tf2_msgs/msg/TFMessage"):
        RosbagSource(poses_only, topic="/tf").open()
    good = tmp_path / "good.mcap"
    _frame_bag(good)
    with pytest.raises(SourceError, match="no topic '/nope'"):
        RosbagSource(good, topic="/nope").open()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SourceError, match=r"cut\.mcap"):
        RosbagSource(cut).open()
    with pytest.raises(SourceError, match="needs source_path"):
        make_source({"source": "rosbag", "source_path": "", "bag_topic": "", "realtime": True,
                     "loop": False})  # fmt: skip


def test_schema_text_is_rosbag2_style() -> None:
    text = message_definition(FRAME_TYPE)
    assert text.startswith("# One whole frame on a ROS topic")
    for dep in ("us_interfaces/FrameRef", "sensor_msgs/Image", "std_msgs/Header",
                "builtin_interfaces/Time", "sensor_msgs/RegionOfInterest"):  # fmt: skip
        assert f"\nMSG: {dep}\n" in text
    assert text.count("=" * 80) == 5
