"""Offline volume reconstruction of a PLUS / 3D Slicer tracked ultrasound sequence file.

Console script ``us-reconstruct`` (see ``us-reconstruct --help`` and
``docs/reconstruction.md``)::

    us-reconstruct scan.igs.mha --config PlusDeviceSet_Reconstruction.xml -o volume.nrrd

The frame geometry follows PLUS: each frame's ``T_reference_image`` (maps pixel
``(u, v, 0, 1)`` into reference mm) is composed from the sequence's per-frame transforms
(``ProbeToTracker``, ``ProbeToReference``, ``ImageToReference`` ...) and the static
transforms of the device-set XML (``ImageToProbe`` calibration, ...), along the chain
``ImageCoordinateFrame`` -> ``ReferenceCoordinateFrame`` of its ``VolumeReconstruction``
element (defaults ``Image`` -> ``Reference``, or ``Tracker`` when the sequence has no
``Reference``). A frame whose per-frame transform on that chain is not ``OK``, or whose
image status is not ``OK``, is skipped and counted. As in PLUS, pixel coordinates are used
as they are (the pixel spacing lives in ``ImageToProbe``; the file's ``ElementSpacing`` is
ignored) and frames are first turned into the ``MF`` orientation.

Pure Python (no rclpy).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from us_acquisition.sequence_io import (
    SequenceFileError,
    TrackedSequence,
    read_sequence,
    split_transform_name,
)

from us_reconstruction.compounding import Compounder, FanGeometry
from us_reconstruction.export import VolumeFileError, write_volume
from us_reconstruction.grid import VolumeGrid, image_world_bounds
from us_reconstruction.plus_config import (
    PlusConfigError,
    PlusDeviceSet,
    PlusVolumeReconstruction,
    load_plus_device_set,
)

__all__ = [
    "ReconstructionError",
    "ReconstructionResult",
    "ReconstructionSettings",
    "frame_chain",
    "main",
    "reconstruct_sequence",
    "settings_from_plus",
]

FloatArray = npt.NDArray[np.float64]


class ReconstructionError(ValueError):
    """The reconstruction cannot run (missing transform chain, bad settings ...)."""


@dataclass
class ReconstructionSettings:
    """Settings of an offline reconstruction (PLUS ``VolumeReconstruction`` equivalents).

    Attributes:
        spacing_mm: voxel size (mm, 3 values) of the output grid.
        origin_mm: world position (mm) of voxel ``(0, 0, 0)``; with ``dims`` a fixed grid
            (PLUS ``OutputOrigin`` + ``OutputExtent``). ``None`` = fitted to the frames.
        dims: ``(nx, ny, nz)`` of a fixed grid, or ``None``.
        interpolation: ``"nearest"`` or ``"linear"``.
        compounding: ``"mean"``, ``"max"`` or ``"latest"``.
        roi: ``(x, y, w, h)`` px clip rectangle, or ``None``.
        fan: sector clip region, or ``None``.
        fill_holes: run hole filling after compounding.
        fill_radius_vox: largest hole-filling kernel radius (voxels).
        image_frame / reference_frame: the chain ``T_reference_image`` is built for;
            ``reference_frame=None`` = ``Reference`` if available, else ``Tracker``.
        max_voxels: refuse grids larger than this.
        margin_mm: margin around the frames when the grid is fitted.
    """

    spacing_mm: tuple[float, float, float] = (0.5, 0.5, 0.5)
    origin_mm: tuple[float, float, float] | None = None
    dims: tuple[int, int, int] | None = None
    interpolation: str = "nearest"
    compounding: str = "mean"
    roi: tuple[int, int, int, int] | None = None
    fan: FanGeometry | None = None
    fill_holes: bool = False
    fill_radius_vox: int = 2
    image_frame: str = "Image"
    reference_frame: str | None = None
    max_voxels: int = 200_000_000
    margin_mm: float = 1.0


@dataclass
class ReconstructionResult:
    """Outcome of :func:`reconstruct_sequence`.

    Attributes:
        compounder: holds the volume (``volume()``, ``label_map()``, ``grid``).
        frames_total / frames_used: frames in the file / compounded.
        skipped: reason -> number of frames skipped for it.
        chain: the transform names composed into ``T_reference_image``.
        reference_frame: the reference frame used.
        holes_filled: voxels filled by hole filling.
        seconds: wall time of the compounding (s).
        unlabelled: frames compounded without label votes (``LabelStatus`` not OK in the
            label file: the segmentation skipped them).
        gap_radius_vox: radius for filling the labels of voxels without votes.
    """

    compounder: Compounder
    frames_total: int
    frames_used: int
    skipped: Counter[str] = field(default_factory=Counter)
    chain: list[str] = field(default_factory=list)
    reference_frame: str = ""
    holes_filled: int = 0
    seconds: float = 0.0
    unlabelled: int = 0
    gap_radius_vox: int = 2

    def label_map(self, threshold: float = 0.5) -> npt.NDArray[np.uint8]:
        """The label volume. When frames went in without labels, voxels only they hit
        take their class fractions from voted neighbours (as the live node does:
        :func:`us_reconstruction.live.fill_gaps`) instead of counting as background."""
        comp = self.compounder
        if not self.unlabelled:
            return comp.label_map(threshold)
        from .live import fill_gaps

        fr = np.stack([comp.label_fraction(c) for c in range(comp.num_classes)])
        voted = fr.sum(axis=0) > 0
        fr = np.stack([fill_gaps(f, voted, self.gap_radius_vox) for f in fr])
        best = fr.argmax(axis=0)
        return np.where(fr.max(axis=0) >= threshold, best, 0).astype(np.uint8)


def settings_from_plus(vr: PlusVolumeReconstruction | None) -> ReconstructionSettings:
    """Settings from a PLUS ``VolumeReconstruction`` element (defaults where absent).

    ``OutputOrigin`` + ``OutputExtent`` ``(i0, i1, j0, j1, k0, k1)`` give a fixed grid whose
    voxel ``(0, 0, 0)`` is PLUS's voxel ``(i0, j0, k0)`` at ``OutputOrigin + i0 * spacing``.
    The fan needs ``FanOriginPixel`` and ``FanAnglesDeg``; radii default to 0 and 1e6 px.
    """
    s = ReconstructionSettings()
    if vr is None:
        return s
    if vr.output_spacing_mm is not None:
        s.spacing_mm = vr.output_spacing_mm
    if vr.output_origin_mm is not None and vr.output_extent is not None:
        ext = vr.output_extent
        if len(ext) != 6 or ext[1] < ext[0] or ext[3] < ext[2] or ext[5] < ext[4]:
            raise ReconstructionError(f"bad OutputExtent {ext}")
        o = np.asarray(vr.output_origin_mm) + np.asarray(ext[0::2]) * np.asarray(s.spacing_mm)
        s.origin_mm = (float(o[0]), float(o[1]), float(o[2]))
        s.dims = (ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1)
    if vr.clip_rectangle_origin is not None and vr.clip_rectangle_size is not None:
        (x, y), (w, h) = vr.clip_rectangle_origin, vr.clip_rectangle_size
        s.roi = (x, y, w, h)
    if vr.fan_origin_px is not None and vr.fan_angles_deg is not None:
        a0, a1 = vr.fan_angles_deg
        if a0 != 0.0 or a1 != 0.0:  # PLUS: 0 0 = fan clipping off
            s.fan = FanGeometry(
                vr.fan_origin_px[0],
                vr.fan_origin_px[1],
                vr.fan_radius_start_px or 0.0,
                vr.fan_radius_stop_px or 1e6,
                a0,
                a1,
            )
    if vr.interpolation is not None:
        s.interpolation = vr.interpolation
    if vr.compounding is not None:
        s.compounding = vr.compounding
    s.fill_holes = vr.fill_holes
    if vr.image_frame:
        s.image_frame = vr.image_frame
    if vr.reference_frame:
        s.reference_frame = vr.reference_frame
    return s


# --------------------------------------------------------------------------------------
# transform chain


def _edges(
    seq: TrackedSequence, config: PlusDeviceSet | None
) -> dict[str, list[tuple[str, str, bool]]]:
    """frame -> [(neighbour, transform key, inverted?)]; keys 'seq:Name' or 'cfg:From>To'."""
    graph: dict[str, list[tuple[str, str, bool]]] = {}

    def add(a: str, b: str, key: str) -> None:
        graph.setdefault(a, []).append((b, key, False))
        graph.setdefault(b, []).append((a, key, True))

    for name in seq.transforms:
        try:
            frm, to = split_transform_name(name)
        except ValueError:
            continue
        add(frm, to, "seq:" + name)
    if config is not None:
        for frm, to in config.transforms:
            add(frm, to, f"cfg:{frm}>{to}")
    return graph


def frame_chain(
    seq: TrackedSequence, config: PlusDeviceSet | None, image_frame: str, reference_frame: str
) -> list[tuple[str, bool]]:
    """Shortest chain of transforms from ``image_frame`` to ``reference_frame``.

    Per-frame transforms of the sequence are preferred over config ones when both connect
    the same frames (they come first in the search). Returns ``[(key, inverted), ...]``
    applied in order (first maps image coordinates). Raises ReconstructionError when the
    frames are not connected.
    """
    graph = _edges(seq, config)
    prev: dict[str, tuple[str, str, bool] | None] = {image_frame: None}
    queue = deque([image_frame])
    while queue:
        node = queue.popleft()
        if node == reference_frame:
            break
        for nb, key, inv in graph.get(node, []):
            if nb not in prev:
                prev[nb] = (node, key, inv)
                queue.append(nb)
    if reference_frame not in prev:
        have = ", ".join(sorted(seq.transforms)) or "none"
        cfg = (
            ", ".join(f"{a}To{b}" for a, b in sorted(config.transforms)) if config else "no config"
        )
        raise ReconstructionError(
            f"no chain of transforms from {image_frame} to {reference_frame}: sequence has "
            f"{have}; config has {cfg} (an ImageToProbe calibration is usually missing)"
        )
    chain: list[tuple[str, bool]] = []
    node = reference_frame
    while True:
        step = prev[node]
        if step is None:
            break
        node, key, inv = step
        chain.append((key, inv))
    chain.reverse()
    return chain


def _chain_transforms(
    seq: TrackedSequence, config: PlusDeviceSet | None, chain: list[tuple[str, bool]]
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """(N, 4, 4) T_reference_image per frame and (N,) validity."""
    n = seq.num_frames
    T = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    ok = np.ones(n, dtype=bool)
    for key, inv in chain:
        if key.startswith("seq:"):
            name = key[4:]
            M: npt.NDArray[Any] = seq.transforms[name]
            status = seq.transform_status.get(name, np.ones(n, dtype=bool))
            ok &= status & np.all(np.isfinite(M), axis=(1, 2))
            M = np.where(ok[:, None, None], M, np.eye(4))
            if inv:
                M = np.linalg.inv(M)
        else:
            assert config is not None
            frm, to = key[4:].split(">")
            M = config.transform(frm, to)
            if inv:
                M = np.linalg.inv(M)
            M = np.broadcast_to(M, (n, 4, 4))
        T = M @ T  # each step maps the previous frame's coordinates onward
    return T, ok


# --------------------------------------------------------------------------------------


def _to_mf(frames: npt.NDArray[Any], orientation: str) -> npt.NDArray[Any]:
    """Flip ``(N, H, W[, C])`` frames from a PLUS orientation (``MF``, ``UF``, ``MN``,
    ``UN``; a trailing ``A`` etc. ignored) to ``MF`` as PLUS does before reconstructing."""
    o = (orientation or "MF").upper()
    out = frames
    if o.startswith("U"):
        out = out[:, :, ::-1]
    if len(o) > 1 and o[1] == "N":
        out = out[:, ::-1]
    return out


def _to_uint8(frames: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Grey uint8 frames: colour is averaged, other types are scaled min..max -> 0..255."""
    f = frames
    if f.ndim == 4:
        f = f[..., :3].mean(axis=-1) if f.shape[-1] >= 3 else f[..., 0]
    if f.dtype == np.uint8:
        return np.ascontiguousarray(f)
    f = f.astype(np.float64)
    lo, hi = float(np.min(f)), float(np.max(f))
    if lo >= 0 and hi <= 255:
        return np.ascontiguousarray(np.rint(f).astype(np.uint8))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.ascontiguousarray(np.rint((f - lo) * scale).astype(np.uint8))


