"""End-to-end accuracy of the reconstruction on simulated sweeps (used by the benchmark and
the demo).

Pure Python (numpy/scipy/scikit-image; torch only when ``segment=True``), no rclpy.

:func:`simulate_sweep_reconstruction` simulates a freehand transverse sweep of a neck phantom
with the acquisition package's simulator, attaches tracker poses to the frames through a
:class:`~us_acquisition.poses.PoseBuffer` (interpolated at each frame stamp, as the node
does) and the image calibration (:class:`~us_reconstruction.calibration.ImageCalibration`),
segments each frame with the shipped model (or uses the simulator's ground-truth labels),
compounds frames + masks with :class:`~us_reconstruction.compounding.Compounder`, extracts the
thyroid surface and compares with the phantom's ground truth:

* ``volume_err_pct``: mesh volume vs ``NeckPhantom.thyroid_volume_ml`` (the exact voxel count
  of the gland at the phantom's 0.25 mm resolution);
* ``ellipsoid_err_pct``: the clinical per-lobe ``L x W x D x 0.524`` on the reconstructed mask;
* ``hd95_mm``: symmetric 95th percentile surface distance between the reconstructed mask and
  the phantom's gland mask resampled (nearest voxel) onto the same grid (boundary voxels, so
  the value is quantised to the voxel size); ``hd95_phantom_res_mm``: the same with the
  reconstruction's vote fraction interpolated (trilinear) onto the phantom's finer 0.25 mm
  grid and compared with the exact gland there; ``mesh_to_truth_p95_mm``: 95th percentile
  of the (continuous) distances of the mesh vertices to the exact gland surface.

Phantom seeds: the segmentation model was trained / validated / tested on phantoms with
seeds 1000-1013 and checked on seed 4242 (``docs/segmentation.md``); evaluation seeds here
start at 7001 (:data:`EVAL_PHANTOM_SEEDS`) so the model never saw these phantoms.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from us_acquisition.poses import PoseBuffer, PoseLookupError

from .calibration import ImageCalibration
from .compounding import Compounder
from .grid import VolumeGrid
from .surface import (
    mesh_volume_ml,
    surface_distance_hd95_mm,
    thyroid_ellipsoid_volume,
    thyroid_mesh,
)
from .temporal_calibration import estimate_time_offset, lookup_time_offset_ns

__all__ = [
    "EVAL_PHANTOM_SEEDS",
    "fraction_on_phantom_grid",
    "gland_mask_on_grid",
    "keep_large_components",
    "mesh_to_mask_distances",
    "simulate_sweep_reconstruction",
]

EVAL_PHANTOM_SEEDS = (7001, 7002, 7003, 7004, 7005)
"""Phantom seeds never used by the segmentation model (trained on 1000-1013, tested on 4242)."""

_MS = 1_000_000


def keep_large_components(mask: NDArray[np.bool_], min_ratio: float = 0.1) -> NDArray[np.bool_]:
    """Connected components (26-connectivity) of ``mask`` with at least ``min_ratio`` times the
    voxels of the largest one (drops small false positives; keeps both lobes when a thin
    isthmus is not resolved)."""
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 3))
    if n <= 1:
        return np.asarray(mask, dtype=bool).copy()
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    keep = counts >= min_ratio * counts.max()
    keep[0] = False
    out: NDArray[np.bool_] = keep[lab]
    return out


def gland_mask_on_grid(phantom: Any, grid: VolumeGrid) -> NDArray[np.bool_]:
    """The phantom's gland mask (thyroid + nodules + calcifications) sampled at the centres of
    ``grid``'s voxels (nearest phantom voxel); world = phantom frame (mm)."""
    from us_acquisition.sim import gland_mask

    nx, ny, nz = grid.dims
    out = np.zeros((nx, ny, nz), dtype=bool)
    jj, kk = np.meshgrid(np.arange(ny), np.arange(nz), indexing="ij")
    for i in range(nx):  # slab by slab: bounded memory
        idx = np.stack([np.full_like(jj, i), jj, kk], axis=-1).reshape(-1, 3)
        pts = grid.index_to_world(idx)
        out[i] = gland_mask(phantom.label_at(pts)).reshape(ny, nz)
    return out


