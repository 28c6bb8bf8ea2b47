"""Live segmentation from a frame input into a mask channel (no rclpy).

:class:`LiveSegmenter` owns one worker thread:

    frame input (newest only) -> grey ROI copy -> model -> post-processing
        -> label8 mask channel (header: source frame's seq, epoch, timestamps, ROI, spacing)
        -> ``on_result(MaskResult)``

The input is a local shared-memory channel (:class:`ChannelInput`, latest mode) or frames
that arrive by callback, e.g. from a ROS topic on another host (:class:`TopicInput`).
It never queues: the input hands over only the newest frame, so a model slower than the
frame rate skips frames (counted in :attr:`LiveStats.skipped`) and the latency stays one
inference long. A producer that restarts or goes silent is re-opened by itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from us_frame_channel.imageops import grey_roi
from us_frame_channel.latest import LatestMailbox
from us_frame_channel.layout import FrameInfo

from us_frame_channel import ChannelConfig, ChannelError, FrameReader, FrameWriter, PixelFormat

from .inference import SegmentationResult


class SegmenterLike(Protocol):
    """What :class:`LiveSegmenter` needs of a model (``us_segmentation.inference.Segmenter``)."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    def segment(
        self,
        frame: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        smoother: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> SegmentationResult: ...


class TemporalSmoother:
    """Exponential moving average of class probabilities across consecutive frames.

    ``p_out = w * p_now + (1 - w) * p_prev_out`` at the model's resolution, with
    ``w = current_weight``. The output belongs to the current frame and is available as
    soon as the current frame is segmented: smoothing never delays a mask. The state is
    reset (the frame passes unchanged) when the probability shape changes, the producer
    restarts (``key`` changes) or consecutive frames are more than ``max_gap_ms`` apart,
    so a pause or a jump in the sweep does not blend unrelated anatomy.
    ``current_weight = 1`` turns smoothing off.
    """

    def __init__(self, current_weight: float = 0.7, max_gap_ms: float = 150.0) -> None:
        if not 0.0 < current_weight <= 1.0:
            raise ValueError(f"current_weight must be in (0, 1], got {current_weight}")
        if max_gap_ms <= 0:
            raise ValueError(f"max_gap_ms must be > 0, got {max_gap_ms}")
        self.current_weight = current_weight
        self.max_gap_ns = int(max_gap_ms * 1e6)
        self._prev: NDArray[np.float32] | None = None
        self._prev_stamp_ns = 0
        self._key: object = None
        self.resets = 0

    def reset(self) -> None:
        self._prev = None

    def __call__(self, probs: np.ndarray, stamp_ns: int, key: object = None) -> np.ndarray:
        """Filter ``(C, h, w)`` float32 probabilities of the frame captured at ``stamp_ns``."""
        p = np.asarray(probs, dtype=np.float32)
        prev = self._prev
        fresh = (
            prev is None
            or prev.shape != p.shape
            or key != self._key
            or not 0 <= stamp_ns - self._prev_stamp_ns <= self.max_gap_ns
        )
        if fresh:
            if prev is not None:
                self.resets += 1
            out = p.copy()
        else:
            assert prev is not None
            w = self.current_weight
            out = w * p + (1.0 - w) * prev
        self._prev, self._prev_stamp_ns, self._key = out, stamp_ns, key
        return out


@dataclass
class MaskResult:
    """One mask written to the mask channel, with what the node reports about it.

    Times: ``host_timestamp_ns`` is the source frame's capture time (CLOCK_REALTIME);
    ``latency_ms`` is frame published -> mask published (CLOCK_MONOTONIC, same host)."""

    seq: int  # mask channel seq
    source_seq: int
    source_epoch: int
    host_timestamp_ns: int
    device_timestamp_ns: int
    spacing_mm: tuple[float, float]
    roi: tuple[int, int, int, int]
    frame_size: tuple[int, int]  # (width, height) px of the source frame / mask
    class_names: tuple[str, ...]
    class_areas_mm2: tuple[float, ...]
    confidence: float  # mean winning probability over foreground pixels (all if none)
    inference_ms: float  # grey conversion + model + post-processing
    latency_ms: float
    skipped_total: int
    target_found: bool
    target_offset_lateral_mm: float  # thyroid centroid - ROI centre, along +u
    target_depth_mm: float  # thyroid centroid below the ROI top
    grey: NDArray[np.uint8]  # (h, w) ROI the model saw (a copy, for previews)
    labels: NDArray[np.uint8]  # (h, w) ROI labels