def reconstruct_sequence(
    seq: TrackedSequence,
    settings: ReconstructionSettings,
    config: PlusDeviceSet | None = None,
    labels: TrackedSequence | None = None,
    num_classes: int = 2,
) -> ReconstructionResult:
    """Compound every valid frame of ``seq`` into a volume.

    Args:
        seq: the tracked sequence (frames + per-frame transforms).
        settings: grid, interpolation, compounding, clipping, frames.
        config: PLUS device set with static transforms (``ImageToProbe`` ...).
        labels: a sequence of per-pixel class images (same N, H, W) compounded into the
            label volume, or None.
        num_classes: label classes 0..num_classes-1.
    Raises:
        ReconstructionError: no transform chain, mismatched labels, grid too large.
    """
    ref = settings.reference_frame
    if ref is None:
        ref = "Reference"
        try:
            chain = frame_chain(seq, config, settings.image_frame, ref)
        except ReconstructionError:
            ref = "Tracker"
            chain = frame_chain(seq, config, settings.image_frame, ref)
    else:
        chain = frame_chain(seq, config, settings.image_frame, ref)
    T_all, ok = _chain_transforms(seq, config, chain)
    frames = _to_uint8(_to_mf(seq.frames, seq.orientation))
    lab_frames: npt.NDArray[np.uint8] | None = None
    if labels is not None:
        if labels.frames.shape[:3] != seq.frames.shape[:3]:
            raise ReconstructionError(
                f"label sequence has frames {labels.frames.shape[:3]}, the image sequence "
                f"{seq.frames.shape[:3]}"
            )
        lab_frames = np.ascontiguousarray(
            _to_mf(labels.frames, labels.orientation).astype(np.uint8)
        )
        if lab_frames.ndim == 4:
            lab_frames = np.ascontiguousarray(lab_frames[..., 0])
    # the recorder marks frames the segmentation skipped (LabelStatus MISSING): their
    # all-zero label image is no vote for "background"; they go in intensity-only
    status = labels.frame_fields.get("LabelStatus") if labels is not None else None
    labelled = (
        np.array([str(v).strip().upper() == "OK" for v in status], dtype=bool)
        if status is not None and len(status) == seq.num_frames
        else np.ones(seq.num_frames, dtype=bool)
    )

    skipped: Counter[str] = Counter()
    image_valid = seq.image_valid if seq.image_valid is not None else np.ones(len(ok), bool)
    use = np.zeros(seq.num_frames, dtype=bool)
    for i in range(seq.num_frames):
        if not ok[i]:
            skipped["transform status not OK"] += 1
        elif not image_valid[i]:
            skipped["image status not OK"] += 1
        else:
            use[i] = True

    if settings.origin_mm is not None and settings.dims is not None:
        grid = VolumeGrid(settings.origin_mm, settings.spacing_mm, settings.dims)
    else:
        if not np.any(use):
            raise ReconstructionError("no frame has a valid transform and image")
        shape = (seq.height, seq.width)
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for k in np.flatnonzero(use):
            a, b = image_world_bounds(T_all[k], shape, settings.roi)
            lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        grid = VolumeGrid.from_bounds(lo, hi, settings.spacing_mm, settings.margin_mm)
    if grid.num_voxels > settings.max_voxels:
        raise ReconstructionError(
            f"output grid {grid.dims} = {grid.num_voxels} voxels exceeds max_voxels="
            f"{settings.max_voxels}; use a larger spacing or a smaller OutputExtent"
        )
    comp = Compounder(
        grid,
        interpolation=settings.interpolation,  # type: ignore[arg-type]
        compounding=settings.compounding,  # type: ignore[arg-type]
        num_classes=num_classes,
        roi=settings.roi,
        fan=settings.fan,
        auto_grow=False,
        max_voxels=settings.max_voxels,
    )
    used = unlabelled = 0
    t0 = time.perf_counter()
    for k in np.flatnonzero(use):
        lab = lab_frames[k] if lab_frames is not None and labelled[k] else None
        stats = comp.insert(frames[k], T_all[k], lab)
        if stats.inserted:
            used += 1
            unlabelled += int(lab_frames is not None and lab is None)
        else:
            skipped[stats.reason] += 1
    holes = comp.fill_holes(settings.fill_radius_vox) if settings.fill_holes else 0
    names = [
        (k[4:] if k.startswith("seq:") else "To".join(k[4:].split(">")) + " (config)")
        + (" inverted" if inv else "")
        for k, inv in chain
    ]
    return ReconstructionResult(
        comp,
        seq.num_frames,
        used,
        skipped,
        names,
        ref,
        holes,
        time.perf_counter() - t0,
        unlabelled,
        settings.fill_radius_vox,
    )