def fraction_on_phantom_grid(
    fraction: NDArray[np.float32],
    grid: VolumeGrid,
    phantom: Any,
    index_lo: NDArray[np.int64],
    index_hi: NDArray[np.int64],
) -> NDArray[np.float32]:
    """Trilinear resampling of a reconstruction-grid volume at the centres of the phantom's
    voxels ``index_lo .. index_hi - 1`` (phantom label-volume indices; world = phantom mm).
    Outside the reconstruction grid the value is 0."""
    shape = tuple(int(v) for v in index_hi - index_lo)
    out = np.zeros(shape, dtype=np.float32)
    jj, kk = np.meshgrid(
        np.arange(index_lo[1], index_hi[1]), np.arange(index_lo[2], index_hi[2]), indexing="ij"
    )
    origin = np.asarray(phantom.origin_mm, dtype=np.float64)
    for n, i in enumerate(range(int(index_lo[0]), int(index_hi[0]))):
        idx = np.stack([np.full_like(jj, i), jj, kk], axis=-1).reshape(-1, 3)
        pts = origin + idx * float(phantom.spacing_mm)
        ijk = grid.world_to_index(pts).T
        out[n] = ndimage.map_coordinates(fraction, ijk, order=1, cval=0.0).reshape(shape[1:])
    return out


def mesh_to_mask_distances(
    vertices: NDArray[np.float32], mask: NDArray[np.bool_], phantom: Any, index_lo: ArrayLike
) -> NDArray[np.float64]:
    """Unsigned distances (mm) of mesh vertices (world = phantom mm) to the boundary of a mask
    cut from the phantom's label grid at ``index_lo`` (continuous, not voxel-quantised).

    The signed distance of the mask's boundary (voxel faces, half a voxel from the centres)
    is built from two Euclidean distance transforms and interpolated trilinearly at the
    vertices."""
    sp = float(phantom.spacing_mm)
    d_out = np.asarray(ndimage.distance_transform_edt(~mask)) * sp
    d_in = np.asarray(ndimage.distance_transform_edt(mask)) * sp
    sdf = np.where(mask, -(d_in - 0.5 * sp), d_out - 0.5 * sp).astype(np.float32)
    ijk = (np.asarray(vertices, np.float64) - np.asarray(phantom.origin_mm)) / sp
    ijk -= np.asarray(index_lo, dtype=np.float64)
    vals = ndimage.map_coordinates(sdf, ijk.T, order=1, mode="nearest")
    out: NDArray[np.float64] = np.abs(vals).astype(np.float64)
    return out


