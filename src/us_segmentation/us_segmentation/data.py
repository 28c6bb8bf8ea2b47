"""Dataset loading and the shared pre-processing (pure numpy/torch, no ROS imports).

The **same** :func:`resize_frames` is used for training and at inference, so the network
always sees frames resized the same way (bilinear with anti-aliasing, no padding: a frame
of any aspect is stretched to the model input ``H x W``; the default 640x480 ROI and the
144x192 input are both 4:3, so the default is isotropic).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CLASS_NAMES",
    "FrameSet",
    "class_targets",
    "load_split",
    "read_splits",
    "resize_frames",
    "resize_masks",
]

#: Default classes of the shipped model (index = label value in the output mask).
CLASS_NAMES: tuple[str, ...] = ("background", "thyroid")


def resize_frames(images: np.ndarray | torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Resize grey frames to the model input size.

    Args:
        images: ``(N, H, W)`` or ``(H, W)`` uint8 (or float in [0, 255]).
        size_hw: output ``(h, w)`` in pixels.

    Returns:
        ``(N, h, w)`` float32 tensor in [0, 255] (bilinear, anti-aliased when shrinking).
    """
    t = torch.as_tensor(
        np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images
    ).float()
    if t.ndim == 2:
        t = t[None]
    if tuple(t.shape[-2:]) == tuple(size_hw):
        return t.contiguous()
    out = F.interpolate(
        t[:, None], size=size_hw, mode="bilinear", align_corners=False, antialias=True
    )
    return out[:, 0].clamp_(0.0, 255.0)


def resize_masks(masks: np.ndarray, size_hw: tuple[int, int], n_classes: int) -> np.ndarray:
    """Resize class-index masks ``(N, H, W)`` uint8 to ``(N, h, w)`` uint8 by area-weighted
    voting (each class's indicator is resized like the images, then arg-max)."""
    t = torch.as_tensor(np.ascontiguousarray(masks)).long()
    one_hot = F.one_hot(t, n_classes).permute(0, 3, 1, 2).float()
    r = F.interpolate(one_hot, size=size_hw, mode="bilinear", align_corners=False, antialias=True)
    return r.argmax(1).to(torch.uint8).numpy()


def class_targets(labels: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> np.ndarray:
    """Map simulator ``Tissue`` labels ``(..., H, W)`` uint8 to class indices (same shape,
    uint8). ``thyroid`` = the whole gland incl. nodules/calcifications (``gland_mask``);
    optional ``carotid`` / ``jugular`` / ``trachea`` classes map to those tissues."""
    from us_acquisition.sim.phantom import Tissue, gland_mask

    out = np.zeros(labels.shape, np.uint8)
    for idx, name in enumerate(class_names):
        if idx == 0:
            continue
        if name == "thyroid":
            m = gland_mask(labels)
        else:
            members = [t for t in Tissue if t.name.lower().startswith(name.lower())]
            if not members:
                raise ValueError(f"class {name!r} has no matching simulator tissue")
            m = np.isin(labels, [int(t) for t in members])
        out[m] = idx
    return out


def read_splits(data_dir: str | Path) -> dict[str, list[str]]:
    """``splits.json`` of a simulator dataset: split name -> list of ``.npz`` paths (relative
    to ``data_dir``), from the phantom-level ``train`` / ``validation`` / ``test`` lists."""
    data_dir = Path(data_dir)
    s = json.loads((data_dir / "splits.json").read_text())
    files: dict[str, list[str]] = s["files"]
    return {
        k: [f for pid in s[k] for f in files[pid]]
        for k in ("train", "validation", "test")
        if k in s
    }


@dataclass
class FrameSet:
    """Frames of one split at model resolution.

    Attributes:
        images: ``(N, h, w)`` uint8, resized with :func:`resize_frames` (rounded).
        targets: ``(N, h, w)`` uint8 class indices.
        spacing_mm: ``(N, 2)`` float64 full-resolution pixel spacing (sx, sy) in mm.
        sweep_index: ``(N,)`` int32 index into ``files``.
        files: the ``.npz`` files, relative to the data directory.
    """

    images: np.ndarray
    targets: np.ndarray
    spacing_mm: np.ndarray
    sweep_index: np.ndarray
    files: list[str]


def load_split(
    data_dir: str | Path,
    split: str,
    size_hw: tuple[int, int],
    class_names: tuple[str, ...] = CLASS_NAMES,
    frame_step: int = 1,
) -> FrameSet:
    """Load every ``frame_step``-th frame of all sweeps of ``split`` at model resolution."""
    data_dir = Path(data_dir)
    files = read_splits(data_dir)[split]
    imgs, tgts, sp, idx = [], [], [], []
    for k, rel in enumerate(files):
        with np.load(data_dir / rel) as z:
            im = z["images"][::frame_step]
            lab = z["labels"][::frame_step]
            spacing = np.asarray(z["pixel_spacing_mm"], np.float64)
        imgs.append(resize_frames(im, size_hw).round().to(torch.uint8).numpy())
        tgts.append(resize_masks(class_targets(lab, class_names), size_hw, len(class_names)))
        sp.append(np.repeat(spacing[None], len(im), 0))
        idx.append(np.full(len(im), k, np.int32))
    return FrameSet(
        np.concatenate(imgs), np.concatenate(tgts), np.concatenate(sp), np.concatenate(idx), files
    )