# --------------------------------------------------------------------------------------
# command line


def _labels_path(seq_path: Path) -> Path | None:
    """Sibling label sequence of ``scan.igs.mha``: ``scan-labels.igs.mha`` (or
    ``scan_labels.igs.mha``), if it exists."""
    name = seq_path.name
    stem, dot, ext = name.partition(".")
    for sep in ("-", "_"):
        cand = seq_path.with_name(f"{stem}{sep}labels{dot}{ext}")
        if cand.is_file():
            return cand
    return None


def _default_output(seq_path: Path) -> Path:
    stem = seq_path.name.partition(".")[0]
    return seq_path.with_name(f"{stem}-volume.mha")


def _labels_output(out: Path) -> Path:
    name = out.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.lower().endswith(ext):
            return out.with_name(name[: -len(ext)] + "-labels" + name[len(name) - len(ext) :])
    return out.with_name(name + "-labels.mha")


def build_parser() -> argparse.ArgumentParser:
    """The ``us-reconstruct`` argument parser."""
    ap = argparse.ArgumentParser(
        prog="us-reconstruct",
        description="Reconstruct a 3D volume from a PLUS/Slicer tracked ultrasound sequence "
        "(.igs.mha, .seq.mha, .igs.nrrd, .seq.nrrd).",
    )
    ap.add_argument("sequence", type=Path, help="tracked sequence file")
    ap.add_argument("-c", "--config", type=Path, help="PLUS device-set XML (ImageToProbe "
                    "calibration, VolumeReconstruction element)")  # fmt: skip
    ap.add_argument("-o", "--output", type=Path, help="output volume (.mha, .nrrd, .nii, "
                    ".nii.gz); default <sequence>-volume.mha")  # fmt: skip
    ap.add_argument("--spacing", type=float, nargs="+", metavar="MM",
                    help="voxel size in mm (1 or 3 values); overrides OutputSpacing")  # fmt: skip
    ap.add_argument("--interpolation", choices=("nearest", "linear"))
    ap.add_argument("--compounding", choices=("mean", "max", "latest"))
    ap.add_argument("--fill-holes", action=argparse.BooleanOptionalAction, default=None,
                    help="fill holes after compounding (overrides FillHoles)")  # fmt: skip
    ap.add_argument("--fill-radius", type=int, default=2, metavar="VOX",
                    help="largest hole-filling kernel radius in voxels (default 2)")  # fmt: skip
    ap.add_argument("--labels", nargs="?", const="auto", metavar="PATH",
                    help="also compound a label sequence (class per pixel, same frames); "
                    "without PATH: <sequence>-labels.<ext> next to the sequence")  # fmt: skip
    ap.add_argument("--num-classes", type=int, default=2)
    ap.add_argument("--image-frame", help="overrides ImageCoordinateFrame (default Image)")
    ap.add_argument("--reference-frame", help="overrides ReferenceCoordinateFrame (default "
                    "Reference, else Tracker)")  # fmt: skip
    ap.add_argument(
        "--world",
        choices=("LPS", "RAS"),
        default="LPS",
        help="what the reference frame is in the output files (default LPS)",
    )
    ap.add_argument("--max-voxels", type=int, default=200_000_000)
    ap.add_argument("--no-compress", action="store_true", help="write uncompressed files")
    return ap


