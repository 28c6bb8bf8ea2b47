"""Segmenter shapes/dtypes/determinism, post-processing, metrics, augmentation, model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from us_segmentation.augment import augment_batch
from us_segmentation.inference import (
    PostProcess,
    Segmenter,
    fill_holes,
    keep_largest_component,
    postprocess,
)
from us_segmentation.metrics import dice, hd95_mm
from us_segmentation.model import UNet, count_parameters


def _frame(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def test_segment_shapes_dtypes(tiny_model_dir: Path) -> None:
    seg = Segmenter(tiny_model_dir, device="cpu", threads=1)
    for shape in [(120, 160), (97, 211)]:
        labels, conf = seg.segment(_frame(*shape), spacing_mm=(0.1, 0.1))
        assert labels.shape == shape and labels.dtype == np.uint8
        assert conf.shape == shape and conf.dtype == np.float32
        assert set(np.unique(labels)) <= {0, 1}
        assert float(conf.min()) >= 0.5 - 1e-6 and float(conf.max()) <= 1.0 + 1e-6
        p = seg.probabilities(_frame(*shape))
        assert p.shape == (2, *shape) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(H, W\) grey frame"):
        seg.segment(np.zeros((4, 5, 3), np.uint8))


def test_cpu_inference_deterministic(tiny_model_dir: Path) -> None:
    f = _frame(seed=3)
    a = Segmenter(tiny_model_dir, device="cpu", threads=1).segment(f)
    b = Segmenter(tiny_model_dir, device="cpu", threads=1).segment(f)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.confidence, b.confidence)


def test_torchscript_and_onnx_agree(tiny_model_dir: Path) -> None:
    pytest.importorskip("onnxruntime")
    from seg_test_utils import write_tiny_card

    write_tiny_card(tiny_model_dir, onnx_file="model.onnx")
    f = _frame(seed=5)
    pt = Segmenter(tiny_model_dir, backend="torchscript", device="cpu", threads=1)
    ox = Segmenter(tiny_model_dir, backend="onnx", device="cpu", threads=1)
    np.testing.assert_allclose(pt.probabilities(f), ox.probabilities(f), atol=1e-4)
    write_tiny_card(tiny_model_dir)


def test_keep_largest_and_fill_holes() -> None:
    m = np.zeros((20, 20), bool)
    m[2:10, 2:10] = True  # 64 px with a hole
    m[5, 5] = False
    m[15:18, 15:18] = True  # 9 px
    big = keep_largest_component(m)
    assert big.sum() == 63 and not big[16, 16]
    filled = fill_holes(big)
    assert filled.sum() == 64 and filled[5, 5]
    assert not keep_largest_component(np.zeros((4, 4), bool)).any()


def test_postprocess_per_class_and_min_area() -> None:
    lab = np.zeros((30, 30), np.uint8)
    lab[2:12, 2:12] = 1  # thyroid 100 px with a 1-px hole
    lab[6, 6] = 0
    lab[20:22, 20:22] = 1  # thyroid speck 4 px
    lab[15:25, 2:8] = 2  # carotid
    classes = ("background", "thyroid", "carotid")
    # default: fill holes only
    out = postprocess(lab, classes, PostProcess())
    assert out[6, 6] == 1 and out[21, 21] == 1
    # largest component for thyroid only
    out = postprocess(lab, classes, PostProcess(largest_component=["thyroid"]))
    assert out[21, 21] == 0 and out[6, 6] == 1 and (out == 2).sum() == 60
    # min area 0.5 mm^2 at 0.25 mm/px = 8 px removes the 4-px speck
    out = postprocess(lab, classes, PostProcess(min_area_mm2=0.5), spacing_mm=(0.25, 0.25))
    assert out[21, 21] == 0 and (out == 1).sum() == 100
    # no fill
    out = postprocess(lab, classes, PostProcess(fill_holes=False))
    np.testing.assert_array_equal(out, lab)


def test_metrics_dice_hd95() -> None:
    a = np.zeros((50, 50), bool)
    a[10:30, 10:30] = True
    b = np.zeros_like(a)
    b[10:30, 12:32] = True  # shifted 2 columns
    assert dice(a, a) == 1.0 and dice(a, np.zeros_like(a)) == 0.0
    assert dice(a, b) == pytest.approx(2 * 360 / 800)
    # 2 px at sx = 0.1 mm -> 0.2 mm; rows unaffected by sy
    assert hd95_mm(a, b, (0.1, 0.5)) == pytest.approx(0.2, abs=1e-9)
    assert hd95_mm(a, a, (0.1, 0.1)) == 0.0
    assert hd95_mm(a, np.zeros_like(a), (0.1, 0.1)) == float("inf")


def test_augment_deterministic_and_valid() -> None:
    img = torch.rand(4, 48, 64) * 255
    tgt = torch.zeros(4, 48, 64, dtype=torch.long)
    tgt[:, 10:30, 20:40] = 1
    a1, t1 = augment_batch(img, tgt, torch.Generator().manual_seed(1))
    a2, t2 = augment_batch(img, tgt, torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2) and torch.equal(t1, t2)
    assert a1.shape == img.shape and t1.shape == tgt.shape and t1.dtype == torch.long
    assert float(a1.min()) >= 0.0 and float(a1.max()) <= 255.0
    assert set(t1.unique().tolist()) <= {0, 1} and int(t1.sum()) > 0


def test_unet_shapes() -> None:
    m = UNet(1, 3, base=16, depth=4).eval()
    assert 0.5e6 < count_parameters(m) < 2e6
    with torch.no_grad():
        y = m(torch.zeros(2, 1, 64, 96))
    assert y.shape == (2, 3, 64, 96) and y.dtype == torch.float32
