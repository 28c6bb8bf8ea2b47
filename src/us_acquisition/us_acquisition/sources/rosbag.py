"""Replay of ``ros2 bag record`` recordings (MCAP storage) as a frame source.

``ros2 bag record /us/acquisition/frames /tf /tf_static`` captures what the acquisition
node publishes while somebody subscribes (whole frames as ``us_interfaces/Frame``, the
tracker poses on ``/tf``); :class:`RosbagSource` delivers those frames again, paced by
their capture times, with the ``/tf`` samples recorded between them as the frames'
tracker transforms, so that replaying a bag drives the graph like the live scan did.
Bags of other systems work too when their images are ``sensor_msgs/Image`` (mono8,
mono16, bgr8, rgb8, bgra8, rgba8, yuv422): the pixel spacing then comes from the node's
configuration.

Reading needs no ROS installation: MCAP files are read with the ``mcap`` and
``mcap-ros2-support`` packages (``ros2msg`` schemas, CDR messages: the default storage
of ``ros2 bag record`` since ROS 2 Iron). SQLite3 bags (``.db3``) are refused with the
reason. :func:`write_bag` writes such files (the tests use it; it is not
``ros2 bag record``'s own code).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from us_frame_channel import PixelFormat

from .base import EndOfStream, FrameSource, SourceError, SourceFrame, SourceInfo, TrackedTransform
from .recording import _check_common, _Pacer

__all__ = ["RosbagSource", "message_definition", "write_bag"]

FRAME_TYPE = "us_interfaces/msg/Frame"
IMAGE_TYPE = "sensor_msgs/msg/Image"
TF_TYPE = "tf2_msgs/msg/TFMessage"
_NS = 1_000_000_000
_IMAGE_ENCODINGS: dict[str, tuple[PixelFormat, Any, int]] = {
    "mono8": (PixelFormat.MONO8, np.uint8, 1),
    "8UC1": (PixelFormat.MONO8, np.uint8, 1),
    "mono16": (PixelFormat.MONO16, np.uint16, 1),
    "16UC1": (PixelFormat.MONO16, np.uint16, 1),
    "bgr8": (PixelFormat.BGR8, np.uint8, 3),
    "rgb8": (PixelFormat.BGR8, np.uint8, 3),
    "bgra8": (PixelFormat.BGRA8, np.uint8, 4),
    "rgba8": (PixelFormat.BGRA8, np.uint8, 4),
    "yuv422": (PixelFormat.UYVY, np.uint8, 2),
    "uyvy": (PixelFormat.UYVY, np.uint8, 2),
    "32FC1": (PixelFormat.FLOAT32, np.float32, 1),
}


def _mcap_files(path: Path) -> list[Path]:
    """The MCAP files of a bag directory (in name order) or the file itself."""
    if path.is_dir():
        files = sorted(path.glob("*.mcap"))
        if not files:
            db3 = sorted(path.glob("*.db3"))
            if db3:
                raise SourceError(
                    f"{path}: SQLite3 bag ({db3[0].name}); only MCAP storage can be replayed "
                    "(record with `ros2 bag record -s mcap`, the default since ROS 2 Iron)"
                )
            raise SourceError(f"{path}: no .mcap file in this bag directory")
        return files
    if not path.exists():
        raise SourceError(f"{path}: no such bag file or directory")
    if path.suffix == ".db3":
        raise SourceError(f"{path}: SQLite3 bag; only MCAP storage can be replayed")
    if path.suffix != ".mcap":
        raise SourceError(f"{path}: not a ros2 bag (.mcap file or bag directory)")
    return [path]


def _quat_matrix(t: Any, q: Any) -> npt.NDArray[np.float64]:
    """4x4 from a geometry_msgs Transform (m, quaternion) with the translation in mm."""
    x, y, z, w = float(q.x), float(q.y), float(q.z), float(q.w)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not n > 0:
        raise ValueError("zero quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    m = np.eye(4)
    m[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    m[:3, 3] = (float(t.x) * 1000.0, float(t.y) * 1000.0, float(t.z) * 1000.0)
    return m


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * _NS + int(stamp.nanosec)


class RosbagSource(FrameSource):
    """Replays the frames (and ``/tf`` poses) of a ``ros2 bag`` in MCAP storage.

    Args:
        path: bag directory (``metadata.yaml`` + ``*.mcap``) or one ``.mcap`` file.
        topic: frames topic; ``""`` = the first ``us_interfaces/msg/Frame`` topic of the
            bag, else its first ``sensor_msgs/msg/Image`` topic.
        realtime / loop / speed: as :class:`~.recording.SequenceFileSource`.

    Delivered frames: pixels as recorded; ``host_timestamp_ns`` = the replay clock
    (CLOCK_REALTIME at the first read + recorded capture offset / speed), the recorded
    capture time in ``device_timestamp_ns``; spacing from ``us_interfaces/Frame``
    (``None`` for ``sensor_msgs/Image``). ``transforms``: the ``/tf`` samples recorded
    since the previous frame (their own stamps moved onto the replay clock) plus every
    ``/tf_static`` transform (``timestamp_ns`` = the frame's).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        topic: str = "",
        realtime: bool = True,
        loop: bool = False,
        speed: float = 1.0,
    ) -> None:
        super().__init__()
        self.path = _check_common(path, speed)
        self.topic = topic
        self.realtime = realtime
        self.loop = loop
        self.speed = float(speed)
        self._files: list[Path] = []
        self._kind = ""
        self._iter: Iterator[tuple[str, Any, int]] | None = None
        self._streams: list[Any] = []
        self._stop = threading.Event()
        self._pacer = _Pacer(realtime, self.speed, self._stop)
        self._closed = False
        self._first_capture: int | None = None  # capture ns of the bag's first frame
        self._last_capture = 0  # of the latest frame of the first pass
        self._frames_first_pass = 0
        self._loops = 0
        self._period_ns = 0  # one pass through the bag on the replay clock
        self._last_offset = 0
        self._pending_tf: list[TrackedTransform] = []
        self._static_tf: dict[tuple[str, str], TrackedTransform] = {}
        self._held: tuple[Any, int] | None = None  # a frame read but not yet due

    # -- FrameSource ----------------------------------------------------------------
    def open(self) -> SourceInfo:
        from mcap.exceptions import McapError
        from mcap.reader import make_reader

        self._files = _mcap_files(self.path)
        topics: dict[str, str] = {}
        counts: dict[str, int] = {}
        t_first = t_last = None
        try:
            for f in self._files:
                with f.open("rb") as fh:
                    summary = make_reader(fh).get_summary()
                if summary is None:
                    raise SourceError(f"{f}: MCAP file without a summary (recording cut short?)")
                for ch in summary.channels.values():
                    schema = summary.schemas.get(ch.schema_id)
                    topics[ch.topic] = schema.name if schema is not None else ""
                if summary.statistics is not None:
                    st = summary.statistics
                    for cid, n in st.channel_message_counts.items():
                        ch = summary.channels[cid]
                        counts[ch.topic] = counts.get(ch.topic, 0) + n
                    t_first = st.message_start_time if t_first is None else t_first
                    t_last = st.message_end_time
        except (McapError, OSError, ValueError, KeyError) as exc:
            raise SourceError(f"{self.path}: cannot read the bag: {exc}") from exc
        topic = self.topic or next(
            (t for t, ty in sorted(topics.items()) if ty == FRAME_TYPE),
            next((t for t, ty in sorted(topics.items()) if ty == IMAGE_TYPE), ""),
        )
        if not topic:
            listed = ", ".join(f"{t} [{ty}]" for t, ty in sorted(topics.items()))
            raise SourceError(
                f"{self.path}: no {FRAME_TYPE} or {IMAGE_TYPE} topic in the bag "
                f"(topics: {listed or 'none'})"
            )
        if topic not in topics:
            raise SourceError(f"{self.path}: no topic {topic!r} in the bag ({', '.join(topics)})")
        if topics[topic] not in (FRAME_TYPE, IMAGE_TYPE):
            raise SourceError(
                f"{self.path}: topic {topic} carries {topics[topic]}, not {FRAME_TYPE} or "
                f"{IMAGE_TYPE}"
            )
        self.topic, self._kind = topic, topics[topic]
        self._tf_topics = [t for t, ty in topics.items() if ty == TF_TYPE]
        first = self._first_frame()
        array, fmt, _, _ = self._pixels(first)
        n = counts.get(topic, 0)
        span_s = (t_last - t_first) / _NS if t_first is not None and t_last is not None else 0.0
        self._restart()
        return SourceInfo(
            width=int(array.shape[1]),
            height=int(array.shape[0]),
            pixel_format=fmt,
            nominal_fps=(n - 1) / span_s if n > 1 and span_s > 0 else 0.0,
            description=(
                f"ros2 bag {self.path.name}: {n} frames on {topic} ({self._kind}), "
                f"{array.shape[1]}x{array.shape[0]} {fmt.label}, tf from "
                f"{', '.join(self._tf_topics) or 'nowhere'}"
            ),
            transform_names=(),
            extra={
                "path": str(self.path),
                "topic": topic,
                "type": self._kind,
                "frames": n,
                "tf_topics": list(self._tf_topics),
                "realtime": self.realtime,
                "loop": self.loop,
                "speed": self.speed,
            },
        )

    def read(self, timeout_s: float) -> SourceFrame | None:
        if self._closed or not self._files:
            raise SourceError(f"{self.path}: source is not open")
        if self._held is None:
            self._held = self._next_frame()
        msg, capture_ns = self._held
        offset_ns = max(self._offset(capture_ns), self._last_offset)  # monotonic
        if not self._pacer.wait(offset_ns / _NS, timeout_s):
            if self._closed:
                raise SourceError(f"{self.path}: source was closed")
            return None
        self._held = None
        self._last_offset = offset_ns
        host_ns = self._pacer.host_ns(offset_ns / _NS)
        try:
            array, fmt, spacing, _ = self._pixels(msg)
        except SourceError:
            self.stats.errors += 1
            raise
        transforms = self._pending_tf
        self._pending_tf = []
        for t in transforms:  # recorded stamps -> the replay clock
            t.timestamp_ns = self._pacer.host_ns(self._offset(t.timestamp_ns) / _NS)
        for s in self._static_tf.values():
            transforms.append(
                TrackedTransform(s.from_frame, s.to_frame, s.matrix, True, host_ns, s.name)
            )
        self.stats.delivered += 1
        return SourceFrame(
            image=array,
            pixel_format=fmt,
            host_timestamp_ns=host_ns,
            device_timestamp_ns=capture_ns + self._loops * self._period_ns,
            transforms=transforms,
            spacing_mm=spacing,
        )

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        self._close_streams()

    # -- helpers --------------------------------------------------------------------
    def _close_streams(self) -> None:
        for s in self._streams:
            s.close()
        self._streams = []
        self._iter = None

    def _messages(self) -> Iterator[tuple[str, Any, int]]:
        """(topic, decoded message, log time ns) of the frames and TF topics, in order."""
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory

        wanted = [self.topic, *self._tf_topics]
        for f in self._files:
            fh = f.open("rb")
            self._streams.append(fh)
            reader = make_reader(fh, decoder_factories=[DecoderFactory()])
            for _, channel, message, decoded in reader.iter_decoded_messages(
                topics=wanted, log_time_order=True
            ):
                yield channel.topic, decoded, int(message.log_time)

    def _restart(self) -> None:
        self._close_streams()
        self._iter = self._messages()

    def _first_frame(self) -> Any:
        self._restart()
        assert self._iter is not None
        for topic, msg, _ in self._iter:
            if topic == self.topic:
                self._close_streams()
                return msg
        self._close_streams()
        raise SourceError(f"{self.path}: no message on {self.topic}")

    def _offset(self, capture_ns: int) -> int:
        """Recorded capture time -> ns after the first frame on the replay clock."""
        assert self._first_capture is not None
        return capture_ns - self._first_capture + self._loops * self._period_ns

    def _capture_ns(self, msg: Any, log_ns: int) -> int:
        if self._kind == FRAME_TYPE:
            return int(msg.ref.host_timestamp_ns) or _stamp_ns(msg.ref.header.stamp) or log_ns
        return _stamp_ns(msg.header.stamp) or log_ns

    def _next_frame(self) -> tuple[Any, int]:
        """The next frame message and its capture time (ns), collecting TF on the way."""
        from mcap.exceptions import McapError

        while True:
            if self._iter is None:
                self._restart()
            assert self._iter is not None
            try:
                topic, msg, log_ns = next(self._iter)
            except StopIteration:
                if not self.loop or self._first_capture is None:
                    self._close_streams()
                    raise EndOfStream(str(self.path)) from None
                if self._loops == 0:  # one pass = the recorded span + one frame interval
                    span = self._last_capture - self._first_capture
                    n = self._frames_first_pass
                    self._period_ns = span + (span // (n - 1) if n > 1 else _NS // 10)
                self._loops += 1
                self._pending_tf = []
                self._restart()
                continue
            except (McapError, OSError, ValueError) as exc:
                raise SourceError(f"{self.path}: corrupt bag: {exc}") from exc
            if topic != self.topic:
                self._take_tf(topic, msg)
                continue
            capture = self._capture_ns(msg, log_ns)
            if self._first_capture is None:
                self._first_capture = capture
            if self._loops == 0:
                self._last_capture = max(self._last_capture, capture)
                self._frames_first_pass += 1
            return msg, capture

    def _take_tf(self, topic: str, msg: Any) -> None:
        static = topic.endswith("tf_static")
        for ts in getattr(msg, "transforms", []):
            try:
                m = _quat_matrix(ts.transform.translation, ts.transform.rotation)
            except (ValueError, AttributeError):
                continue
            parent, child = str(ts.header.frame_id), str(ts.child_frame_id)
            t = TrackedTransform(
                from_frame=child,
                to_frame=parent,
                matrix=m,
                valid=True,
                timestamp_ns=_stamp_ns(ts.header.stamp),
                name=f"{child}To{parent}",
            )
            if static:
                self._static_tf[(parent, child)] = t
            else:
                self._pending_tf.append(t)
        if len(self._pending_tf) > 10_000:  # a bag with poses but no frames for a while
            del self._pending_tf[:-1000]

    def _pixels(
        self, msg: Any
    ) -> tuple[npt.NDArray[Any], PixelFormat, tuple[float, float] | None, int]:
        """(array, pixel format, spacing mm or None, seq) of a frame message."""
        if self._kind == FRAME_TYPE:
            from ..frame_topic import FrameTopicError, frame_from_msg

            try:
                array, info = frame_from_msg(msg)
            except FrameTopicError as exc:
                raise SourceError(f"{self.path}: {exc}") from exc
            x, y, w, h = info.roi
            if (w, h) != (info.width, info.height) and w and h:
                array = array[y : y + h, x : x + w]
            spacing = (info.spacing_x_mm, info.spacing_y_mm) if info.spacing_x_mm > 0 else None
            pf = info.pixel_format
            return array, PixelFormat.MONO8 if pf is PixelFormat.LABEL8 else pf, spacing, info.seq
        enc = str(msg.encoding)
        if enc not in _IMAGE_ENCODINGS:
            raise SourceError(f"{self.path}: image encoding {enc!r} cannot be replayed")
        fmt, dtype, ch = _IMAGE_ENCODINGS[enc]
        h, w, step = int(msg.height), int(msg.width), int(msg.step)
        row = w * ch * np.dtype(dtype).itemsize
        data = msg.data
        if step < row or len(data) < step * h:
            raise SourceError(f"{self.path}: image of {len(data)} bytes for {h} rows of {step}")
        raw = np.frombuffer(data, np.uint8, count=step * h).reshape(h, step)[:, :row]
        array = raw.view(dtype).reshape((h, w, ch) if ch > 1 else (h, w))
        if enc in ("rgb8", "rgba8"):
            array = array.copy()
            array[..., [0, 2]] = array[..., [2, 0]]
        return array, fmt, None, 0


# -- writing (tests, conversions) ---------------------------------------------------------
_PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}  # fmt: skip