def _settings(args: argparse.Namespace, config: PlusDeviceSet | None) -> ReconstructionSettings:
    s = settings_from_plus(config.volume_reconstruction if config is not None else None)
    if args.spacing is not None:
        if len(args.spacing) not in (1, 3) or min(args.spacing) <= 0:
            raise ReconstructionError("--spacing needs 1 or 3 values > 0")
        sp = args.spacing * 3 if len(args.spacing) == 1 else args.spacing
        s.spacing_mm = (sp[0], sp[1], sp[2])
        if s.dims is not None:  # a fixed extent was for the config's spacing: refit
            s.origin_mm, s.dims = None, None
    if args.interpolation:
        s.interpolation = args.interpolation
    if args.compounding:
        s.compounding = args.compounding
    if args.fill_holes is not None:
        s.fill_holes = args.fill_holes
    s.fill_radius_vox = args.fill_radius
    if args.image_frame:
        s.image_frame = args.image_frame
    if args.reference_frame:
        s.reference_frame = args.reference_frame
    s.max_voxels = args.max_voxels
    return s


def main(argv: list[str] | None = None) -> int:
    """``us-reconstruct``: returns 0 on success, 2 on a file / configuration error."""
    args = build_parser().parse_args(argv)
    try:
        config = load_plus_device_set(args.config) if args.config else None
        settings = _settings(args, config)
        seq = read_sequence(args.sequence)
        labels = None
        if args.labels:
            lpath = _labels_path(args.sequence) if args.labels == "auto" else Path(args.labels)
            if lpath is None:
                raise ReconstructionError(
                    f"--labels: no label sequence next to {args.sequence} "
                    "(<name>-labels.<ext>); give its path"
                )
            labels = read_sequence(lpath)
            print(f"labels: {lpath}")
        res = reconstruct_sequence(seq, settings, config, labels, args.num_classes)
        out = args.output or _default_output(args.sequence)
        comp = res.compounder
        grid = comp.grid
        assert grid is not None
        write_volume(out, comp.volume(np.uint8), grid, compress=not args.no_compress,
                     world=args.world)  # fmt: skip
        lab_out = None
        if labels is not None:
            lab_out = _labels_output(out)
            write_volume(lab_out, res.label_map(), grid, compress=not args.no_compress,
                         world=args.world)  # fmt: skip
    except (
        SequenceFileError,
        PlusConfigError,
        ReconstructionError,
        VolumeFileError,
        OSError,
    ) as exc:
        print(f"us-reconstruct: error: {exc}", file=sys.stderr)
        return 2

    skipped = sum(res.skipped.values())
    print(f"sequence: {args.sequence} ({res.frames_total} frames {seq.width}x{seq.height}, "
          f"orientation {seq.orientation})")  # fmt: skip
    print(
        f"T_{res.reference_frame.lower()}_{settings.image_frame.lower()} = "
        + " * ".join(reversed(res.chain))
    )
    print(f"frames: {res.frames_used} used, {skipped} skipped")
    for reason, count in sorted(res.skipped.items()):
        print(f"  skipped {count}: {reason}")
    size = np.asarray(grid.dims) * np.asarray(grid.spacing_mm)
    filled = float(comp.filled_mask().mean())
    print(
        f"grid: {grid.dims[0]}x{grid.dims[1]}x{grid.dims[2]} voxels of "
        f"{'x'.join(f'{s:g}' for s in grid.spacing_mm)} mm, origin "
        f"({', '.join(f'{o:.2f}' for o in grid.origin_mm)}) mm ({args.world}), "
        f"size {'x'.join(f'{s:.1f}' for s in size)} mm, {100 * filled:.1f}% filled"
    )
    print(f"method: {settings.interpolation} / {settings.compounding}"
          f"{', fill holes: ' + str(res.holes_filled) + ' voxels' if settings.fill_holes else ''}"
          f"; compounded in {res.seconds:.2f} s")  # fmt: skip
    print(f"wrote {out}" + (f" and {lab_out}" if lab_out else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