@dataclass
class LiveStats:
    frames_in: int = 0  # frames taken from the channel and segmented
    masks_out: int = 0
    skipped: int = 0  # frames never segmented: superseded while busy, or lost
    errors: int = 0
    reopens: int = 0
    last_error: str = ""
    state: str = "idle"  # idle | waiting | running | paused | error
    infer_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    # frame published (channel) or captured (topic) -> taken by the worker
    input_age_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    out_times: deque[float] = field(default_factory=lambda: deque(maxlen=300))

    def fps(self) -> float:
        t = list(self.out_times)
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])


def summarise(
    labels: NDArray[np.uint8],
    confidence: NDArray[np.float32],
    spacing_mm: tuple[float, float],
    n_classes: int,
    target_class: int = 1,
) -> tuple[tuple[float, ...], float, bool, float, float]:
    """Per-class areas (mm^2), mean confidence, and the target class's centroid
    (found, lateral offset from the ROI centre in mm, depth below the ROI top in mm)."""
    px_mm2 = spacing_mm[0] * spacing_mm[1]
    counts = np.bincount(labels.ravel(), minlength=n_classes)[:n_classes]
    areas = tuple(float(c) * px_mm2 for c in counts)
    fg = labels > 0
    conf = float(confidence[fg].mean()) if fg.any() else float(confidence.mean())
    ys, xs = np.nonzero(labels == target_class)
    if xs.size == 0:
        return areas, conf, False, 0.0, 0.0
    w = labels.shape[1]
    lateral = (float(xs.mean()) + 0.5 - w / 2.0) * spacing_mm[0]
    depth = (float(ys.mean()) + 0.5) * spacing_mm[1]
    return areas, conf, True, lateral, depth


