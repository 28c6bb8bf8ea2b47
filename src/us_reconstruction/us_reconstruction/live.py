"""Live freehand reconstruction from the frame and mask channels (no rclpy).

:class:`LiveReconstructor` owns two threads:

* ``compound``: reads every frame of the frame channel and every mask of the mask channel,
  pairs them by the mask header's ``source_seq``, looks the probe pose up at the frame's
  capture stamp (:class:`~us_acquisition.poses.PoseBuffer`, fed by the node from
  ``/tf``), and compounds the frame and its mask into the volume. Frames that cannot be
  placed are skipped and counted by reason (``pose_missing``, ``pose_stale``,
  ``pose_gap``, ``pose_invalid``, ``outside_grid``, ``backlog``, ``error``). A frame
  whose mask never comes (segmentation skipped it) is compounded without labels.
* ``surface``: every ``surface_period_s``, a copy of the thyroid vote fraction becomes a
  mesh (marching cubes) with its volume in mL and the clinical ellipsoid estimate, so the
  compounding never waits for it. It runs ``surface_nice`` steps below the process's
  priority (Linux: a thread's own nice value), so these bursts of background work yield
  the CPU to compounding and to the other nodes' streaming paths.

Coordinates: the volume is in the world frame (``world_frame``, e.g. the tracker's or the
robot base's), in mm. ``T_world_image = T_world_probe(t) @ T_probe_image``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from us_acquisition.poses import PoseBuffer, PoseLookupError
from us_frame_channel.imageops import grey_roi
from us_frame_channel.layout import FrameInfo

from us_frame_channel import ChannelError, FrameReader

from .calibration import ImageCalibration
from .compounding import Compounder
from .grid import VolumeGrid
from .surface import mesh_volume_ml, thyroid_ellipsoid_volume, thyroid_mesh

BACKLOG = "backlog"  # more than 256 frames waiting for poses/masks
OUTSIDE_GRID = "outside_grid"
ERROR = "error"


def top_center_T_probe_image(
    width_px: int, spacing_mm: tuple[float, float], mount: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """``T_probe_image`` of a linear probe whose face centre is the middle of the image's
    top row: u (columns) along probe +x, v (rows, depth) along probe +y, pixel centres at
    ``((u + 0.5 - W/2) * sx, (v + 0.5) * sy, 0)`` mm (the simulator's convention).
    ``mount`` (4x4, mm) is applied after: ``T = mount @ T_face_image``."""
    sx, sy = spacing_mm
    T = np.eye(4)
    T[0, 0], T[1, 1] = sx, sy
    T[0, 3] = (0.5 - width_px / 2.0) * sx
    T[1, 3] = 0.5 * sy
    return T if mount is None else mount @ T


@dataclass
class ImagePlacement:
    """How image pixels map into the probe frame.

    ``calibration`` given (PLUS ImageToProbe or explicit parameters): used as is, on
    full-frame pixel coordinates shifted by ``pixel_offset_px`` (the crop of the scanner
    screen). Otherwise the top-centre convention with the frame header's spacing and
    ``mount`` (see :func:`top_center_T_probe_image`)."""

    calibration: ImageCalibration | None = None
    pixel_offset_px: tuple[float, float] = (0.0, 0.0)
    mount: NDArray[np.float64] | None = None

    def T_probe_image(self, info: FrameInfo) -> NDArray[np.float64]:
        if self.calibration is not None:
            shift = np.eye(4)
            shift[0, 3], shift[1, 3] = self.pixel_offset_px
            return self.calibration.T_probe_image() @ shift
        sp = (float(info.spacing_x_mm), float(info.spacing_y_mm))
        if sp[0] <= 0 or sp[1] <= 0:
            raise ValueError("frame has no pixel spacing and no calibration is configured")
        return top_center_T_probe_image(int(info.width), sp, self.mount)


@dataclass
class SurfaceResult:
    """Thyroid surface of the current volume (world mm) and its measurements."""

    vertices_mm: NDArray[np.float32]  # (N, 3)
    triangles: NDArray[np.uint32]  # (M, 3)
    volume_ml: float  # enclosed by the mesh
    ellipsoid_ml: float  # clinical L x W x D x 0.524, summed over lobes
    lobes: list[tuple[float, float, float, float]]  # (mL, length, width, depth mm)
    voxels_filled: int
    voxels_total: int
    grid: VolumeGrid
    seconds: float


@dataclass
class ReconStats:
    frames_seen: int = 0
    frames_used: int = 0
    unlabelled: int = 0  # compounded without a mask (segmentation skipped the frame)
    skipped: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    state: str = "idle"
    compound_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))

    @property
    def frames_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass
class PlacedFrame:
    """A frame that went into the volume (for image-plane display)."""

    seq: int
    host_timestamp_ns: int
    grey: NDArray[np.uint8]
    T_world_image: NDArray[np.float64]


def fill_gaps(
    values: NDArray[np.float32], hit: NDArray[np.bool_], radius_vox: int
) -> NDArray[np.float32]:
    """Voxels no pixel hit get the mean of the hit voxels in a cube of ``radius_vox`` around
    them, when at least a quarter of the cube was hit (gaps between slices); others keep
    their value. Returns a new array (``radius_vox = 0``: unchanged)."""
    if radius_vox <= 0:
        return values
    k = 2 * radius_vox + 1
    den = ndimage.uniform_filter(hit.astype(np.float32), k)
    fill = ~hit & (den >= 0.25)
    num = ndimage.uniform_filter(np.where(hit, values, 0).astype(np.float32), k)
    out: NDArray[np.float32] = np.where(fill, num / np.maximum(den, 1e-6), values).astype(
        np.float32
    )
    return out


def measure_thyroid(
    fraction: NDArray[np.float32],
    grid: VolumeGrid,
    level: float = 0.5,
    smooth_iterations: int = 10,
    min_component_ratio: float = 0.1,
) -> tuple[NDArray[np.float32], NDArray[np.uint32], float, float, list[Any], NDArray[np.bool_]]:
    """Mesh, mesh volume (mL), ellipsoid volume (mL), lobes and the thyroid mask of a vote
    fraction volume. Components smaller than ``min_component_ratio`` x the largest are
    dropped (false positives) before meshing."""
    mask = fraction >= level
    if mask.any():
        lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 3))
        if n > 1:
            counts = np.bincount(lab.ravel())
            counts[0] = 0
            keep = counts >= min_component_ratio * counts.max()
            keep[0] = False
            mask = keep[lab]
    if not mask.any():
        return (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32), 0.0, 0.0, [], mask)
    support = ndimage.binary_dilation(mask, iterations=2)
    verts, tris = thyroid_mesh(
        np.where(support, fraction, 0.0).astype(np.float32),
        grid,
        level=level,
        smooth_iterations=smooth_iterations,
    )
    spacing = np.asarray(grid.spacing_mm, dtype=np.float64)
    lateral_axis = int(np.argmax(np.abs(np.asarray(grid.direction)[0])))
    ell_ml, lobes = thyroid_ellipsoid_volume(mask, spacing, lateral_axis)
    return verts, tris, mesh_volume_ml(verts, tris), float(ell_ml), list(lobes), mask


def lower_thread_priority(steps: int) -> int | None:
    """Raise the calling thread's nice value by ``steps`` (at most 19), on Linux where nice
    is per thread; returns the new value, or None where that is not possible."""
    if steps <= 0 or not hasattr(os, "setpriority"):
        return None
    tid = threading.get_native_id()
    try:
        nice = min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps)
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        return None
    return nice


class LiveReconstructor:
    """Compound the live frame (+ mask) stream into a volume.

    Args:
        compounder: the volume (its grid, interpolation and compounding mode).
        poses: pose buffer the caller fills from ``/tf`` / ``/tf_static``.
        placement: image -> probe mapping.
        frames_channel / mask_channel: channel names; ``mask_channel=""`` = intensity only.
        mask_feed: masks are handed in by :meth:`put_mask` (e.g. from a ROS topic of a
            segmentation on another host) instead of read from ``mask_channel``.
        world_frame / probe_frame: TF frame ids of the lookup ``T_world_probe``.
        time_offset_ms: added to the frame stamp before the pose lookup (video lags the
            tracker by L ms -> ``-L``; see :mod:`us_acquisition.poses`).
        max_pose_gap_ms: largest tracker gap bridged by interpolation.
        max_pose_age_ms: a frame at most this much newer than the newest pose uses it.
        pose_wait_ms: how long a frame waits for its pose (TF arrives after the frame).
        mask_wait_ms: how long a frame waits for its mask before it goes in without labels.
        on_placed: called (compound thread) with each frame that went in.
    """

    def __init__(
        self,
        compounder: Compounder,
        poses: PoseBuffer,
        placement: ImagePlacement,
        *,
        frames_channel: str = "us/frames",
        mask_channel: str = "us/masks",
        mask_feed: bool = False,
        world_frame: str = "tracker",
        probe_frame: str = "probe",
        time_offset_ms: float = 0.0,
        max_pose_gap_ms: float = 100.0,
        max_pose_age_ms: float = 20.0,
        pose_wait_ms: float = 500.0,
        mask_wait_ms: float = 500.0,
        thyroid_class: int = 1,
        surface_period_s: float = 2.0,
        surface_nice: int = 10,
        surface_level: float = 0.5,
        fill_holes_radius_vox: int = 2,
        reopen_after_s: float = 2.0,
        on_placed: Callable[[PlacedFrame], None] | None = None,
        on_surface: Callable[[SurfaceResult], None] | None = None,
    ) -> None:
        self.compounder = compounder
        self.poses = poses
        self.placement = placement
        self.frames_channel = frames_channel
        self.mask_channel = "" if mask_feed else mask_channel
        self.uses_masks = mask_feed or bool(mask_channel)
        self._mask_feed: deque[tuple[FrameInfo, NDArray[np.uint8]]] | None = (
            deque(maxlen=64) if mask_feed else None
        )
        self.world_frame, self.probe_frame = world_frame, probe_frame
        self.time_offset_ns = int(time_offset_ms * 1e6)
        self.max_gap_ns = int(max_pose_gap_ms * 1e6)
        self.max_age_ns = int(max_pose_age_ms * 1e6)
        self.pose_wait_ns = int(pose_wait_ms * 1e6)
        self.mask_wait_ns = int(mask_wait_ms * 1e6)
        self.thyroid_class = thyroid_class
        self.surface_period_s = surface_period_s
        self.surface_nice = surface_nice
        self.surface_level = surface_level
        self.fill_holes_radius_vox = fill_holes_radius_vox
        self.reopen_after_s = reopen_after_s
        self.on_placed = on_placed
        self.on_surface = on_surface
        self.stats = ReconStats()
        self.lock = threading.Lock()  # guards the compounder
        self.surface: SurfaceResult | None = None
        self._version = 0  # +1 per compounded frame / reset
        self._surface_version = -1
        self._frames: OrderedDict[tuple[int, int], tuple[FrameInfo, NDArray[np.uint8], int]] = (
            OrderedDict()
        )
        self._masks: OrderedDict[tuple[int, int], tuple[NDArray[np.uint8], int]] = OrderedDict()
        self._readers: dict[str, FrameReader | None] = {"frames": None, "masks": None}
        self._newest_mask: dict[int, int] = {}  # producer epoch -> newest masked frame seq
        self._stop = threading.Event()
        self._active = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        self._active.set()
        if not self._threads:
            self._stop.clear()
            for name, fn in (("compound", self._run), ("surface", self._surface_loop)):
                t = threading.Thread(target=fn, name=name, daemon=True)
                t.start()
                self._threads.append(t)

    def pause(self) -> None:
        self._active.clear()

    def close(self) -> None:
        self._stop.set()
        self._active.set()
        for t in self._threads:
            t.join(timeout=10.0)
        self._threads = []
        for k, r in self._readers.items():
            if r is not None:
                r.close()
            self._readers[k] = None

    def reset(self) -> None:
        """Empty the volume (the grid restarts from the next frame when it auto-grows)."""
        with self.lock:
            self.compounder.reset(keep_grid=not self.compounder.auto_grow)
            self.stats.frames_used = self.stats.unlabelled = 0
            self.stats.skipped.clear()
            self._version += 1
            self.surface = None

    def replace_compounder(self, compounder: Compounder) -> None:
        with self.lock:
            self.compounder = compounder
            self.stats.frames_used = self.stats.unlabelled = 0
            self.stats.skipped.clear()
            self._version += 1
            self.surface = None

    # -- compound thread -------------------------------------------------------------------
    def _reader(self, key: str, name: str) -> FrameReader | None:
        r = self._readers[key]
        if r is None:
            try:
                r = FrameReader(name, mode="every", wait_s=0.2)
            except ChannelError as exc:
                self.stats.state = "waiting"
                self.stats.last_error = f"waiting for channel '{name}': {exc}"
                return None
            self._readers[key] = r
            self.stats.last_error = ""
        return r

    def _drop_reader(self, key: str) -> None:
        r = self._readers[key]
        if r is not None:
            r.close()
        self._readers[key] = None

    def _run(self) -> None:
        last_rx = time.monotonic()
        while not self._stop.is_set():
            if not self._active.is_set():
                self.stats.state = "paused"
                self._active.wait(0.2)
                last_rx = time.monotonic()
                continue
            got = False
            if self.mask_channel and self._readers["masks"] is None:
                self._reader("masks", self.mask_channel)  # before frames: miss no mask
            fr = self._reader("frames", self.frames_channel)
            if fr is None:
                time.sleep(0.05)
                continue
            try:
                f = fr.read(0.02)
                while f is not None:
                    got = True
                    with f:
                        info = f.info
                        grey = grey_roi(f.array, info)
                    self._frames[(info.producer_epoch, info.seq)] = (
                        info,
                        grey,
                        time.monotonic_ns(),
                    )
                    self.stats.frames_seen += 1
                    f = fr.try_read()
            except ChannelError as exc:
                self.stats.last_error = f"frames: {exc}"
                self._drop_reader("frames")
            if self.mask_channel:
                mr = self._reader("masks", self.mask_channel)
                if mr is not None:
                    try:
                        while (m := mr.try_read()) is not None:
                            with m:
                                mi = m.info
                                x, y, w, h = mi.roi
                                lab = np.array(m.array[y : y + h, x : x + w], copy=True)
                            self._add_mask(mi, lab)
                    except ChannelError as exc:
                        self.stats.last_error = f"masks: {exc}"
                        self._drop_reader("masks")
            now = time.monotonic()
            if got:
                last_rx = now
            elif now - last_rx > self.reopen_after_s:
                self._drop_reader("frames")
                self._drop_reader("masks")
                last_rx = now
            feed = self._mask_feed
            while feed:
                mi, lab = feed.popleft()
                self._add_mask(mi, lab)
            self._process_pending()

    def put_mask(self, info: FrameInfo, array: NDArray[np.uint8]) -> None:
        """Hand in one label8 mask (the whole frame; ``info`` = its header: ``source_seq``,
        ``source_epoch``, ``roi``) when built with ``mask_feed=True``; any thread."""
        if self._mask_feed is None:
            raise RuntimeError("put_mask needs LiveReconstructor(mask_feed=True)")
        x, y, w, h = info.roi
        self._mask_feed.append((info, np.array(array[y : y + h, x : x + w], copy=True)))

    def _add_mask(self, mi: FrameInfo, lab: NDArray[np.uint8]) -> None:
        self._masks[(mi.source_epoch, mi.source_seq)] = (lab, mi.width)
        self._newest_mask[mi.source_epoch] = max(
            mi.source_seq, self._newest_mask.get(mi.source_epoch, -1)
        )
        while len(self._masks) > 64:
            self._masks.popitem(last=False)

    def _process_pending(self) -> None:
        now_ns = time.monotonic_ns()
        done: list[tuple[int, int]] = []
        for key, (info, grey, rx_ns) in self._frames.items():
            waited = now_ns - rx_ns
            labels: NDArray[np.uint8] | None = None
            if self.uses_masks:
                m = self._masks.pop(key, None)
                if m is not None:
                    labels = m[0]
                elif waited < self.mask_wait_ns and self._newest_mask.get(key[0], -1) < key[1]:
                    continue  # its mask may still come
                else:
                    # segmentation skipped this frame (a later frame has its mask) or is not
                    # running: the intensity still goes in; label votes come from masked
                    # frames only, so the thyroid fraction is not diluted
                    labels = None
            try:
                T_world_probe = self.poses.lookup(
                    self.world_frame,
                    self.probe_frame,
                    int(info.host_timestamp_ns),
                    max_gap_ns=self.max_gap_ns,
                    max_age_ns=self.max_age_ns,
                    time_offset_ns=self.time_offset_ns,
                )
            except PoseLookupError as exc:
                if waited < self.pose_wait_ns:
                    if labels is not None:
                        self._masks[key] = (labels, 0)  # put back, try again next round
                    # later frames are newer: their poses are not there either. Stop here
                    # rather than look each of them up again every round (that kept the pose
                    # buffer's lock and the GIL busy enough to starve the /tf callbacks)
                    break
                done.append(key)
                self.stats.skip(exc.reason)
                continue
            done.append(key)
            self._place(info, grey, labels, T_world_probe)
        for key in done:
            self._frames.pop(key, None)
        while len(self._frames) > 256:  # never grows without bound
            self._frames.popitem(last=False)
            self.stats.skip(BACKLOG)

    def _place(
        self,
        info: FrameInfo,
        grey: NDArray[np.uint8],
        labels: NDArray[np.uint8] | None,
        T_world_probe: NDArray[np.float64],
    ) -> None:
        try:
            x, y, w, h = info.roi
            if w == 0 or h == 0:
                x, y = 0, 0
            T_image_roi = np.eye(4)
            T_image_roi[0, 3], T_image_roi[1, 3] = x, y
            T_world_image = T_world_probe @ self.placement.T_probe_image(info) @ T_image_roi
            if labels is not None and labels.shape != grey.shape:
                raise ValueError(f"mask {labels.shape} does not match frame ROI {grey.shape}")
            t0 = time.perf_counter()
            with self.lock:
                st = self.compounder.insert(grey, T_world_image, labels)
                if st.inserted:
                    self._version += 1
            self.stats.compound_ms.append((time.perf_counter() - t0) * 1e3)
        except Exception as exc:  # noqa: BLE001 - one bad frame never stops reconstruction
            self.stats.skip(ERROR)
            self.stats.last_error = f"frame {info.seq}: {type(exc).__name__}: {exc}"
            return
        if not st.inserted:
            reason = st.reason
            self.stats.skip(
                "pose_invalid"
                if "transform" in reason
                else OUTSIDE_GRID
                if ("grid" in reason or "outside" in reason)
                else ERROR
            )
            self.stats.last_error = st.reason
            return
        self.stats.frames_used += 1
        if labels is None and self.uses_masks:
            self.stats.unlabelled += 1
        self.stats.state = "running"
        self.stats.latency_ms.append((time.time_ns() - int(info.host_timestamp_ns)) / 1e6)
        if self.on_placed is not None:
            self.on_placed(PlacedFrame(info.seq, int(info.host_timestamp_ns), grey, T_world_image))

    # -- surface thread --------------------------------------------------------------------
    def _surface_loop(self) -> None:
        lower_thread_priority(self.surface_nice)
        while not self._stop.wait(self.surface_period_s):
            if self._version == self._surface_version:
                continue
            try:
                self.update_surface()
            except Exception as exc:  # noqa: BLE001 - report, keep compounding
                self.stats.last_error = f"surface: {type(exc).__name__}: {exc}"

    def update_surface(self) -> SurfaceResult | None:
        """Mesh + measurements of the current volume (also called by services)."""
        t0 = time.perf_counter()
        with self.lock:
            version = self._version
            comp = self.compounder
            if comp.grid is None:
                return None
            grid = comp.grid
            fraction = comp.label_fraction(self.thyroid_class)
            voted = self._voted(comp)
            filled = comp.weights() > 0
        # labels of voxels without votes (between masked slices) from their neighbours
        fraction = fill_gaps(fraction, voted, self.fill_holes_radius_vox)
        verts, tris, ml, ell, lobes, _ = measure_thyroid(fraction, grid, self.surface_level)
        res = SurfaceResult(
            vertices_mm=verts,
            triangles=tris,
            volume_ml=ml,
            ellipsoid_ml=ell,
            lobes=lobes,
            voxels_filled=int(filled.sum()),
            voxels_total=int(filled.size),
            grid=grid,
            seconds=time.perf_counter() - t0,
        )
        self.surface = res
        self._surface_version = version
        if self.on_surface is not None:
            self.on_surface(res)
        return res

    @staticmethod
    def _voted(comp: Compounder) -> NDArray[np.bool_]:
        """Voxels with label votes (the class fractions sum to 1 there, 0 elsewhere)."""
        total = sum(comp.label_fraction(c) for c in range(comp.num_classes))
        return np.asarray(total > 0.5)

    # -- snapshots for services ------------------------------------------------------------
    def snapshot(
        self, downsample: int = 1, labels: bool = True, fill_holes: bool = False
    ) -> tuple[NDArray[np.float32], NDArray[np.float32] | None, VolumeGrid] | None:
        """Copies of (intensity, thyroid fraction, grid), block-reduced by ``downsample``.

        ``fill_holes``: voxels no pixel hit get the weighted mean of the hit voxels within
        ``fill_holes_radius_vox`` when at least a quarter of that neighbourhood was hit
        (gaps between slices), on the copies only; the volume itself is not changed."""
        with self.lock:
            comp = self.compounder
            if comp.grid is None:
                return None
            vol, grid = comp.snapshot(downsample)
            frac = comp.label_fraction(self.thyroid_class) if labels else None
            fill = fill_holes and downsample == 1
            hit = comp.weights() > 0 if fill else None
            voted = self._voted(comp) if fill and frac is not None else None
        if hit is not None:
            vol = fill_gaps(vol, hit, self.fill_holes_radius_vox)
        if voted is not None and frac is not None:
            frac = fill_gaps(frac, voted, self.fill_holes_radius_vox)
        if frac is not None and downsample > 1:
            f = downsample
            pad = [(0, (-n) % f) for n in frac.shape]
            p = np.pad(frac, pad)
            shape = tuple(x for n in p.shape for x in (n // f, f))
            frac = p.reshape(shape).mean(axis=(1, 3, 5)).astype(np.float32)
        return vol, frac, grid


def percentile(values: Sequence[float] | deque[float], q: float) -> float:
    v = list(values)
    return float(np.percentile(v, q)) if v else 0.0
