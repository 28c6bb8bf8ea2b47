"""GStreamer appsink capture source: Blackmagic DeckLink, UVC/V4L2 grabbers, test pattern.

One pipeline shape serves every device::

    <source> [! capsfilter] ! videoconvert ! video/x-raw,format=<F> ! appsink name=sink

* ``kind="decklink"``: ``decklinkvideosrc`` (Debian ``gstreamer1.0-plugins-bad``; needs the
  Blackmagic Desktop Video driver, i.e. ``libDeckLinkAPI.so``, and a card at run time);
* ``kind="v4l2"``: ``v4l2src`` (``gstreamer1.0-plugins-good``), UVC grabbers such as Epiphan
  or Magewell USB Capture;
* ``kind="test"``: ``videotestsrc is-live=true`` (``gstreamer1.0-plugins-base``), a real live
  pipeline for tests and a no-hardware check;
* ``kind="pipeline"``: the user's own launch string: either a source-side description
  producing raw video (``videoconvert ! video/x-raw,format=<F> ! appsink`` is appended), or
  a complete one containing an ``appsink`` (named ``sink``, or the only appsink), which then
  decides the pixel format and keeps its own ``sync`` setting.

``videoconvert`` is a pass-through when the device already delivers the requested format
(DeckLink 8-bit YUV -> ``uyvy``), so it costs nothing then.

Threading and the GIL: :meth:`GStreamerSource.read` waits in ``gst_app_sink_try_pull_sample``;
PyGObject releases the GIL for the duration of that C call, so other Python threads run while
the capture thread waits. GStreamer's own streaming thread never touches Python (no Python
signal handlers or pad probes are installed), and the appsink is set to ``drop=true`` with a
small ``max-buffers``, so a slow consumer never blocks the device: the oldest queued frame is
discarded instead.

Timestamps (see ``docs/capture-devices.md``):

* ``device_timestamp_ns``: the buffer PTS converted to running time plus the pipeline base
  time, i.e. the capture time on the pipeline clock. The pipeline is forced onto GStreamer's
  system clock, which is ``CLOCK_MONOTONIC``, so this is **CLOCK_MONOTONIC ns** of the capture
  as estimated by the source element (DeckLink: the hardware capture time mapped onto the
  clock; V4L2: the driver's buffer timestamp; videotestsrc: the nominal frame time).
  0 when the buffer has no PTS.
* ``host_timestamp_ns``: that capture instant expressed in ``CLOCK_REALTIME``: realtime at
  arrival minus the frame's age on the pipeline clock (``clock_now - device_timestamp``),
  both sampled back to back. Without a PTS it is CLOCK_REALTIME at arrival.

Drops (``stats.dropped``): frames that the device, the source element or the appsink lost
between two delivered frames, counted from gaps in the delivered sequence: the buffer offset
(frame / V4L2 sequence number) where the source sets one (videotestsrc, v4l2src), otherwise
the PTS step divided by the frame duration (DeckLink, user pipelines), rounded. Frames lost
before the first delivered frame and frames skipped for having no input signal are not in
``dropped`` (the latter are in :attr:`GStreamerSource.no_signal_frames`). Drop reports that
elements post on the bus (QoS messages of v4l2src / decklinkvideosrc, decklink "Dropped N old
frames" warnings) are counted in :attr:`GStreamerSource.drop_reports` for diagnosis; they
describe the same losses, so they are not added again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import stat
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from us_frame_channel.layout import PIXEL_LAYOUTS

from us_frame_channel import PixelFormat

from .base import EndOfStream, FrameSource, SourceError, SourceFrame, SourceInfo

#: pip/apt commands that provide the bindings (Debian 12, CPython 3.11 venv).
BINDINGS_HINT = (
    "GStreamer Python bindings are missing: apt-get install gir1.2-gstreamer-1.0 "
    "gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base libgirepository1.0-dev "
    "libcairo2-dev pkg-config gcc, then pip install PyGObject==3.50.2 pycairo==1.29.2"
)

KINDS = ("decklink", "v4l2", "test", "pipeline")

#: project pixel format -> GStreamer raw video format name
GST_FORMATS: dict[PixelFormat, str] = {
    PixelFormat.UYVY: "UYVY",
    PixelFormat.BGRA8: "BGRA",
    PixelFormat.BGR8: "BGR",
    PixelFormat.MONO8: "GRAY8",
    PixelFormat.MONO16: "GRAY16_LE",
}
_FROM_GST = {name: fmt for fmt, name in GST_FORMATS.items()}

#: decklinkvideosrc ``video-format`` delivering each pixel format without conversion
_DECKLINK_NATIVE = {PixelFormat.UYVY: "8bit-yuv", PixelFormat.BGRA8: "8bit-bgra"}

#: element -> Debian package that ships it
_ELEMENT_PACKAGES = {
    "decklinkvideosrc": "gstreamer1.0-plugins-bad",
    "v4l2src": "gstreamer1.0-plugins-good",
    "videotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "capsfilter": "libgstreamer1.0-0",
}

_UNSUPPORTED_FORMATS = {
    "v210": "v210 / DeckLink 10bit-yuv is not supported: the frame channel has no packed "
    "10-bit format; use pixel_format=uyvy (DeckLink 8bit-yuv)",
    "10bit-yuv": "DeckLink 10bit-yuv (v210) is not supported: use pixel_format=uyvy",
    "8bit-argb": "DeckLink 8bit-argb is not supported: use pixel_format=bgra8 (8bit-bgra)",
}

_gst_lock = threading.Lock()
_gst_modules: tuple[Any, Any, Any] | None = None


def _pin_gcc_unwinder() -> None:
    """Put libgcc_s's C++ unwinder into the global symbol scope before GStreamer loads.

    Debian's libgstreamer links libunwind, and GObject introspection opens it with
    RTLD_GLOBAL, so its ``_Unwind_Resume`` interposes for every library loaded later. A C++
    library loaded after GStreamer that throws (Fast DDS does while opening its shared
    memory, i.e. at the first ``rclpy.create_node``) then aborts inside libunwind
    (measured: SIGABRT from ``__libunwind_Unwind_Resume``). Loading libgcc_s globally first
    keeps the GCC unwinder in front. Harmless when rclpy was loaded first.
    """
    name = ctypes.util.find_library("gcc_s") or "libgcc_s.so.1"
    with contextlib.suppress(OSError):
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)


def load_gstreamer() -> tuple[Any, Any, Any]:
    """Import and initialise GStreamer once; return ``(Gst, GstVideo, GLib)``.

    Raises :class:`SourceError` with install instructions when the bindings are missing.
    """
    global _gst_modules
    with _gst_lock:
        if _gst_modules is None:
            _pin_gcc_unwinder()
            try:
                import gi

                gi.require_version("Gst", "1.0")
                gi.require_version("GstApp", "1.0")
                gi.require_version("GstVideo", "1.0")
                from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: F401
            except (ImportError, ValueError) as exc:
                raise SourceError(f"{BINDINGS_HINT} ({exc})") from exc
            Gst.init(None)
            _gst_modules = (Gst, GstVideo, GLib)
        return _gst_modules


def gstreamer_available() -> bool:
    """True when the GStreamer bindings import (no exception)."""
    try:
        load_gstreamer()
    except SourceError:
        return False
    return True


@dataclass(frozen=True)
class GStreamerConfig:
    """What to capture. Strings so that ROS parameters map onto it directly."""

    #: ``decklink`` | ``v4l2`` | ``test`` | ``pipeline``
    kind: str = "test"
    #: decklink: device number (``0``, ``"1"``); v4l2: device path (``/dev/video0``)
    device: str | int = ""
    #: decklink input connector: auto, sdi, hdmi, optical-sdi, component, composite, svideo
    connection: str = "auto"
    #: decklink video mode: ``auto`` (format detection) or e.g. ``1080p60``, ``1080p5994``
    mode: str = "auto"
    #: uyvy (DeckLink 8bit-yuv), bgra8 (8bit-bgra), bgr8, mono8, mono16 (via videoconvert)
    pixel_format: str = "uyvy"
    #: decklink ``video-format``; empty = auto with mode=auto, else the native one for
    #: pixel_format (8bit-yuv for uyvy/mono8/bgr8/mono16, 8bit-bgra for bgra8)
    decklink_video_format: str = ""
    #: test/v4l2 frame size, px (0 = the device's default; test: 640 x 480)
    width: int = 0
    height: int = 0
    #: test/v4l2 frame rate, frames / s (0 = the device's default; test: 30)
    fps: float = 0.0
    #: kind=pipeline: gst-launch syntax with an appsink, e.g.
    #: ``"filesrc location=a.mkv ! decodebin ! videoconvert ! appsink name=sink"``
    pipeline: str = ""
    #: frames the appsink queues before dropping the oldest (>= 1)
    max_buffers: int = 2
    #: bound on :meth:`GStreamerSource.open` waiting for the first frame, s
    open_timeout_s: float = 2.0
    #: decklink: drop frames flagged "no input source" inside decklinkvideosrc
    drop_no_signal_frames: bool = True
    #: test: videotestsrc pattern (smpte, ball, snow, gradient, ...)
    test_pattern: str = "smpte"

    #: appsink ``sync`` for the appsinks this module adds (False = deliver on arrival);
    #: an appsink written in a ``pipeline`` string keeps its own setting
    sync: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GStreamerConfig:
        """Build from a mapping (e.g. ROS parameters); unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GStreamer source option(s): {', '.join(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class _Geometry:
    width: int  # px
    height: int  # px
    pixel_format: PixelFormat
    stride: int  # bytes per row
    offset: int  # bytes to the first pixel
    fps: float  # frames / s, 0 = unknown
    frame_ns: int  # nominal frame duration, ns, 0 = unknown


def _fps_fraction(fps: float) -> str:
    """``30`` -> ``"30/1"``, ``59.94`` -> ``"60000/1001"``."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if abs(fps - round(fps)) < 1e-6:
        return f"{round(fps)}/1"
    ntsc = fps * 1.001
    if abs(ntsc - round(ntsc)) < 1e-3:
        return f"{round(ntsc) * 1000}/1001"
    num = round(fps * 1000)
    return f"{num}/1000"


def _decklink_driver_present() -> bool:
    """True when ``libDeckLinkAPI.so`` (Blackmagic Desktop Video) can be loaded."""
    name = ctypes.util.find_library("DeckLinkAPI") or "libDeckLinkAPI.so"
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


class GStreamerSource(FrameSource):
    """Live capture through a GStreamer pipeline ending in an ``appsink``.

    ``image`` of each frame is a read-only numpy array over a private copy of the buffer
    (one memcpy per frame, ~1 ms for 1080p UYVY), with the row stride of the buffer's
    GstVideoMeta or caps; ``uyvy`` is ``(H, W, 2)`` uint8. Caps changes (the scanner switches
    resolution or the DeckLink detects a new mode) are followed: later frames carry the new
    geometry, :attr:`info` is updated and :attr:`caps_changes` incremented.
    """

    def __init__(self, config: GStreamerConfig | None = None) -> None:
        super().__init__()
        self.config = config or GStreamerConfig()
        self._pipeline: Any = None
        self._sink: Any = None
        self._src: Any = None
        self._bus: Any = None
        self._clock: Any = None
        self._pending: Any = None  # first sample pulled by open()
        self._caps: Any = None
        self._geometry: _Geometry | None = None
        self._info: SourceInfo | None = None
        self._last_offset: int | None = None
        self._last_pts: int | None = None
        self._launch = ""
        self._own_sink = True  # the appsink is ours (not written in a user pipeline string)
        #: times the delivered caps (geometry or format) changed after open
        self.caps_changes = 0
        #: frames skipped because they carried no input signal (GAP flag)
        self.no_signal_frames = 0
        #: drop reports posted on the bus (QoS messages, decklink "Dropped" warnings)
        self.drop_reports = 0
        #: last warning text posted on the bus, for diagnostics
        self.last_warning = ""

    #: acquisition-node ``source`` parameter -> :attr:`GStreamerConfig.kind`
    NODE_KINDS: ClassVar[dict[str, str]] = {
        "decklink": "decklink",
        "v4l2": "v4l2",
        "gst_test": "test",
        "gst_pipeline": "pipeline",
    }

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> GStreamerSource:
        """Build from the acquisition node's parameters (``us_acquisition.params``).

        Uses ``source`` (decklink | v4l2 | gst_test | gst_pipeline), ``device``,
        ``decklink_connection``, ``video_mode``, ``pixel_format``, ``width``/``height``/``fps``
        (gst_test and v4l2 only) and ``gst_pipeline``.
        """
        source = str(p.get("source", "gst_test"))
        kind = cls.NODE_KINDS.get(source)
        if kind is None:
            raise SourceError(f"source {source!r} is not a GStreamer source")
        sized = kind in ("test", "v4l2")
        config = GStreamerConfig(
            kind=kind,
            device=p.get("device", ""),
            connection=str(p.get("decklink_connection", "auto")),
            mode=str(p.get("video_mode", "auto")),
            pixel_format=str(p.get("pixel_format", "uyvy")),
            width=int(p.get("width", 0)) if sized else 0,
            height=int(p.get("height", 0)) if sized else 0,
            fps=float(p.get("fps", 0.0)) if sized else 0.0,
            pipeline=str(p.get("gst_pipeline", "")),
        )
        return cls(config)

    # ------------------------------------------------------------------ properties
    @property
    def info(self) -> SourceInfo:
        """What the source delivers now (updated on caps changes)."""
        if self._info is None:
            raise SourceError("GStreamer source is not open")
        return self._info

    @property
    def launch_string(self) -> str:
        """The gst-launch description of the pipeline (after :meth:`open`)."""
        return self._launch

    @property
    def is_open(self) -> bool:
        return self._pipeline is not None

    # ------------------------------------------------------------------ pipeline text
    def _pixel_format(self) -> PixelFormat:
        name = str(self.config.pixel_format).strip().lower()
        if name in _UNSUPPORTED_FORMATS:
            raise SourceError(_UNSUPPORTED_FORMATS[name])
        try:
            fmt = PixelFormat.parse(name)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if fmt not in GST_FORMATS:
            ok = ", ".join(f.label for f in GST_FORMATS)
            raise SourceError(f"pixel_format {fmt.label} cannot be captured; use one of {ok}")
        return fmt

    def _decklink_device_number(self) -> int:
        dev = self.config.device
        if dev in ("", None):
            return 0
        try:
            number = int(dev)
        except (TypeError, ValueError):
            raise SourceError(
                f"decklink device must be a device number (0, 1, ...), got {dev!r}"
            ) from None
        if number < 0:
            raise SourceError(f"decklink device number must be >= 0, got {number}")
        return number

    def _v4l2_device(self) -> str:
        dev = str(self.config.device or "/dev/video0")
        if not os.path.exists(dev):
            raise SourceError(
                f"v4l2 device {dev} does not exist: is the grabber plugged in? "
                "List devices with `v4l2-ctl --list-devices` (apt-get install v4l-utils)"
            )
        if not stat.S_ISCHR(os.stat(dev).st_mode):
            raise SourceError(f"v4l2 device {dev} is not a character device")
        if not os.access(dev, os.R_OK | os.W_OK):
            raise SourceError(f"no permission to open {dev}: add the user to group 'video'")
        return dev

    def _raw_caps(self, default_w: int, default_h: int, default_fps: float) -> str:
        cfg = self.config
        parts = ["video/x-raw"]
        width = cfg.width or default_w
        height = cfg.height or default_h
        fps = cfg.fps or default_fps
        if width < 0 or height < 0:
            raise SourceError(f"width/height must be >= 0, got {cfg.width} x {cfg.height}")
        if width:
            parts.append(f"width={int(width)}")
        if height:
            parts.append(f"height={int(height)}")
        if fps:
            try:
                parts.append(f"framerate={_fps_fraction(float(fps))}")
            except ValueError as exc:
                raise SourceError(str(exc)) from None
        return ",".join(parts)

    def _check_elements(self, Gst: Any, names: list[str]) -> None:
        for name in names:
            if Gst.ElementFactory.find(name) is None:
                package = _ELEMENT_PACKAGES.get(name, "the GStreamer plugin package")
                raise SourceError(f"GStreamer element {name} is missing: apt-get install {package}")

    def _build_launch(self, Gst: Any, fmt: PixelFormat) -> str:
        cfg = self.config
        kind = str(cfg.kind).strip().lower()
        self._own_sink = True
        tail = f"videoconvert ! video/x-raw,format={GST_FORMATS[fmt]} ! appsink name=sink"
        if kind == "test":
            self._check_elements(Gst, ["videotestsrc", "videoconvert", "appsink"])
            pattern = str(cfg.test_pattern).replace(" ", "")
            caps = self._raw_caps(640, 480, 30.0)
            return f"videotestsrc name=src is-live=true pattern={pattern} ! {caps} ! {tail}"
        if kind == "v4l2":
            self._check_elements(Gst, ["v4l2src", "videoconvert", "appsink"])
            dev = self._v4l2_device()
            caps = self._raw_caps(0, 0, 0.0)
            return f'v4l2src name=src device="{dev}" ! {caps} ! {tail}'
        if kind == "decklink":
            self._check_elements(Gst, ["decklinkvideosrc", "videoconvert", "appsink"])
            number = self._decklink_device_number()
            mode = str(cfg.mode).strip().lower() or "auto"
            video_format = str(cfg.decklink_video_format).strip().lower()
            if video_format in _UNSUPPORTED_FORMATS:
                raise SourceError(_UNSUPPORTED_FORMATS[video_format])
            if not video_format:
                video_format = "auto" if mode == "auto" else _DECKLINK_NATIVE.get(fmt, "8bit-yuv")
            self._check_enum(Gst, "decklinkvideosrc", "mode", mode)
            self._check_enum(Gst, "decklinkvideosrc", "connection", cfg.connection)
            self._check_enum(Gst, "decklinkvideosrc", "video-format", video_format)
            if not _decklink_driver_present():
                raise SourceError(
                    f"no DeckLink device {number}: the Blackmagic Desktop Video driver is not "
                    "installed (libDeckLinkAPI.so not found). Install Desktop Video from "
                    "Blackmagic Design and check the card with `BlackmagicFirmwareUpdater status`"
                )
            drop = "true" if cfg.drop_no_signal_frames else "false"
            src = (
                f"decklinkvideosrc name=src device-number={number} "
                f"connection={cfg.connection} mode={mode} video-format={video_format} "
                f"drop-no-signal-frames={drop}"
            )
            return f"{src} ! {tail}"
        if kind == "pipeline":
            text = str(cfg.pipeline).strip()
            if not text:
                raise SourceError("kind=pipeline needs a launch string in 'pipeline'")
            if "appsink" not in text:
                # a source-side description only: append the conversion and our appsink
                self._check_elements(Gst, ["videoconvert", "appsink"])
                return f"{text} ! {tail}"
            self._own_sink = False
            return text
        raise SourceError(f"unknown GStreamer source kind {cfg.kind!r}; use one of {KINDS}")

    def _check_enum(self, Gst: Any, factory: str, prop: str, value: str) -> None:
        """Raise SourceError when ``value`` is not a nick of the element's enum ``prop``."""
        element = Gst.ElementFactory.make(factory, None)
        if element is None:
            return
        default = element.get_property(prop)
        values = getattr(type(default), "__enum_values__", None)
        if not values:
            return
        nicks = [v.value_nick for v in values.values()]
        if str(value) not in nicks:
            raise SourceError(f"{factory} {prop}={value!r} is invalid; valid: {', '.join(nicks)}")

    # ------------------------------------------------------------------ open / close
    def open(self) -> SourceInfo:
        """Build the pipeline, start it and wait (<= ``open_timeout_s``) for the first frame."""
        if self._pipeline is not None:
            return self.info
        Gst, _, GLib = load_gstreamer()
        fmt = self._pixel_format()
        launch = self._build_launch(Gst, fmt)
        self._launch = launch
        try:
            pipeline = Gst.parse_launch(launch)
        except GLib.Error as exc:
            raise SourceError(f"invalid GStreamer pipeline ({exc.message}): {launch}") from None
        if not isinstance(pipeline, Gst.Pipeline):
            wrapper = Gst.Pipeline.new(None)
            wrapper.add(pipeline)
            pipeline = wrapper
        sink = pipeline.get_by_name("sink")
        if sink is None or sink.get_factory().get_name() != "appsink":
            sink = self._find_appsink(Gst, pipeline)
        if sink is None:
            pipeline.set_state(Gst.State.NULL)
            raise SourceError(
                f"no appsink to read in the pipeline (none, or several: name one 'sink'): {launch}"
            )
        sink.set_property("max-buffers", max(1, int(self.config.max_buffers)))
        sink.set_property("drop", True)
        sink.set_property("emit-signals", False)
        if self._own_sink:
            sink.set_property("sync", bool(self.config.sync))
        sink.set_property("enable-last-sample", False)
        # force CLOCK_MONOTONIC so device_timestamp_ns has one documented meaning
        clock = Gst.SystemClock.obtain()
        with contextlib.suppress(TypeError):
            clock.set_property("clock-type", Gst.ClockType.MONOTONIC)
        pipeline.use_clock(clock)
        self._pipeline = pipeline
        self._sink = sink
        self._src = pipeline.get_by_name("src")
        self._bus = pipeline.get_bus()
        self._clock = clock
        try:
            self._start(Gst, fmt)
        except BaseException:
            self.close()
            raise
        assert self._info is not None
        return self._info

    def _find_appsink(self, Gst: Any, pipeline: Any) -> Any:
        found = None
        it = pipeline.iterate_recurse()
        while True:
            res, element = it.next()
            if res != Gst.IteratorResult.OK:
                break
            factory = element.get_factory()
            if factory is not None and factory.get_name() == "appsink":
                if found is not None:
                    return None  # ambiguous: the user must name one 'sink'
                found = element
        return found

    def _start(self, Gst: Any, fmt: PixelFormat) -> None:
        ret = self._pipeline.set_state(Gst.State.PLAYING)
        if ret == Gst.StateChangeReturn.FAILURE:
            raise SourceError(self._explain_failure(Gst, "could not start the pipeline"))
        deadline = time.monotonic() + max(0.05, float(self.config.open_timeout_s))
        sample = None
        while sample is None:
            self._poll_bus(Gst, raise_errors=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sample = self._sink.try_pull_sample(int(min(remaining, 0.05) * Gst.SECOND))
            if sample is None and self._sink.is_eos():
                self._poll_bus(Gst, raise_errors=True)
                raise SourceError(f"the pipeline ended before its first frame: {self._launch}")
        if sample is None:
            raise SourceError(self._explain_timeout())
        self._pending = sample
        self._update_geometry(sample.get_caps())

    def _explain_failure(self, Gst: Any, what: str) -> str:
        errors = self._drain_errors(Gst)
        kind = str(self.config.kind).strip().lower()
        detail = "; ".join(errors)
        if kind == "decklink" and not errors:
            number = self._decklink_device_number()
            return (
                f"no DeckLink device {number}: is Blackmagic Desktop Video installed and a "
                "card present? (decklinkvideosrc could not acquire the input; check "
                "`BlackmagicFirmwareUpdater status` and that no other program uses it)"
            )
        if kind == "v4l2" and "not-negotiated" in detail.lower():
            return (
                f"{self.config.device}: the grabber cannot deliver the requested size/rate "
                f"({self._raw_caps(0, 0, 0.0)}); list modes with `v4l2-ctl --list-formats-ext "
                f"-d {self.config.device}` ({detail})"
            )
        if kind == "v4l2":
            return f"v4l2 device {self.config.device}: {detail or what}"
        if "not-negotiated" in detail.lower() or "not negotiated" in detail.lower():
            return (
                f"{what}: caps negotiation failed, the source cannot deliver "
                f"{self.config.pixel_format}/size/rate ({detail})"
            )
        return f"{what}: {detail or 'no error message'} [{self._launch}]"

    def _explain_timeout(self) -> str:
        timeout = float(self.config.open_timeout_s)
        kind = str(self.config.kind).strip().lower()
        if kind == "decklink" and self._src is not None:
            signal = False
            with contextlib.suppress(Exception):
                signal = bool(self._src.get_property("signal"))
            if not signal:
                return (
                    f"DeckLink device {self._decklink_device_number()} has no input signal "
                    f"within {timeout:g} s (connection={self.config.connection}, "
                    f"mode={self.config.mode}): is the scanner's video output connected and on?"
                )
        return f"no frame within {timeout:g} s from: {self._launch}"

    def _drain_errors(self, Gst: Any) -> list[str]:
        out: list[str] = []
        if self._bus is None:
            return out
        while True:
            msg = self._bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is None:
                return out
            err, debug = msg.parse_error()
            origin = msg.src.get_name() if msg.src is not None else "?"
            text = f"{origin}: {err.message}"
            if debug:
                text += f" ({debug.splitlines()[-1].strip()})"
            out.append(text)

    def _poll_bus(self, Gst: Any, raise_errors: bool) -> None:
        """Handle pending bus messages; errors raise SourceError when ``raise_errors``."""
        if self._bus is None:
            return
        types = Gst.MessageType.ERROR | Gst.MessageType.WARNING | Gst.MessageType.QOS
        while True:
            msg = self._bus.pop_filtered(types)
            if msg is None:
                return
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                origin = msg.src.get_name() if msg.src is not None else "?"
                self.stats.errors += 1
                text = f"{origin}: {err.message}"
                if debug:
                    text += f" ({debug.splitlines()[-1].strip()})"
                if raise_errors:
                    if "not-negotiated" in text.lower() or "not negotiated" in text.lower():
                        raise SourceError(self._negotiation_message(text))
                    if "Cannot identify device" in text or "Could not open device" in text:
                        raise SourceError(f"v4l2 device {self.config.device}: {text}")
                    raise SourceError(f"GStreamer pipeline error: {text}")
            elif msg.type == Gst.MessageType.WARNING:
                warn, _debug = msg.parse_warning()
                self.last_warning = str(warn.message)
                if "dropped" in self.last_warning.lower():
                    self.drop_reports += 1
            elif msg.type == Gst.MessageType.QOS:
                self.drop_reports += 1

    def _negotiation_message(self, text: str) -> str:
        return (
            f"caps negotiation failed: the source cannot deliver pixel_format="
            f"{self.config.pixel_format} at the requested size/rate ({text})"
        )

    def close(self) -> None:
        """Stop the pipeline (state NULL) and drop every reference. Idempotent."""
        pipeline = self._pipeline
        self._pipeline = None
        self._pending = None
        self._sink = None
        self._src = None
        self._caps = None
        self._clock = None
        if pipeline is not None:
            Gst, _, _ = load_gstreamer()
            pipeline.set_state(Gst.State.NULL)
            pipeline.get_state(2 * Gst.SECOND)
        self._bus = None

    # ------------------------------------------------------------------ frames
    def read(self, timeout_s: float) -> SourceFrame | None:
        """The next frame; None when none arrived within ``timeout_s`` seconds.

        Raises :class:`SourceError` on a pipeline error and :class:`EndOfStream` when a
        finite user pipeline has ended.
        """
        sink = self._sink
        if self._pipeline is None or sink is None:
            raise SourceError("GStreamer source is not open")
        Gst, _, _ = load_gstreamer()
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        while True:
            if self._pending is not None:
                sample, self._pending = self._pending, None
            else:
                self._poll_bus(Gst, raise_errors=True)
                remaining = max(0.0, deadline - time.monotonic())
                # GIL released while waiting; close() from another thread wakes it (flush)
                sample = sink.try_pull_sample(int(remaining * Gst.SECOND))
                if sample is None:
                    if self._pipeline is None:
                        return None  # closed while waiting
                    self._poll_bus(Gst, raise_errors=True)
                    if sink.is_eos():
                        raise EndOfStream()
                    return None
            if self._pipeline is None:
                return None
            frame = self._to_frame(Gst, sample)
            if frame is not None:
                return frame
            if time.monotonic() >= deadline:
                return None

    def _update_geometry(self, caps: Any) -> _Geometry:
        if self._caps is not None and self._geometry is not None and caps.is_equal(self._caps):
            return self._geometry
        _, GstVideo, _ = load_gstreamer()
        vinfo = GstVideo.VideoInfo.new_from_caps(caps)
        if vinfo is None:
            raise SourceError(f"not raw video caps: {caps.to_string()}")
        gst_name = GstVideo.VideoFormat.to_string(vinfo.finfo.format)
        fmt = _FROM_GST.get(gst_name)
        if fmt is None:
            ok = ", ".join(sorted(_FROM_GST))
            raise SourceError(
                f"the pipeline delivers {gst_name}; end it with videoconvert ! "
                f"video/x-raw,format=<one of {ok}> ! appsink name=sink"
            )
        fps = vinfo.fps_n / vinfo.fps_d if vinfo.fps_n > 0 and vinfo.fps_d > 0 else 0.0
        frame_ns = round(1e9 / fps) if fps > 0 else 0
        geometry = _Geometry(
            width=int(vinfo.width),
            height=int(vinfo.height),
            pixel_format=fmt,
            stride=int(vinfo.stride[0]),
            offset=int(vinfo.offset[0]),
            fps=fps,
            frame_ns=frame_ns,
        )
        if self._geometry is not None and geometry != self._geometry:
            self.caps_changes += 1
            # a new mode restarts numbering/timing: do not count the jump as drops
            self._last_offset = None
            self._last_pts = None
        self._caps = caps
        self._geometry = geometry
        self._info = SourceInfo(
            width=geometry.width,
            height=geometry.height,
            pixel_format=fmt,
            nominal_fps=fps,
            description=self._describe(geometry, gst_name),
            extra={
                "kind": str(self.config.kind),
                "gst_caps": caps.to_string(),
                "gst_pipeline": self._launch,
                "device_clock": "CLOCK_MONOTONIC",
            },
        )
        return geometry

    def _describe(self, g: _Geometry, gst_name: str) -> str:
        kind = str(self.config.kind).strip().lower()
        rate = f"{g.fps:.4g} fps" if g.fps else "variable rate"
        if kind == "decklink":
            head = f"DeckLink {self._decklink_device_number()} ({self.config.connection})"
        elif kind == "v4l2":
            head = f"V4L2 {self.config.device or '/dev/video0'}"
        elif kind == "test":
            head = f"GStreamer videotestsrc ({self.config.test_pattern})"
        else:
            head = "GStreamer pipeline"
        return f"{head}, {g.width}x{g.height} {rate}, {gst_name}"

    def _count_drops(self, buf: Any, pts: int | None, g: _Geometry) -> None:
        offset = int(buf.offset)
        offset_valid = offset != 0xFFFFFFFFFFFFFFFF  # GST_BUFFER_OFFSET_NONE
        kind = str(self.config.kind).strip().lower()
        gap = 0
        if kind in ("test", "v4l2") and offset_valid and self._last_offset is not None:
            gap = offset - self._last_offset - 1
        elif pts is not None and self._last_pts is not None:
            duration = int(buf.duration)
            if duration <= 0 or duration == 0xFFFFFFFFFFFFFFFF:
                duration = g.frame_ns
            if duration > 0:
                gap = round((pts - self._last_pts) / duration) - 1
        if gap > 0:
            self.stats.dropped += gap
        self._last_offset = offset if offset_valid else None
        self._last_pts = pts

    def _to_frame(self, Gst: Any, sample: Any) -> SourceFrame | None:
        pipeline, clock = self._pipeline, self._clock
        if pipeline is None or clock is None:
            return None
        clock_now = int(clock.get_time())
        arrival_rt = time.time_ns()
        buf = sample.get_buffer()
        caps = sample.get_caps()
        if buf is None or caps is None:
            return None
        g = self._update_geometry(caps)
        if buf.has_flags(Gst.BufferFlags.GAP):
            self.no_signal_frames += 1
            return None
        pts_raw = int(buf.pts)
        pts: int | None = None
        device_ns = 0
        host_ns = arrival_rt
        if pts_raw != Gst.CLOCK_TIME_NONE:
            pts = pts_raw
            segment = sample.get_segment()
            running = pts_raw
            if segment is not None:
                rt = segment.to_running_time(Gst.Format.TIME, pts_raw)
                if rt != Gst.CLOCK_TIME_NONE:
                    running = int(rt)
            device_ns = running + int(pipeline.get_base_time())
            host_ns = arrival_rt - max(0, clock_now - device_ns)
        self._count_drops(buf, pts, g)
        image = self._buffer_to_array(buf, g)
        self.stats.delivered += 1
        return SourceFrame(
            image=image,
            pixel_format=g.pixel_format,
            host_timestamp_ns=host_ns,
            device_timestamp_ns=device_ns,
        )

    def _buffer_to_array(self, buf: Any, g: _Geometry) -> npt.NDArray[Any]:
        _, GstVideo, _ = load_gstreamer()
        stride, offset = g.stride, g.offset
        meta = GstVideo.buffer_get_video_meta(buf)
        if meta is not None:
            stride = int(meta.stride[0])
            offset = int(meta.offset[0])
        layout = PIXEL_LAYOUTS[g.pixel_format]
        row_bytes = g.width * layout.bytes_per_pixel
        needed = offset + (g.height - 1) * stride + row_bytes
        size = int(buf.get_size())
        if needed > size or stride < row_bytes:
            self.stats.errors += 1
            raise SourceError(
                f"buffer of {size} B too small for {g.width}x{g.height} "
                f"{g.pixel_format.label} with stride {stride} B"
            )
        data = buf.extract_dup(0, size)
        if layout.channels == 1:
            shape: tuple[int, ...] = (g.height, g.width)
            strides: tuple[int, ...] = (stride, layout.dtype.itemsize)
        else:
            shape = (g.height, g.width, layout.channels)
            strides = (stride, layout.bytes_per_pixel, layout.dtype.itemsize)
        return _strided_view(data, offset, shape, strides, layout.dtype)


def _strided_view(
    data: bytes,
    offset: int,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    dtype: np.dtype[Any],
) -> npt.NDArray[Any]:
    """A read-only ``shape``/``strides`` view of ``data`` starting at byte ``offset``."""
    return np.ndarray(shape=shape, dtype=dtype, buffer=data, offset=offset, strides=strides)


__all__ = [
    "GST_FORMATS",
    "KINDS",
    "GStreamerConfig",
    "GStreamerSource",
    "gstreamer_available",
    "load_gstreamer",
]