def simulate_sweep_reconstruction(
    phantom_seed: int,
    frames: int = 160,
    spacing_mm: float = 0.5,
    segment: bool = True,
    *,
    sweep_seed: int | None = None,
    image_size: tuple[int, int] = (640, 480),
    phantom_spacing_mm: float = 0.25,
    tracker_rate_hz: float = 120.0,
    tracker_noise_mm: float = 0.1,
    tracker_noise_deg: float = 0.1,
    interpolation: str = "linear",
    compounding: str = "mean",
    fill_holes_radius_vox: int = 2,
    smooth_iterations: int = 10,
    level: float = 0.5,
    threads: int = 2,
    model_dir: str | None = None,
    video_lag_ms: float = 0.0,
    lookup_offset_ms: float = 0.0,
    estimate_offset: bool = False,
) -> dict[str, Any]:
    """Simulate, segment, compound and score one freehand transverse thyroid sweep.

    Args:
        phantom_seed: :meth:`NeckPhantom.from_seed` seed (use :data:`EVAL_PHANTOM_SEEDS`).
        frames: number of frames spread over the 8 s sweep.
        spacing_mm: reconstruction voxel size (mm, isotropic).
        segment: segment frames with the shipped model (True) or use the simulator's
            ground-truth gland labels (False).
        sweep_seed: trajectory / tracker / speckle seed (default ``phantom_seed * 100 + 1``).
        image_size: ``(width, height)`` px of the simulated frames (50 x 40 mm field of view).
        phantom_spacing_mm: label-volume voxel size of the phantom (mm).
        tracker_rate_hz, tracker_noise_mm, tracker_noise_deg: simulated tracker.
        interpolation, compounding: :class:`Compounder` modes.
        fill_holes_radius_vox: :meth:`Compounder.fill_holes` radius (0 = no hole filling).
        smooth_iterations: Taubin smoothing passes of the mesh.
        level: iso-level of the thyroid vote fraction.
        threads: torch threads for the segmentation.
        model_dir: segmentation model directory (default: the shipped model).
        video_lag_ms: simulated video latency (ms): the frame stamped ``t`` shows the probe
            at ``t - video_lag_ms``.
        lookup_offset_ms: video lag assumed when looking poses up (ms; the pose is taken at
            ``stamp - lookup_offset_ms``), ignored with ``estimate_offset``.
        estimate_offset: estimate the lag from the sweep itself
            (:func:`~us_reconstruction.temporal_calibration.estimate_time_offset`) and use it
            if it is flagged reliable (else ``lookup_offset_ms`` is used).

    Returns:
        A JSON-serialisable dict: seeds, sizes, ``true_volume_ml``, ``mesh_volume_ml``,
        ``volume_err_pct`` (signed), ``voxel_volume_ml``, ``ellipsoid_ml``,
        ``ellipsoid_err_pct`` (signed), ``ellipsoid_gt_ml`` (the formula on the ground-truth
        mask on the same grid), ``lobes`` (length/width/depth mm), ``hd95_mm`` (on the
        reconstruction grid, so quantised to its voxel size), ``hd95_phantom_res_mm`` (the
        vote fraction interpolated onto the phantom's finer grid vs its exact gland), ``dice``,
        ``coverage`` (fraction of the true gland inside imaged voxels), frame counts and
        ``timings_s``.
    """
    from us_acquisition.sim import (
        BModeParams,
        BModeSimulator,
        NeckPhantom,
        ProbeTrajectory,
        gland_mask,
        sample_frames,
        sample_tracker,
    )

    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    s_seed = int(phantom_seed) * 100 + 1 if sweep_seed is None else int(sweep_seed)
    phantom = NeckPhantom.from_seed(int(phantom_seed), spacing_mm=phantom_spacing_mm)
    width, height = image_size
    sim = BModeSimulator(phantom, BModeParams(width_px=width, height_px=height), seed=s_seed)
    traj = ProbeTrajectory.freehand_transverse(phantom, seed=s_seed)
    fps = (frames - 1) / traj.duration_s if frames > 1 else 1.0
    frame_samples = sample_frames(traj, fps, time_offset_ms=-float(video_lag_ms))
    stamps = frame_samples.timestamps_ns[:frames]
    true_poses = frame_samples.T_phantom_probe_true[:frames]
    tracker = sample_tracker(
        traj, tracker_rate_hz, tracker_noise_mm, tracker_noise_deg, seed=s_seed
    )
    buffer = PoseBuffer(max_history_ns=int((traj.duration_s + 1.0) * 1e9))
    for t_ns, T in zip(tracker.timestamps_ns, tracker.T_phantom_probe, strict=True):
        buffer.add("phantom", "probe", T, int(t_ns))
    calibration = ImageCalibration.from_matrix(sim.T_probe_image())
    T_probe_image = calibration.T_probe_image()
    timings["setup"] = time.perf_counter() - t_start

    segmenter = None
    if segment:
        from us_segmentation.inference import Segmenter

        from us_segmentation import default_model_dir

        segmenter = Segmenter(model_dir or default_model_dir(), threads=threads)
    compounder = Compounder(
        spacing_mm=spacing_mm,
        interpolation=interpolation,  # type: ignore[arg-type]
        compounding=compounding,  # type: ignore[arg-type]
        num_classes=2,
    )
    t0 = time.perf_counter()
    n_frames = len(stamps)
    images = np.empty((n_frames, height, width), np.uint8)
    truths = np.empty((n_frames, height, width), bool)
    for k in range(n_frames):
        frame = sim.render(true_poses[k])
        images[k] = frame.image
        truths[k] = gland_mask(frame.labels)
    pixel_spacing = sim.pixel_spacing_mm
    t_render = time.perf_counter() - t0
    estimated_ms: float | None = None
    estimate_reliable: bool | None = None
    estimate_score: float | None = None
    if estimate_offset:
        t0 = time.perf_counter()
        est = estimate_time_offset(stamps, images, tracker.timestamps_ns, tracker.T_phantom_probe)
        estimated_ms, estimate_reliable, estimate_score = est.offset_ms, est.reliable, est.score
        timings["temporal_calibration"] = time.perf_counter() - t0
    offset_ms = (
        estimated_ms if estimated_ms is not None and estimate_reliable else float(lookup_offset_ms)
    )
    t_seg = t_comp = 0.0
    skipped: dict[str, int] = {}
    frame_dice: list[float] = []
    for k in range(n_frames):
        t1 = time.perf_counter()
        truth = truths[k]
        if segmenter is not None:
            labels = (segmenter.segment(images[k], pixel_spacing).labels == 1).astype(np.uint8)
            inter = float(np.logical_and(labels, truth).sum())
            denom = float(labels.sum() + truth.sum())
            if denom > 0:
                frame_dice.append(2 * inter / denom)
        else:
            labels = truth.astype(np.uint8)
        t2 = time.perf_counter()
        try:
            T_world_probe = buffer.lookup(
                "phantom",
                "probe",
                int(stamps[k]),
                max_gap_ns=50 * _MS,
                time_offset_ns=lookup_time_offset_ns(offset_ms),
            )
        except PoseLookupError as exc:
            skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            continue
        compounder.insert(images[k], T_world_probe @ T_probe_image, labels)
        t3 = time.perf_counter()
        t_seg += t2 - t1
        t_comp += t3 - t2
    t0 = time.perf_counter()
    if fill_holes_radius_vox > 0:
        compounder.fill_holes(max_radius_vox=fill_holes_radius_vox)
    t_comp += time.perf_counter() - t0
    timings.update(render=t_render, segment=t_seg, compound=t_comp)
    grid = compounder.grid
    if grid is None:
        raise RuntimeError("no frame was compounded")

    t0 = time.perf_counter()
    fraction = compounder.label_fraction(1)
    mask = keep_large_components(fraction >= level)
    support = ndimage.binary_dilation(mask, iterations=2)
    verts, tris = thyroid_mesh(
        np.where(support, fraction, 0.0).astype(np.float32),
        grid,
        level=level,
        smooth_iterations=smooth_iterations,
    )
    recon_ml = mesh_volume_ml(verts, tris)
    timings["mesh"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    voxel_ml = grid.voxel_volume_mm3() / 1000.0
    truth_grid = gland_mask_on_grid(phantom, grid)
    filled = compounder.filled_mask()
    spacing = np.asarray(grid.spacing_mm, dtype=np.float64)
    lateral_axis = int(np.argmax(np.abs(np.asarray(grid.direction)[0])))
    ell_ml, lobes = thyroid_ellipsoid_volume(mask, spacing, lateral_axis)
    ell_gt_ml, _ = thyroid_ellipsoid_volume(truth_grid, spacing, lateral_axis)
    hd95 = surface_distance_hd95_mm(mask, truth_grid, spacing)
    # the same comparison at the phantom's own resolution (no resampling of the truth): the
    # reconstruction's kept vote fraction, trilinearly interpolated, against the exact gland
    kept = np.where(support, fraction, 0.0).astype(np.float32)
    truth_full = gland_mask(phantom.labels)
    p_idx = np.argwhere(truth_full)
    lo = np.maximum(p_idx.min(axis=0) - 8, 0)
    hi = np.minimum(p_idx.max(axis=0) + 9, truth_full.shape)
    fine = fraction_on_phantom_grid(kept, grid, phantom, lo, hi) >= level
    truth_fine = truth_full[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    hd95_fine = surface_distance_hd95_mm(fine, truth_fine, float(phantom.spacing_mm))
    mesh_dist = mesh_to_mask_distances(verts, truth_fine, phantom, lo)
    inter = float(np.logical_and(mask, truth_grid).sum())
    dice = 2 * inter / max(float(mask.sum() + truth_grid.sum()), 1.0)
    coverage = float(np.logical_and(truth_grid, filled).sum()) / max(float(truth_grid.sum()), 1)
    timings["metrics"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    true_ml = float(phantom.thyroid_volume_ml)
    return {
        "phantom_seed": int(phantom_seed),
        "sweep_seed": s_seed,
        "segment": bool(segment),
        "frames": len(stamps),
        "frames_inserted": int(compounder.frames_inserted),
        "frames_skipped_pose": skipped,
        "video_lag_ms": float(video_lag_ms),
        "lookup_offset_ms": round(offset_ms, 3),
        "estimated_offset_ms": None if estimated_ms is None else round(estimated_ms, 3),
        "estimated_offset_reliable": estimate_reliable,
        "estimated_offset_score": None if estimate_score is None else round(estimate_score, 4),
        "image_size": [int(width), int(height)],
        "spacing_mm": float(spacing_mm),
        "grid_dims": [int(d) for d in grid.dims],
        "true_volume_ml": round(true_ml, 4),
        "mesh_volume_ml": round(recon_ml, 4),
        "volume_err_pct": round(100.0 * (recon_ml - true_ml) / true_ml, 3),
        "voxel_volume_ml": round(float(mask.sum()) * voxel_ml, 4),
        "truth_on_grid_ml": round(float(truth_grid.sum()) * voxel_ml, 4),
        "ellipsoid_ml": round(ell_ml, 4),
        "ellipsoid_err_pct": round(100.0 * (ell_ml - true_ml) / true_ml, 3),
        "ellipsoid_gt_ml": round(ell_gt_ml, 4),
        "lobes_lwd_mm": [[round(v, 2) for v in row[1:]] for row in lobes],
        "hd95_mm": round(hd95, 3),
        "hd95_phantom_res_mm": round(hd95_fine, 3),
        "phantom_spacing_mm": float(phantom.spacing_mm),
        "mesh_to_truth_mean_mm": round(float(mesh_dist.mean()), 3) if len(verts) else None,
        "mesh_to_truth_p95_mm": (
            round(float(np.percentile(mesh_dist, 95)), 3) if len(verts) else None
        ),
        "dice": round(dice, 4),
        "frame_dice_mean": round(float(np.mean(frame_dice)), 4) if frame_dice else None,
        "coverage": round(coverage, 4),
        "mesh_vertices": len(verts),
        "mesh_triangles": len(tris),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
