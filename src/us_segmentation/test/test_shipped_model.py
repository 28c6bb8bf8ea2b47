"""The shipped model segments a phantom it never saw (generated here, coarse and short)."""

from __future__ import annotations

import numpy as np
import pytest
from us_acquisition.sim import BModeSimulator, NeckPhantom
from us_acquisition.sim.bmode import BModeParams
from us_acquisition.sim.dataset import make_trajectory, simulate_sweep
from us_acquisition.sim.phantom import gland_mask
from us_segmentation.inference import Segmenter
from us_segmentation.model_card import load_card

from us_segmentation import default_model_dir

#: Training data used phantom seeds 1000-1013 (``--seed 1``: S * 1000 + i).
PHANTOM_SEED = 4242
DICE_FLOOR = 0.85


@pytest.fixture(scope="module")
def frames() -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """12 frames (640x480) of two short sweeps of an unseen phantom: images, gland masks,
    pixel spacing."""
    ph = NeckPhantom.from_seed(PHANTOM_SEED)
    imgs, gts = [], []
    sp: tuple[float, float] = (0.0, 0.0)
    for j, kind in enumerate(["freehand_transverse", "freehand_longitudinal_left"]):
        sim = BModeSimulator(ph, BModeParams(width_px=640, height_px=480), seed=77 + j)
        sw = simulate_sweep(ph, sim, make_trajectory(kind, ph, 77 + j), n_frames=6, seed=77 + j)
        imgs.append(sw.images)
        gts.append(gland_mask(sw.labels))
        sp = (float(sw.pixel_spacing_mm[0]), float(sw.pixel_spacing_mm[1]))
    return np.concatenate(imgs), np.concatenate(gts), sp


def test_shipped_card_valid() -> None:
    card = load_card(default_model_dir())
    assert card.backend == "torchscript" and card.onnx_file is not None
    assert card.classes[card.thyroid_index] == "thyroid"
    total = sum(f.stat().st_size for f in card.path.parent.iterdir())
    assert total < 15e6


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_shipped_model_dice_floor(
    frames: tuple[np.ndarray, np.ndarray, tuple[float, float]], backend: str
) -> None:
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    images, gts, sp = frames
    seg = Segmenter(default_model_dir(), backend=backend, device="cpu", threads=2)
    inter = tot = 0
    per_frame = []
    for img, gt in zip(images, gts, strict=True):
        pred = seg.segment(img, sp).labels == seg.card.thyroid_index
        inter += int((pred & gt).sum())
        tot += int(pred.sum() + gt.sum())
        if gt.sum() * sp[0] * sp[1] > 20.0:  # frames showing >= 20 mm^2 of gland
            per_frame.append(2.0 * (pred & gt).sum() / (pred.sum() + gt.sum()))
    assert len(per_frame) >= 6
    pooled = 2.0 * inter / tot
    assert pooled >= DICE_FLOOR, f"pooled Dice {pooled:.3f} < {DICE_FLOOR}"
    assert float(np.mean(per_frame)) >= DICE_FLOOR, f"per-frame Dice {per_frame}"