class FrameInput(Protocol):
    """Where :class:`LiveSegmenter` takes frames from (newest only)."""

    name: str
    waiting: str  # why no frame comes ("" while frames come)
    reopens: int

    @property
    def skipped(self) -> int: ...  # frames never handed over (superseded or lost), total

    def read(self, timeout_s: float) -> tuple[NDArray[np.uint8], FrameInfo] | None:
        """The newest frame not read yet as (grey ROI copy, info); None after ``timeout_s``."""
        ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class ChannelInput:
    """Frames from a shared-memory channel on this host, latest-frame mode.

    Re-opens the channel after ``reopen_after_s`` without frames (a producer restarted
    under a new service, or is paused; cheap either way)."""

    def __init__(self, name: str, reopen_after_s: float = 2.0) -> None:
        self.name = name
        self.reopen_after_s = reopen_after_s
        self.waiting = ""
        self.reopens = 0
        self._skipped = 0
        self._reader: FrameReader | None = None
        self._reader_skips = 0  # skipped + dropped of the current reader (already counted)
        self._last_frame = time.monotonic()

    @property
    def skipped(self) -> int:
        return self._skipped

    def read(self, timeout_s: float) -> tuple[NDArray[np.uint8], FrameInfo] | None:
        if self._reader is None:
            try:
                self._reader = FrameReader(self.name, mode="latest", wait_s=0.5)
            except ChannelError as exc:
                self.waiting = f"waiting for frame channel '{self.name}': {exc}"
                return None
            self._reader_skips = 0
            self.waiting = ""
            self._last_frame = time.monotonic()
        reader = self._reader
        try:
            frame = reader.read(timeout_s=timeout_s)
        except ChannelError as exc:
            self.close()
            raise ChannelError(f"reading '{self.name}': {exc}") from exc
        if frame is None:
            if time.monotonic() - self._last_frame > self.reopen_after_s:
                self.close()
                self.reopens += 1
            return None
        self._last_frame = time.monotonic()
        s = reader.stats.skipped + reader.stats.dropped
        if s > self._reader_skips:
            self._skipped += s - self._reader_skips
            self._reader_skips = s
        with frame:
            info = frame.info
            return grey_roi(frame.array, info), info

    def clear(self) -> None:
        self._last_frame = time.monotonic()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class TopicInput:
    """Frames handed in by a callback (a ROS subscription), newest only.

    ``put(array, info)`` from the callback thread replaces a frame the worker has not taken
    yet (counted as skipped); the grey conversion runs in the worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reopens = 0
        self._slot: LatestMailbox[tuple[np.ndarray, FrameInfo]] = LatestMailbox()
        self.waiting = f"waiting for frames on '{name}'"

    @property
    def skipped(self) -> int:
        return self._slot.dropped + self._slot.skipped

    @property
    def received(self) -> int:
        return self._slot.offered

    def put(self, array: np.ndarray, info: FrameInfo) -> None:
        self._slot.put((array, info))

    def read(self, timeout_s: float) -> tuple[NDArray[np.uint8], FrameInfo] | None:
        item = self._slot.get(timeout_s)
        if item is None:
            return None
        self.waiting = ""
        array, info = item
        return grey_roi(array, info), info

    def clear(self) -> None:
        self._slot.clear()

    def close(self) -> None:
        self._slot.clear()


class LiveSegmenter:
    """Segment the newest frame of ``frames`` into ``mask_channel``, in a thread.

    Args:
        segmenter: the model (``Segmenter``), loaded before (load errors belong to the
            caller's configure step).
        frames: the input: a :class:`ChannelInput` / :class:`TopicInput`, or a frame
            channel name (e.g. ``"us/frames"``) for a :class:`ChannelInput`.
        mask_channel: config of the label8 mask channel this object creates.
        smoother: temporal smoothing (``None`` = off).
        on_result: called in the worker thread after each mask is published.
        reopen_after_s: for a channel name: re-open it after this long without frames.
        target_class: label value whose centroid is reported for robotic probe holders.
    """

    def __init__(
        self,
        segmenter: SegmenterLike,
        frames: FrameInput | str,
        mask_channel: ChannelConfig,
        *,
        smoother: TemporalSmoother | None = None,
        on_result: Callable[[MaskResult], None] | None = None,
        reopen_after_s: float = 2.0,
        target_class: int = 1,
    ) -> None:
        self.segmenter = segmenter
        self.input: FrameInput = (
            ChannelInput(frames, reopen_after_s) if isinstance(frames, str) else frames
        )
        self.smoother = smoother
        self.on_result = on_result
        self.target_class = target_class
        self.classes = tuple(segmenter.classes)
        self.stats = LiveStats()
        self.writer = FrameWriter(mask_channel)  # ChannelError if it cannot be created
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = threading.Event()
        self._lock = threading.Lock()

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start (or resume) segmenting."""
        self._active.set()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="segmentation", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop taking frames (the thread idles; frames are not counted as skipped)."""
        self._active.clear()
        self.input.clear()

    def close(self) -> None:
        self._stop.set()
        self._active.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.input.close()
        self.writer.close()

    # -- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        inp, st = self.input, self.stats
        while not self._stop.is_set():
            if not self._active.is_set():
                st.state = "paused"
                self._active.wait(0.2)
                inp.clear()
                continue
            try:
                got = inp.read(0.2)
            except ChannelError as exc:
                self._fail(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a bad frame never stops the node
                self._fail(f"{inp.name}: {type(exc).__name__}: {exc}")
                continue
            st.skipped, st.reopens = inp.skipped, inp.reopens
            if got is None:
                if inp.waiting:
                    st.state, st.last_error = "waiting", inp.waiting
                continue
            if st.state == "waiting":
                st.last_error = ""
            if not self._active.is_set():
                continue
            grey, info = got
            st.input_age_ms.append((time.monotonic_ns() - info.publish_monotonic_ns) / 1e6)
            try:
                self._process(grey, info)
            except Exception as exc:  # noqa: BLE001 - a bad frame never stops the node
                self._fail(f"frame {info.seq}: {type(exc).__name__}: {exc}")
        st.state = "idle"

    def _fail(self, reason: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = reason
        self.stats.state = "error"

    def _process(self, grey: NDArray[np.uint8], info: FrameInfo) -> None:
        t0 = time.perf_counter()
        spacing = (float(info.spacing_x_mm), float(info.spacing_y_mm))
        smooth: Callable[[np.ndarray], np.ndarray] | None = None
        if self.smoother is not None:
            sm, ts, key = self.smoother, info.host_timestamp_ns, info.producer_epoch

            def smooth(p: np.ndarray) -> np.ndarray:
                return sm(p, ts, key)

        res = self.segmenter.segment(grey, spacing if spacing[0] > 0 else None, smooth)
        labels = np.asarray(res.labels, dtype=np.uint8)
        infer_ms = (time.perf_counter() - t0) * 1e3
        x, y, w, h = info.roi
        if w == 0 or h == 0:
            x, y, w, h = 0, 0, info.width, info.height
        slot = self.writer.loan(info.width, info.height, PixelFormat.LABEL8)
        if (w, h) != (info.width, info.height):
            slot.array[:] = 0
        slot.array[y : y + h, x : x + w] = labels
        seq = self.writer.send(
            slot,
            device_timestamp_ns=info.device_timestamp_ns,
            host_timestamp_ns=info.host_timestamp_ns,
            spacing_mm=spacing,
            roi=(x, y, w, h),
            source_seq=info.seq,
            source_epoch=info.producer_epoch,
        )
        latency_ms = (time.monotonic_ns() - info.publish_monotonic_ns) / 1e6
        sp = spacing if spacing[0] > 0 else (1.0, 1.0)
        areas, conf, found, lateral, depth = summarise(
            labels, res.confidence, sp, len(self.classes), self.target_class
        )
        st = self.stats
        st.frames_in += 1
        st.masks_out += 1
        st.state = "running"
        st.infer_ms.append(infer_ms)
        st.latency_ms.append(latency_ms)
        st.out_times.append(time.monotonic())
        if self.on_result is not None:
            self.on_result(
                MaskResult(
                    seq=seq,
                    source_seq=info.seq,
                    source_epoch=info.producer_epoch,
                    host_timestamp_ns=info.host_timestamp_ns,
                    device_timestamp_ns=info.device_timestamp_ns,
                    spacing_mm=spacing,
                    roi=(x, y, w, h),
                    frame_size=(info.width, info.height),
                    class_names=self.classes,
                    class_areas_mm2=areas,
                    confidence=conf,
                    inference_ms=infer_ms,
                    latency_ms=latency_ms,
                    skipped_total=st.skipped,
                    target_found=found,
                    target_offset_lateral_mm=lateral,
                    target_depth_mm=depth,
                    grey=grey,
                    labels=labels,
                )
            )


def overlay_bgr(
    grey: NDArray[np.uint8], labels: NDArray[np.uint8], max_width: int = 320
) -> NDArray[np.uint8]:
    """Downscaled ``(h, w, 3)`` bgr8 preview: the B-mode image with class 1 tinted green,
    class 2 red, class 3 blue (50 % blend), for a human looking at RViz / rqt."""
    step = max(1, -(-grey.shape[1] // max_width))
    g = grey[::step, ::step].astype(np.float32)
    lab = labels[::step, ::step]
    out = np.repeat(g[..., None], 3, axis=2)
    tints = {1: (0.0, 255.0, 0.0), 2: (0.0, 0.0, 255.0), 3: (255.0, 0.0, 0.0)}
    for c, colour in tints.items():
        m = lab == c
        if m.any():
            out[m] = 0.5 * out[m] + 0.5 * np.asarray(colour, dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def percentile(values: Any, q: float) -> float:
    """``q``-th percentile of a sequence (0.0 if empty)."""
    v = list(values)
    return float(np.percentile(v, q)) if v else 0.0