def _msg_file(type_name: str) -> Path:
    pkg, _, name = type_name.replace("/msg/", "/").partition("/")
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        p = Path(prefix) / "share" / pkg / "msg" / f"{name}.msg"
        if p.is_file():
            return p
    raise FileNotFoundError(f"no .msg file for {type_name} on AMENT_PREFIX_PATH")


def _field_types(text: str, pkg: str) -> Iterable[str]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line:  # blank, or a constant
            continue
        t = re.sub(r"(\[.*\]|<=\d+)$", "", line.split()[0])
        if t in _PRIMITIVES or t.startswith(("string<", "wstring<")):
            continue
        yield t if "/" in t else f"{pkg}/{t}"


def message_definition(type_name: str) -> str:
    """The ``ros2msg`` schema text rosbag2 stores for ``type_name`` (``pkg/msg/Name``): the
    type's ``.msg`` followed by each type it uses (``MSG: pkg/Name`` sections)."""
    pkg = type_name.split("/")[0]
    top = _msg_file(type_name).read_text()
    parts, seen = [top], set()
    todo = list(_field_types(top, pkg))
    while todo:
        t = todo.pop(0)
        key = t.replace("/msg/", "/")
        if key in seen:
            continue
        seen.add(key)
        text = _msg_file(key).read_text()
        parts.append("=" * 80 + f"\nMSG: {key}\n" + text)
        todo += list(_field_types(text, key.split("/")[0]))
    return "\n".join(parts)


