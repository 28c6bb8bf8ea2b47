"""Record a scan from the frame and mask channels to a PLUS/Slicer tracked sequence file.

Pure Python + numpy (no rclpy). :class:`SequenceRecorder` owns one worker thread with its
own :class:`~us_frame_channel.FrameReader` in ``every`` mode on the frame channel (and one
on the mask channel): a slow disk only makes *this* consumer fall behind; the producer
never waits. Frames the recorder misses show up as sequence gaps and are counted in
``frames_lost``; they are never hidden and never counted against the producer.

Per frame the worker

* crops the ultrasound ROI and keeps the pixels as they are for mono8 / mono16 / float32,
  as RGB for bgr8 / bgra8 (alpha dropped; PLUS/VTK store colour as RGB), and as grey
  (luma) for uyvy; the first frame fixes the geometry, later frames of another geometry
  are not written (counted in ``frames_skipped`` and in ``frames_lost``);
* appends the pixels to a raw temporary file next to the output (a 640x480 scan at 30 fps
  is 9 MB/s: nothing of the scan is held in RAM beyond the per-frame fields);
* keeps the capture stamp (``host_timestamp_ns``, CLOCK_REALTIME) and looks the probe
  pose ``T_world_probe`` up in the pose buffer *at that stamp* once the buffer can answer
  (TF usually arrives a little after the frame; it waits at most ``pose_wait_ms``). A
  lookup that fails (missing, stale, tracker gap > ``max_pose_gap_ms``, invalid sample)
  is stored as ``INVALID`` with the identity matrix: never extrapolated, never guessed;
* pairs masks of the mask channel with frames by the mask header's
  ``(source_epoch, source_seq)`` and writes them at the frame's index into a second raw
  temporary file (0 where no mask arrived).

:meth:`SequenceRecorder.stop` waits briefly for the last masks and poses, then writes the
sequence file(s) with :func:`us_acquisition.sequence_io.write_sequence` from a
memory-mapped view of the temporary files (header first, then the pixels streamed from
disk; temporary name + rename, so no reader ever sees a partial file):

* ``<name>.igs.mha`` (or ``.seq.mha`` / ``.igs.nrrd`` / ``.seq.nrrd``): the frames, per
  frame ``Timestamp`` (s, CLOCK_REALTIME), ``<transform_name>Transform`` (``T_world_probe``,
  mm, row-major) + ``...TransformStatus`` (``OK`` / ``INVALID``), ``FrameSeq`` (the channel
  seq) and ``ImageStatus``;
* ``<name>-labels.igs.mha`` (same extension): the label sequence, same frames, timestamps
  and transforms, plus ``LabelStatus`` = ``OK`` where a mask arrived, ``MISSING`` where
  not (its pixels are 0).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from us_frame_channel.imageops import grey_roi

from us_frame_channel import ChannelError, FrameInfo, FrameReader, PixelFormat

from .poses import PoseBuffer
from .sequence_io import TrackedSequence, split_transform_name, write_sequence

__all__ = [
    "SEQUENCE_EXTENSIONS",
    "RecorderStats",
    "RecordingResult",
    "SequenceRecorder",
    "check_output_path",
    "labels_path_for",
    "recorded_pixels",
]

#: File name endings the recorder writes (PLUS / 3D Slicer tracked sequences).
SEQUENCE_EXTENSIONS = (".igs.mha", ".seq.mha", ".igs.nrrd", ".seq.nrrd")
_EARLY_MASKS = 64  # masks kept whose frame the recorder has not read yet
_INDEX_FRAMES = 2048  # frames (newest) a late mask can still be paired with
_REOPEN_AFTER_S = 2.0  # no frame for this long: reopen the channel (producer restart)


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """The output path if a recording may be written there, else ValueError with the reason.

    The name must end in one of :data:`SEQUENCE_EXTENSIONS`, the folder must exist and be
    writable, and neither the file nor its label file may exist (a scan is never
    overwritten)."""
    p = Path(path).expanduser()
    if not p.name.lower().endswith(SEQUENCE_EXTENSIONS):
        raise ValueError(f"{p}: unsupported extension; use one of {', '.join(SEQUENCE_EXTENSIONS)}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{p}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{p}: folder {folder} is not writable")
    for q in (p, labels_path_for(p)):
        if q.exists():
            raise ValueError(f"{q} already exists; choose another name")
    return p


def labels_path_for(path: str | os.PathLike[str]) -> Path:
    """``scan.igs.mha`` -> ``scan-labels.igs.mha`` (same folder and extension)."""
    p = Path(path)
    name = p.name
    for ext in SEQUENCE_EXTENSIONS:
        if name.lower().endswith(ext):
            return p.with_name(name[: -len(ext)] + "-labels" + name[-len(ext) :])
    raise ValueError(f"{p}: not a sequence file name ({', '.join(SEQUENCE_EXTENSIONS)})")


def recorded_pixels(array: npt.NDArray[Any], info: FrameInfo) -> tuple[npt.NDArray[Any], str]:
    """The ROI of a channel frame as it goes into the file, and the PLUS image type.

    Returns ``(pixels, image_type)``: ``(h, w)`` uint8 / uint16 / float32 for mono8,
    label8, mono16, float32 (``"BRIGHTNESS"``); ``(h, w, 3)`` uint8 RGB for bgr8 / bgra8
    (``"RGB_COLOR"``); ``(h, w)`` uint8 luma for uyvy. Always a contiguous copy."""
    fmt = info.pixel_format
    if fmt in (PixelFormat.UYVY, PixelFormat.MONO8, PixelFormat.LABEL8):
        return grey_roi(array, info), "BRIGHTNESS"
    x, y, w, h = info.roi
    if w == 0 or h == 0:
        x, y, w, h = 0, 0, info.width, info.height
    a = array[y : y + h, x : x + w]
    if fmt in (PixelFormat.MONO16, PixelFormat.FLOAT32):
        return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")), "BRIGHTNESS"
    if fmt in (PixelFormat.BGR8, PixelFormat.BGRA8):
        return np.ascontiguousarray(a[..., 2::-1]), "RGB_COLOR"
    raise ValueError(f"cannot record pixel format {fmt.label}")


@dataclass
class RecorderStats:
    """Counters of one recording (read by the node for its status; plain ints)."""

    state: str = "idle"  # idle | waiting | recording | paused | limit | finishing | done
    frames_received: int = 0  # frames taken from the channel
    frames_written: int = 0
    frames_gap: int = 0  # sequence gaps: frames the recorder fell behind on
    frames_skipped: int = 0  # received but not written (geometry changed mid-scan)
    masks_written: int = 0
    masks_unpaired: int = 0  # masks whose frame is not in the recording (or wrong size)
    poses_valid: int = 0
    poses_invalid: int = 0
    bytes_written: int = 0  # pixel bytes of frames + labels so far
    producer_restarts: int = 0
    limit_reason: str = ""  # why recording stopped taking frames early ("" = it did not)
    last_error: str = ""

    @property
    def frames_lost(self) -> int:
        """Frames of the channel that are not in the file although recording was on."""
        return self.frames_gap + self.frames_skipped


@dataclass(frozen=True)
class RecordingResult:
    """What :meth:`SequenceRecorder.stop` wrote."""

    path: Path | None  # None when no frame was recorded (nothing written)
    labels_path: Path | None  # None without a mask channel or without frames
    frames_written: int
    frames_lost: int
    masks_written: int
    poses_valid: int
    poses_invalid: int
    bytes_written: int  # bytes of the written files
    duration_s: float  # first to last frame stamp
    limit_reason: str


class SequenceRecorder:
    """Records every frame of ``frames_channel`` (+ masks, + probe poses) to ``path``.

    Args:
        path: output file; see :func:`check_output_path` (checked again here).
        poses: pose buffer the caller keeps filled (``/tf``); read from the worker thread.
        frames_channel: frame channel name.
        mask_channel: ``label8`` mask channel whose header ``source_seq`` / ``source_epoch``
            name the frame; ``""`` = no label file.
        world_frame / probe_frame: the pose looked up is ``T_world_probe`` (maps probe
            coordinates into world coordinates, mm).
        transform_name: PLUS name of that transform (``"ProbeToTracker"``).
        max_pose_gap_ms: largest tracker sample spacing interpolated over, ms.
        pose_wait_ms: how long a frame's pose lookup waits for the pose to arrive, ms.
        mask_wait_ms: at stop, how long to wait for the masks of the last frames, ms.
        max_frames / max_bytes / max_duration_s: guards (0 = none): once reached, no more
            frames are taken (``stats.limit_reason`` says which); call :meth:`stop` to
            write the file.
        compress: zlib (mha) / gzip (nrrd) the pixels when the file is written (smaller,
            slower stop); False writes raw pixels at disk speed.
        channel_wait_s: how long :meth:`start` waits for the channels to exist; later the
            worker keeps trying.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        poses: PoseBuffer,
        *,
        frames_channel: str = "us/frames",
        mask_channel: str = "us/masks",
        world_frame: str = "tracker",
        probe_frame: str = "probe",
        transform_name: str = "ProbeToTracker",
        max_pose_gap_ms: float = 100.0,
        pose_wait_ms: float = 200.0,
        mask_wait_ms: float = 500.0,
        max_frames: int = 0,
        max_bytes: int = 0,
        max_duration_s: float = 0.0,
        compress: bool = False,
        channel_wait_s: float = 0.0,
    ) -> None:
        self.path = check_output_path(path)
        split_transform_name(transform_name)  # ValueError for a name PLUS cannot parse
        if max_pose_gap_ms <= 0 or pose_wait_ms < 0 or mask_wait_ms < 0:
            raise ValueError("max_pose_gap_ms must be > 0, pose/mask waits >= 0")
        if max_frames < 0 or max_bytes < 0 or max_duration_s < 0:
            raise ValueError("max_frames, max_bytes and max_duration_s must be >= 0")
        self.labels_path = labels_path_for(self.path) if mask_channel else None
        self.poses = poses
        self.frames_channel = frames_channel
        self.mask_channel = mask_channel
        self.world_frame, self.probe_frame = world_frame, probe_frame
        self.transform_name = transform_name
        self.max_gap_ns = int(max_pose_gap_ms * 1e6)
        self.pose_wait_ns = int(pose_wait_ms * 1e6)
        self.mask_wait_s = mask_wait_ms / 1e3
        self.max_frames, self.max_bytes = int(max_frames), int(max_bytes)
        self.max_duration_ns = int(max_duration_s * 1e9)
        self.compress = compress
        self.channel_wait_s = channel_wait_s
        self.stats = RecorderStats()
        self.on_limit: Callable[[str], None] | None = None  # called from the worker

        tmp_base = self.path.parent / f".{self.path.name}"
        self._frames_tmp = Path(f"{tmp_base}.frames.tmp")
        self._labels_tmp = Path(f"{tmp_base}.labels.tmp")
        self._frames_file: IO[bytes] | None = None
        self._labels_file: IO[bytes] | None = None
        # geometry fixed by the first frame
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype[Any] | None = None
        self._label_shape: tuple[int, int] = (0, 0)
        self._image_type = "BRIGHTNESS"
        self._spacing_mm: tuple[float, float] | None = None
        # per-frame fields (small: ~200 bytes per frame)
        self._stamps_ns: list[int] = []
        self._seqs: list[int] = []
        self._T: list[npt.NDArray[np.float64]] = []
        self._pose_ok: list[bool] = []
        self._has_mask: list[bool] = []
        self._pending_poses: OrderedDict[int, int] = OrderedDict()  # index -> rx monotonic ns
        self._index: OrderedDict[tuple[int, int], int] = OrderedDict()  # (epoch, seq) -> i
        self._early: OrderedDict[tuple[int, int], npt.NDArray[np.uint8]] = OrderedDict()
        self._newest_mask: dict[int, int] = {}  # epoch -> newest source seq of a mask
        self._last_key: tuple[int, int] | None = None
        self._readers: dict[str, FrameReader | None] = {"frames": None, "masks": None}
        self._last_rx: tuple[int, int] | None = None  # (epoch, seq) of the last frame read
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._finished = False

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the channels (mask channel first: no mask is missed) and start the worker."""
        if self._started:
            raise RuntimeError("a SequenceRecorder records once; create a new one")
        created: list[Path] = []
        try:  # "x": a leftover of a crashed recording of the same name is never overwritten
            self._frames_file = open(self._frames_tmp, "xb")  # closed in stop() / abort()
            created.append(self._frames_tmp)
            if self.mask_channel:
                self._labels_file = open(self._labels_tmp, "xb")
                created.append(self._labels_tmp)
        except OSError:
            self._close_files()
            for tmp in created:
                tmp.unlink(missing_ok=True)
            raise
        self._started = True
        if self.mask_channel:
            self._reader("masks", self.mask_channel, self.channel_wait_s)
        self._reader("frames", self.frames_channel, self.channel_wait_s)
        self.stats.state = "recording" if self._readers["frames"] else "waiting"
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop taking frames until :meth:`resume` (the channel keeps queueing up to its
        buffer; frames beyond it are lost and counted). Used to check loss accounting."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def recording(self) -> bool:
        return self._started and not self._finished

    @property
    def limit_reached(self) -> bool:
        return bool(self.stats.limit_reason)

    def end_frames(self) -> None:
        """Stop taking frames and wait (up to ``mask_wait_ms`` + ``pose_wait_ms``) for the
        masks and poses of the frames taken; afterwards the counts in :attr:`stats` are
        final. Idempotent; :meth:`stop` calls it."""
        if not self._started:
            raise RuntimeError("not recording")
        self._stop.set()
        self._paused.clear()
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> RecordingResult:
        """:meth:`end_frames`, then write the file(s) and remove the temporary files.

        Raises OSError (disk full, ...) with the temporary files left in place, so the raw
        data of a scan is not lost; ValueError for inconsistent data (a bug)."""
        if not self._started or self._finished:
            raise RuntimeError("not recording")
        self.end_frames()
        self._finished = True
        self.stats.state = "finishing"
        try:
            result = self._finalise()
        finally:
            self._close_readers()
        self.stats.state = "done"
        return result

    def abort(self) -> None:
        """Stop without writing anything; remove the temporary files."""
        if self._started and not self._finished:
            self._stop.set()
            self._paused.clear()
            if self._thread is not None:
                self._thread.join()
            self._finished = True
        self._close_readers()
        self._close_files()
        for tmp in (self._frames_tmp, self._labels_tmp):
            tmp.unlink(missing_ok=True)
        self.stats.state = "done"

    # -- channels ------------------------------------------------------------------------
    def _reader(self, key: str, name: str, wait_s: float = 0.0) -> FrameReader | None:
        r = self._readers[key]
        if r is None:
            try:
                r = FrameReader(name, mode="every", wait_s=wait_s)
            except ChannelError as exc:
                self.stats.last_error = f"waiting for channel '{name}': {exc}"
                return None
            self._readers[key] = r
        return r

    def _drop_reader(self, key: str) -> None:
        r = self._readers[key]
        if r is not None:
            r.close()
        self._readers[key] = None

    def _close_readers(self) -> None:
        for key in list(self._readers):
            self._drop_reader(key)

    def _close_files(self) -> None:
        for attr in ("_frames_file", "_labels_file"):
            f = getattr(self, attr)
            if f is not None:
                f.close()
                setattr(self, attr, None)

    # -- worker --------------------------------------------------------------------------
    def _run(self) -> None:
        last_rx = time.monotonic()
        next_open = 0.0
        while not self._stop.is_set():
            if self._paused.is_set():
                self.stats.state = "paused"
                self._stop.wait(0.01)
                continue
            now = time.monotonic()
            fr = self._readers["frames"]
            if fr is None and now >= next_open:
                fr = self._reader("frames", self.frames_channel)
                next_open = now + 0.5
            if self.mask_channel and self._readers["masks"] is None and now >= next_open:
                self._reader("masks", self.mask_channel)
            got = False
            if fr is None:
                self.stats.state = "waiting"
                self._stop.wait(0.05)
            elif self.limit_reached:
                self._stop.wait(0.02)
            else:
                try:
                    f = fr.read(0.02)
                    while f is not None:
                        got = True
                        with f:
                            self._take_frame(f.info, f.array)
                        if self.limit_reached:
                            break
                        f = fr.try_read()
                except ChannelError as exc:
                    self.stats.last_error = f"frames: {exc}"
                    self._drop_reader("frames")
                except OSError as exc:  # disk full, ...: stop taking frames, keep what we have
                    self._set_limit(f"write error: {exc}")
                except Exception as exc:  # noqa: BLE001 - a bug must not lose the scan so far
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    self._set_limit(f"error: {self.stats.last_error}")
            self._take_masks()
            self._resolve_poses(final=False)
            now = time.monotonic()
            if got:
                last_rx = now
            elif now - last_rx > _REOPEN_AFTER_S and not self.limit_reached:
                self._drop_reader("frames")
                self._drop_reader("masks")
                last_rx = now
        self._drain()

    def _drain(self) -> None:
        """After stop: the masks and poses of the frames already written, within the waits."""
        deadline = time.monotonic() + self.mask_wait_s
        while self.mask_channel and self._last_key is not None and time.monotonic() < deadline:
            epoch, seq = self._last_key
            if self._newest_mask.get(epoch, -1) >= seq:
                break
            mr = self._readers["masks"]
            if mr is None:
                break
            try:
                m = mr.read(min(0.05, max(0.0, deadline - time.monotonic())))
                if m is not None:
                    with m:
                        self._take_mask(m.info, m.array)
            except ChannelError:
                break
        self._take_masks()
        deadline = time.monotonic() + self.pose_wait_ns / 1e9
        while self._pending_poses and time.monotonic() < deadline:
            self._resolve_poses(final=False)
            if self._pending_poses:
                time.sleep(0.005)  # poses arrive from another thread (TF callback)
        self._resolve_poses(final=True)

    def _set_limit(self, reason: str) -> None:
        if not self.stats.limit_reason:
            self.stats.limit_reason = reason
            self.stats.state = "limit"
            if self.on_limit is not None:
                self.on_limit(reason)

    def _take_frame(self, info: FrameInfo, array: npt.NDArray[Any]) -> None:
        self.stats.frames_received += 1
        rx = (int(info.producer_epoch), int(info.seq))
        if self._last_rx is not None:  # own accounting: also spans reopened readers
            if rx[0] != self._last_rx[0]:
                self.stats.producer_restarts += 1
            elif rx[1] > self._last_rx[1] + 1:
                self.stats.frames_gap += rx[1] - self._last_rx[1] - 1
        self._last_rx = rx
        try:
            pixels, image_type = recorded_pixels(array, info)
        except ValueError as exc:
            self.stats.frames_skipped += 1
            self.stats.last_error = f"frame {info.seq}: {exc}"
            return
        if self._shape is None:
            self._shape, self._dtype = pixels.shape, pixels.dtype
            self._label_shape = (int(pixels.shape[0]), int(pixels.shape[1]))
            self._image_type = image_type
            if info.spacing_x_mm > 0 and info.spacing_y_mm > 0:
                self._spacing_mm = (float(info.spacing_x_mm), float(info.spacing_y_mm))
        elif pixels.shape != self._shape or pixels.dtype != self._dtype:
            self.stats.frames_skipped += 1
            self.stats.last_error = (
                f"frame {info.seq}: {pixels.shape} {pixels.dtype} differs from the recording's "
                f"{self._shape} {self._dtype} (ROI or format changed); not recorded"
            )
            return
        stamp = int(info.host_timestamp_ns)
        n = len(self._stamps_ns)
        label_bytes = self._label_shape[0] * self._label_shape[1] if self.mask_channel else 0
        if self.max_frames and n >= self.max_frames:
            self._set_limit(f"max_frames {self.max_frames} reached")
        elif self.max_bytes and self.stats.bytes_written + pixels.nbytes + label_bytes > (
            self.max_bytes
        ):
            self._set_limit(f"max_bytes {self.max_bytes} reached")
        elif self.max_duration_ns and n and stamp - self._stamps_ns[0] > self.max_duration_ns:
            self._set_limit(f"max_duration_s {self.max_duration_ns / 1e9:g} reached")
        if self.limit_reached:
            return
        assert self._frames_file is not None
        self._frames_file.write(np.ascontiguousarray(pixels).data.cast("B"))
        self.stats.bytes_written += pixels.nbytes + label_bytes
        key = (int(info.producer_epoch), int(info.seq))
        self._stamps_ns.append(stamp)
        self._seqs.append(int(info.seq))
        self._T.append(np.eye(4))
        self._pose_ok.append(False)
        self._has_mask.append(False)
        self._pending_poses[n] = time.monotonic_ns()
        self._last_key = key
        if self.mask_channel:
            self._index[key] = n
            while len(self._index) > _INDEX_FRAMES:
                self._index.popitem(last=False)
            early = self._early.pop(key, None)
            if early is not None:
                self._write_label(n, early)
        self.stats.frames_written = n + 1
        self.stats.state = "recording"

    def _take_masks(self) -> None:
        if not self.mask_channel:
            return
        mr = self._readers["masks"]
        if mr is None:
            return
        try:
            while (m := mr.try_read()) is not None:
                with m:
                    self._take_mask(m.info, m.array)
        except ChannelError as exc:
            self.stats.last_error = f"masks: {exc}"
            self._drop_reader("masks")

    def _take_mask(self, info: FrameInfo, array: npt.NDArray[Any]) -> None:
        key = (int(info.source_epoch), int(info.source_seq))
        self._newest_mask[key[0]] = max(key[1], self._newest_mask.get(key[0], -1))
        x, y, w, h = info.roi
        if w == 0 or h == 0:
            x, y, w, h = 0, 0, info.width, info.height
        labels = np.array(array[y : y + h, x : x + w], dtype=np.uint8, copy=True)
        i = self._index.get(key)
        if i is not None:
            self._write_label(i, labels)
        elif self._last_key is None or (key[0] == self._last_key[0] and key[1] > self._last_key[1]):
            self._early[key] = labels  # its frame is still queued in the frame reader
            while len(self._early) > _EARLY_MASKS:
                self._early.popitem(last=False)
                self.stats.masks_unpaired += 1
        else:
            self.stats.masks_unpaired += 1  # frame lost, skipped or before the start

    def _write_label(self, i: int, labels: npt.NDArray[np.uint8]) -> None:
        if labels.shape != self._label_shape or self._labels_file is None:
            self.stats.masks_unpaired += 1
            self.stats.last_error = (
                f"mask of frame {self._seqs[i]}: {labels.shape} does not match the frame ROI "
                f"{self._label_shape}"
            )
            return
        if self._has_mask[i]:
            return
        self._labels_file.seek(i * labels.nbytes)
        self._labels_file.write(np.ascontiguousarray(labels).data.cast("B"))
        self._has_mask[i] = True
        self.stats.masks_written += 1

    def _resolve_poses(self, final: bool) -> None:
        now = time.monotonic_ns()
        done: list[int] = []
        for i, rx_ns in self._pending_poses.items():
            stamp = self._stamps_ns[i]
            waited = now - rx_ns
            try:
                T = self.poses.lookup(
                    self.world_frame, self.probe_frame, stamp, max_gap_ns=self.max_gap_ns
                )
            except LookupError:  # PoseLookupError: missing, stale, gap, invalid
                if not final and waited < self.pose_wait_ns:
                    continue  # the pose may still arrive
                done.append(i)
                self.stats.poses_invalid += 1
                continue
            done.append(i)
            self._T[i] = np.asarray(T, dtype=np.float64)
            self._pose_ok[i] = True
            self.stats.poses_valid += 1
        for i in done:
            del self._pending_poses[i]

    # -- writing -------------------------------------------------------------------------
    def _finalise(self) -> RecordingResult:
        n = len(self._stamps_ns)
        stats = self.stats
        if n == 0:
            self._close_files()
            for tmp in (self._frames_tmp, self._labels_tmp):
                tmp.unlink(missing_ok=True)
            return RecordingResult(
                None, None, 0, stats.frames_lost, 0, 0, 0, 0, 0.0, stats.limit_reason
            )
        assert self._frames_file is not None and self._shape is not None
        assert self._dtype is not None
        self._frames_file.flush()
        if self._labels_file is not None:
            self._labels_file.truncate(n * self._label_shape[0] * self._label_shape[1])
            self._labels_file.flush()
        self._close_files()
        stamps = np.asarray(self._stamps_ns, dtype=np.int64)
        timestamps_s = stamps / 1e9
        transforms = {self.transform_name: np.stack(self._T)}
        status = {self.transform_name: np.asarray(self._pose_ok, dtype=bool)}
        seqs = [str(s) for s in self._seqs]
        header = {
            "RecordingFramesLost": str(stats.frames_lost),
            "RecordingWorldFrame": self.world_frame,
            "RecordingProbeFrame": self.probe_frame,
            "TimestampClock": "CLOCK_REALTIME_s",
        }
        frames = np.memmap(self._frames_tmp, dtype=self._dtype, mode="r", shape=(n, *self._shape))
        written = 0
        try:
            seq = TrackedSequence(
                frames=frames,
                timestamps_s=timestamps_s,
                transforms=transforms,
                transform_status=status,
                spacing_mm=self._spacing_mm,
                image_type=self._image_type,
                frame_fields={"FrameSeq": seqs},
                header=header,
            )
            write_sequence(self.path, seq, compress=self.compress)
            written += self.path.stat().st_size
        finally:
            del frames
        if self.labels_path is not None:
            labels = np.memmap(
                self._labels_tmp, dtype=np.uint8, mode="r", shape=(n, *self._label_shape)
            )
            try:
                lseq = TrackedSequence(
                    frames=labels,
                    timestamps_s=timestamps_s,
                    transforms=transforms,
                    transform_status=status,
                    spacing_mm=self._spacing_mm,
                    image_type="BRIGHTNESS",
                    frame_fields={
                        "FrameSeq": seqs,
                        "LabelStatus": ["OK" if m else "MISSING" for m in self._has_mask],
                    },
                    header=header | {"LabelsOf": self.path.name},
                )
                write_sequence(self.labels_path, lseq, compress=self.compress)
                written += self.labels_path.stat().st_size
            finally:
                del labels
        for tmp in (self._frames_tmp, self._labels_tmp):
            tmp.unlink(missing_ok=True)
        return RecordingResult(
            path=self.path,
            labels_path=self.labels_path,
            frames_written=n,
            frames_lost=stats.frames_lost,
            masks_written=stats.masks_written,
            poses_valid=stats.poses_valid,
            poses_invalid=stats.poses_invalid,
            bytes_written=written,
            duration_s=float(stamps[-1] - stamps[0]) / 1e9,
            limit_reason=stats.limit_reason,
        )
