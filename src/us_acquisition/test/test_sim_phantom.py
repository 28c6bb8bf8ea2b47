"""Tests of the procedural neck phantom (coarse 0.5 mm grids to stay fast)."""

from __future__ import annotations

import numpy as np
import pytest
from us_acquisition.sim.phantom import (
    GLAND_LABELS,
    NeckPhantom,
    NeckPhantomParams,
    Tissue,
    gland_mask,
)

SPACING = 0.5


@pytest.fixture(scope="module")
def phantoms() -> list[NeckPhantom]:
    return [NeckPhantom.from_seed(seed, spacing_mm=SPACING) for seed in range(5)]


def test_same_seed_identical_different_seed_differs() -> None:
    a = NeckPhantom.from_seed(7, spacing_mm=SPACING)
    b = NeckPhantom.from_seed(7, spacing_mm=SPACING)
    c = NeckPhantom.from_seed(8, spacing_mm=SPACING)
    assert a.params == b.params
    assert np.array_equal(a.labels, b.labels)
    assert a.labels.shape == c.labels.shape
    assert not np.array_equal(a.labels, c.labels)
    assert a.params != c.params


def test_grid_dtype_origin_and_spacing() -> None:
    ph = NeckPhantom(NeckPhantomParams(spacing_mm=SPACING), seed=0)
    assert ph.labels.dtype == np.uint8
    assert ph.spacing_mm == SPACING
    p = ph.params
    assert np.allclose(ph.origin_mm, [-p.x_half_width_mm, p.y_min_mm, -p.z_half_length_mm])
    # voxel centre convention: index_of(origin + spacing * idx) == idx
    idx = np.array([10, 20, 30])
    assert np.array_equal(ph.index_of(ph.origin_mm + SPACING * idx), idx)
    # gel above the skin, skin just below y = 0
    assert ph.label_at(np.array([0.0, -1.0, 0.0])) == Tissue.GEL
    assert ph.label_at(np.array([0.0, 0.5, 0.0])) == Tissue.SKIN


def test_memory_at_default_spacing_is_bounded() -> None:
    p = NeckPhantomParams()  # 0.25 mm default
    n = (
        (round(2 * p.x_half_width_mm / p.spacing_mm) + 1)
        * (round((p.y_max_mm - p.y_min_mm) / p.spacing_mm) + 1)
        * (round(2 * p.z_half_length_mm / p.spacing_mm) + 1)
    )
    assert n < 300e6  # bytes of the uint8 volume


def test_volume_is_exact_voxel_count(phantoms: list[NeckPhantom]) -> None:
    for ph in phantoms:
        count = int(np.isin(ph.labels, np.array(GLAND_LABELS, dtype=np.uint8)).sum())
        assert count == int(gland_mask(ph.labels).sum())
        assert ph.thyroid_volume_ml == pytest.approx(count * SPACING**3 / 1000.0, rel=1e-12)
        assert 5.0 <= ph.thyroid_volume_ml <= 30.0, ph.thyroid_volume_ml


def test_lobe_length_in_range(phantoms: list[NeckPhantom]) -> None:
    for ph in phantoms:
        assert 40.0 <= ph.params.lobe_length_mm <= 60.0
        for side in ("right", "left"):
            # measured craniocaudal extent of the gland on the lobe's side of the midline
            cx = ph.landmarks.lobe_centre_mm[side][0]
            sl = ph.labels
            xs = ph.origin_mm[0] + SPACING * np.arange(sl.shape[0])
            half = xs < 0 if cx < 0 else xs > 0
            zmask = gland_mask(sl[half]).any(axis=(0, 1))
            zs = np.nonzero(zmask)[0]
            length = (zs[-1] - zs[0] + 1) * SPACING
            assert 38.0 <= length <= 62.0, (side, length)


def test_anatomy_layout(phantoms: list[NeckPhantom]) -> None:
    for ph in phantoms:
        lm = ph.landmarks
        assert lm.lobe_centre_mm["right"][0] < 0 < lm.lobe_centre_mm["left"][0]
        assert abs(lm.carotid_centre_xy_mm["right"][0]) > abs(lm.lobe_centre_mm["right"][0])
        assert abs(lm.jugular_centre_xy_mm["left"][0]) > abs(lm.carotid_centre_xy_mm["left"][0])
        z = lm.lobe_centre_mm["left"][2]
        assert ph.label_at(np.array([0.0, lm.trachea_centre_xy_mm[1], z])) == Tissue.AIR
        cx, cy = lm.carotid_centre_xy_mm["left"]
        assert ph.label_at(np.array([cx, cy, z])) == Tissue.CAROTID


def test_nodules_are_inside_gland() -> None:
    ph = NeckPhantom.from_seed(3, spacing_mm=SPACING, n_nodules=3, calcification_probability=1.0)
    assert len(ph.nodules) == 3
    labs = set(np.unique(ph.labels).tolist())
    assert Tissue.CALCIFICATION in labs
    nod = np.isin(
        ph.labels,
        np.array([Tissue.NODULE_HYPO, Tissue.NODULE_ISO, Tissue.NODULE_HYPER], np.uint8),
    )
    assert nod.any()
    assert gland_mask(ph.labels)[nod].all()
    meta = ph.metadata()
    assert meta["thyroid_volume_ml"] == ph.thyroid_volume_ml
    assert meta["tissue_labels"]["THYROID"] == 1