def write_bag(path: str | os.PathLike[str], messages: Iterable[tuple[str, str, Any, int]]) -> Path:
    """Write ``(topic, type, message, log_time_ns)`` to an MCAP file (rclpy messages or any
    objects with the same fields), with rosbag2's schema encoding (``ros2msg``) and CDR."""
    from mcap_ros2.writer import Writer

    out = Path(path)
    schemas: dict[str, Any] = {}
    with out.open("wb") as fh:
        w = Writer(fh)
        for topic, type_name, msg, t_ns in messages:
            if type_name not in schemas:
                schemas[type_name] = w.register_msgdef(type_name, message_definition(type_name))
            w.write_message(
                topic, schemas[type_name], _as_dict(msg), log_time=t_ns, publish_time=t_ns
            )
        w.finish()
    return out


def _as_dict(msg: Any) -> Any:
    """An rclpy message as the nested dicts / lists / bytes the MCAP writer encodes."""
    fields = getattr(msg, "get_fields_and_field_types", None)
    if fields is None:
        if isinstance(msg, list | tuple):
            return [_as_dict(v) for v in msg]
        if hasattr(msg, "tobytes"):  # array.array('B') / numpy
            return bytes(msg.tobytes())
        return msg
    return {name: _as_dict(getattr(msg, name)) for name in fields()}
