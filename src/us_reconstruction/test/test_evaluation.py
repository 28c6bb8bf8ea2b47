"""A small end-to-end reconstruction run with ground-truth labels (no segmentation model)."""

from __future__ import annotations

import numpy as np
from us_reconstruction.evaluation import (
    EVAL_PHANTOM_SEEDS,
    keep_large_components,
    simulate_sweep_reconstruction,
)


def test_small_sweep_with_ground_truth_labels() -> None:
    res = simulate_sweep_reconstruction(
        EVAL_PHANTOM_SEEDS[0],
        frames=60,
        spacing_mm=1.0,
        segment=False,
        image_size=(160, 128),
        phantom_spacing_mm=0.5,
        fill_holes_radius_vox=2,
    )
    assert res["frames_inserted"] == 60
    assert res["frames_skipped_pose"] == {}
    assert abs(res["volume_err_pct"]) < 10.0
    assert res["hd95_mm"] < 3.0
    assert res["coverage"] > 0.95
    assert len(res["lobes_lwd_mm"]) == 2
    assert res["mesh_triangles"] > 0


def test_keep_large_components() -> None:
    m = np.zeros((30, 10, 10), bool)
    m[1:9, 1:9, 1:9] = True  # 512
    m[12:19, 1:9, 1:9] = True  # 448 (kept: >= 10 %)
    m[25, 5, 5] = True  # 1 voxel (dropped)
    out = keep_large_components(m)
    assert out.sum() == 512 + 448
