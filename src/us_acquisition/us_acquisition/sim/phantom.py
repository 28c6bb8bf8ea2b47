"""Procedural neck phantom: a 3D tissue label volume around the thyroid gland.

Phantom frame (all lengths in millimetres)
-------------------------------------------
* ``x``: patient right -> patient left (the midline is ``x = 0``; the right lobe has ``x < 0``).
* ``y``: anterior -> posterior, i.e. depth below the skin.  The (flat, probe-compressed) skin
  surface is the plane ``y = 0``; ``y < 0`` is coupling gel.
* ``z``: caudal -> cranial (feet -> head).  The gland is roughly centred on ``z = 0``.

The frame is right-handed (``x`` cross ``y`` = ``z``).

Label volume
------------
``NeckPhantom.labels`` is a ``uint8`` array of shape ``(nx, ny, nz)`` indexed ``[ix, iy, iz]``
(C order, ``z`` fastest) holding :class:`Tissue` values.  The voxel grid is isotropic with
spacing ``spacing_mm``; the *centre* of voxel ``[ix, iy, iz]`` is at phantom coordinates
``origin_mm + spacing_mm * (ix, iy, iz)``.  A point ``p`` lies in voxel
``round((p - origin_mm) / spacing_mm)``.

Thyroid volume
--------------
The gland is the union of :data:`GLAND_LABELS` (normal parenchyma ``THYROID`` plus the nodules
and calcifications, which are only ever painted inside the parenchyma).  The exact volume is
``count(gland voxels) * spacing_mm**3 / 1000`` millilitres.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "GLAND_LABELS",
    "NeckPhantom",
    "NeckPhantomParams",
    "Nodule",
    "Tissue",
    "gland_mask",
]


class Tissue(IntEnum):
    """Tissue classes of the label volume and of the per-frame label images (uint8)."""

    BACKGROUND = 0  #: generic soft / connective tissue
    THYROID = 1  #: normal thyroid parenchyma (lobes + isthmus)
    SKIN = 2
    FAT = 3  #: subcutaneous fat
    STRAP_MUSCLE = 4  #: infrahyoid (sternohyoid / sternothyroid) muscles
    SCM = 5  #: sternocleidomastoid muscle
    CAROTID = 6  #: common carotid artery lumen
    JUGULAR = 7  #: internal jugular vein lumen
    TRACHEA_WALL = 8  #: tracheal cartilage ring
    AIR = 9  #: tracheal lumen
    ESOPHAGUS = 10
    DEEP_MUSCLE = 11  #: prevertebral (longus colli) muscle
    BONE = 12  #: vertebral body
    NODULE_HYPO = 13  #: hypoechoic thyroid nodule (counts as gland)
    NODULE_ISO = 14  #: isoechoic thyroid nodule (counts as gland)
    NODULE_HYPER = 15  #: hyperechoic thyroid nodule (counts as gland)
    CALCIFICATION = 16  #: macro-calcification inside a nodule (counts as gland)
    GEL = 17  #: coupling gel above the skin (y < 0)
    OUTSIDE = 255  #: not part of the ultrasound image (screen chrome)


#: Labels that make up the thyroid gland for volume / segmentation purposes.
GLAND_LABELS: tuple[Tissue, ...] = (
    Tissue.THYROID,
    Tissue.NODULE_HYPO,
    Tissue.NODULE_ISO,
    Tissue.NODULE_HYPER,
    Tissue.CALCIFICATION,
)

_NODULE_LABELS = (Tissue.NODULE_HYPO, Tissue.NODULE_ISO, Tissue.NODULE_HYPER)


def gland_mask(labels: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Boolean mask (same shape) of the thyroid gland (:data:`GLAND_LABELS`) in a label array."""
    lut = np.zeros(256, dtype=bool)
    lut[list(GLAND_LABELS)] = True
    return lut[labels]


@dataclass(frozen=True)
class NeckPhantomParams:
    """Anatomical parameters of a neck phantom (all lengths in mm).

    Use :meth:`sample` for a random but plausible adult neck.  ``x_half_width_mm``,
    ``y_min_mm``/``y_max_mm`` and ``z_half_length_mm`` set the extent of the label volume.
    """

    spacing_mm: float = 0.25  #: isotropic voxel size
    x_half_width_mm: float = 42.0  #: volume spans x in [-x_half_width_mm, +x_half_width_mm]
    y_min_mm: float = -3.0  #: volume starts in the gel above the skin
    y_max_mm: float = 46.0  #: deepest point of the volume
    z_half_length_mm: float = 40.0  #: volume spans z in [-z_half_length_mm, +z_half_length_mm]

    skin_thickness_mm: float = 1.8
    fat_thickness_mm: float = 4.0  #: mean subcutaneous fat thickness
    strap_thickness_mm: float = 3.5  #: strap muscles anterior to the gland
    lobe_length_mm: float = 50.0  #: craniocaudal length of each lobe (40-60 in adults)
    lobe_width_mm: float = 16.0  #: left-right width of a lobe at its widest
    lobe_depth_mm: float = 15.0  #: antero-posterior thickness of a lobe at its widest
    lobe_profile_exponent: float = 0.5  #: 0.5 = ellipsoid; larger = more pointed poles
    right_left_ratio: float = 1.05  #: right lobe size / left lobe size (linear)
    shape_variation: float = 0.08  #: relative amplitude of smooth radius deformations
    gland_z_offset_mm: float = 0.0  #: craniocaudal position of the lobe centres
    isthmus_thickness_mm: float = 3.0
    isthmus_height_mm: float = 14.0  #: craniocaudal extent of the isthmus
    trachea_radius_mm: float = 8.5  #: outer radius (including the cartilage)
    trachea_wall_mm: float = 1.8
    carotid_radius_mm: float = 3.4
    jugular_radius_mm: tuple[float, float] = (5.0, 3.2)  #: (lateral, antero-posterior) semi-axes
    with_esophagus: bool = True
    n_nodules: int = 1
    nodule_radius_mm: tuple[float, float] = (2.5, 7.0)  #: min/max nodule semi-axis
    calcification_probability: float = 0.4  #: chance that a nodule holds a calcification

    @classmethod
    def sample(
        cls, rng: np.random.Generator, spacing_mm: float = 0.25, **overrides: Any
    ) -> NeckPhantomParams:
        """Draw plausible adult-neck parameters from ``rng``; ``overrides`` fix chosen fields."""
        values: dict[str, Any] = dict(
            spacing_mm=spacing_mm,
            skin_thickness_mm=float(rng.uniform(1.5, 2.2)),
            fat_thickness_mm=float(rng.uniform(2.5, 6.0)),
            strap_thickness_mm=float(rng.uniform(2.5, 4.5)),
            lobe_length_mm=float(rng.uniform(42.0, 58.0)),
            lobe_width_mm=float(rng.uniform(14.0, 19.0)),
            lobe_depth_mm=float(rng.uniform(13.0, 18.0)),
            lobe_profile_exponent=float(rng.uniform(0.42, 0.6)),
            right_left_ratio=float(rng.uniform(0.95, 1.15)),
            shape_variation=float(rng.uniform(0.04, 0.12)),
            gland_z_offset_mm=float(rng.uniform(-3.0, 3.0)),
            isthmus_thickness_mm=float(rng.uniform(2.0, 5.0)),
            isthmus_height_mm=float(rng.uniform(10.0, 18.0)),
            trachea_radius_mm=float(rng.uniform(7.5, 9.5)),
            trachea_wall_mm=float(rng.uniform(1.5, 2.2)),
            carotid_radius_mm=float(rng.uniform(3.0, 4.0)),
            jugular_radius_mm=(float(rng.uniform(4.0, 6.5)), float(rng.uniform(2.5, 4.5))),
            with_esophagus=True,
            n_nodules=int(rng.choice([0, 1, 1, 2, 3])),
            calcification_probability=0.4,
        )
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Nodule:
    """A thyroid nodule: ellipsoid (axes aligned with the phantom frame), mm."""

    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    label: int  #: one of NODULE_HYPO / NODULE_ISO / NODULE_HYPER
    calcification_centre_mm: tuple[float, float, float] | None = None
    calcification_radius_mm: float = 0.0


@dataclass
class Landmarks:
    """Key anatomical positions of a built phantom (phantom frame, mm)."""

    trachea_centre_xy_mm: tuple[float, float]
    trachea_radius_mm: float
    lobe_centre_mm: dict[str, tuple[float, float, float]]  #: keys "right", "left"
    lobe_z_range_mm: tuple[float, float]  #: craniocaudal extent of the lobes (min, max)
    isthmus_z_mm: float
    carotid_centre_xy_mm: dict[str, tuple[float, float]]  #: at z = lobe centre
    jugular_centre_xy_mm: dict[str, tuple[float, float]]
    thyroid_anterior_y_mm: float


def _smooth_fn(
    rng: np.random.Generator, amplitude: float, n_terms: int = 3
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """Random smooth function of s in [-1, 1] (sum of sines), peak magnitude <= amplitude."""
    amps = rng.normal(size=n_terms) / np.arange(1, n_terms + 1)
    amps *= amplitude / max(float(np.abs(amps).sum()), 1e-9)
    phases = rng.uniform(0, 2 * np.pi, size=n_terms)

    def f(s: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.zeros_like(s, dtype=np.float64)
        for k in range(n_terms):
            out += amps[k] * np.sin(np.pi * (k + 1) * 0.5 * s + phases[k])
        return out

    return f


class NeckPhantom:
    """A seeded procedural neck phantom with a uint8 tissue label volume.

    Attributes:
        params: the anatomical parameters used.
        seed: seed of the shape deformations / nodules.
        labels: ``uint8 (nx, ny, nz)`` :class:`Tissue` volume indexed ``[ix, iy, iz]``.
        spacing_mm: isotropic voxel size (mm).
        origin_mm: ``float64 (3,)`` phantom coordinates (mm) of the centre of voxel ``[0, 0, 0]``.
        nodules: the nodules painted into the gland.
        landmarks: key anatomical positions (used by trajectories and tests).
    """

    def __init__(self, params: NeckPhantomParams | None = None, seed: int = 0) -> None:
        self.params = params if params is not None else NeckPhantomParams()
        self.seed = int(seed)
        p = self.params
        s = float(p.spacing_mm)
        self.spacing_mm = s
        nx = round(2 * p.x_half_width_mm / s) + 1
        ny = round((p.y_max_mm - p.y_min_mm) / s) + 1
        nz = round(2 * p.z_half_length_mm / s) + 1
        self.origin_mm = np.array([-p.x_half_width_mm, p.y_min_mm, -p.z_half_length_mm])
        self.labels: NDArray[np.uint8] = np.full((nx, ny, nz), Tissue.BACKGROUND, np.uint8)
        self._x = self.origin_mm[0] + s * np.arange(nx)
        self._y = self.origin_mm[1] + s * np.arange(ny)
        self._z = self.origin_mm[2] + s * np.arange(nz)
        self.nodules: list[Nodule] = []
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x7E1D]))
        self._build()

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_seed(cls, seed: int, spacing_mm: float = 0.25, **overrides: Any) -> NeckPhantom:
        """Sample :class:`NeckPhantomParams` from ``seed`` and build the phantom."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xBA5E]))
        return cls(NeckPhantomParams.sample(rng, spacing_mm=spacing_mm, **overrides), seed)

    def _index_range(self, axis: int, lo: float, hi: float) -> slice:
        coords = (self._x, self._y, self._z)[axis]
        i0 = int(np.searchsorted(coords, lo, side="left"))
        i1 = int(np.searchsorted(coords, hi, side="right"))
        return slice(max(i0, 0), min(i1, coords.size))

    def _paint(
        self,
        label: int,
        bbox: tuple[float, float, float, float, float, float],
        inside: Callable[
            [NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]
        ],
        only_on: tuple[int, ...] | None = None,
    ) -> None:
        """Set ``label`` where ``inside(X, Y, Z)`` is true within a bounding box (mm).

        ``X, Y, Z`` are broadcastable grids of shapes ``(n,1,1)``, ``(1,n,1)``, ``(1,1,n)``.
        If ``only_on`` is given, only voxels currently holding one of those labels change.
        """
        sx = self._index_range(0, bbox[0], bbox[1])
        sy = self._index_range(1, bbox[2], bbox[3])
        sz = self._index_range(2, bbox[4], bbox[5])
        if sx.start >= sx.stop or sy.start >= sy.stop or sz.start >= sz.stop:
            return
        X = self._x[sx][:, None, None]
        Y = self._y[sy][None, :, None]
        Z = self._z[sz][None, None, :]
        mask = np.broadcast_to(inside(X, Y, Z), (X.size, Y.size, Z.size))
        sub = self.labels[sx, sy, sz]
        if only_on is not None:
            mask = mask & np.isin(sub, np.asarray(only_on, dtype=np.uint8))
        sub[mask] = np.uint8(label)

    # ------------------------------------------------------------------------ anatomy
    def _build(self) -> None:
        p = self.params
        rng = self._rng
        L = self.labels
        xh, zh = p.x_half_width_mm, p.z_half_length_mm

        # Gel, skin and subcutaneous fat (fat thickness varies smoothly over x, z).
        L[:, self._index_range(1, -1e9, -1e-9), :] = Tissue.GEL
        fat_fx = _smooth_fn(rng, 0.2)
        fat_fz = _smooth_fn(rng, 0.15)

        def fat_bottom(X: NDArray[np.float64], Z: NDArray[np.float64]) -> NDArray[np.float64]:
            return p.skin_thickness_mm + p.fat_thickness_mm * (
                1.0 + fat_fx(X / xh) + fat_fz(Z / zh)
            )

        fat_max = p.skin_thickness_mm + 1.4 * p.fat_thickness_mm
        self._paint(
            Tissue.FAT,
            (-xh, xh, 0, fat_max, -zh, zh),
            lambda X, Y, Z: (Y >= 0) & (Y < fat_bottom(X, Z)),
        )
        self._paint(Tissue.SKIN, (-xh, xh, 0, p.skin_thickness_mm, -zh, zh), lambda X, Y, Z: Y >= 0)

        # Key depths.
        y_ant = p.skin_thickness_mm + p.fat_thickness_mm + p.strap_thickness_mm + 0.4
        r_tr = p.trachea_radius_mm
        y_tr = y_ant + p.isthmus_thickness_mm + 0.3 + r_tr
        zc = p.gland_z_offset_mm
        half_len = 0.5 * p.lobe_length_mm

        # Deep structures: vertebral body and prevertebral muscles.
        y_post_tr = y_tr + r_tr
        y_bone = y_post_tr + 8.5
        self._paint(
            Tissue.BONE,
            (-14, 14, y_bone, p.y_max_mm, -zh, zh),
            lambda X, Y, Z: Y >= y_bone + 0.02 * X**2,
        )
        for sgn in (-1.0, 1.0):
            cx_m = sgn * 8.0

            def longus(
                X: NDArray[np.float64],
                Y: NDArray[np.float64],
                Z: NDArray[np.float64],
                c: float = cx_m,
            ) -> NDArray[np.bool_]:
                yc = y_bone - 3.5
                out: NDArray[np.bool_] = ((X - c) / 7.0) ** 2 + ((Y - yc) / 3.3) ** 2 <= 1.0
                return out

            self._paint(
                Tissue.DEEP_MUSCLE,
                (cx_m - 8, cx_m + 8, y_bone - 8, y_bone, -zh, zh),
                longus,
                only_on=(Tissue.BACKGROUND,),
            )

        # Sternocleidomastoid: flat band running obliquely (more lateral cranially).
        scm_y = p.skin_thickness_mm + p.fat_thickness_mm + 3.2
        for sgn in (-1.0, 1.0):

            def scm(
                X: NDArray[np.float64],
                Y: NDArray[np.float64],
                Z: NDArray[np.float64],
                sgn: float = sgn,
            ) -> NDArray[np.bool_]:
                cx = sgn * (27.0 + 0.12 * Z)
                return ((X - cx) / 9.5) ** 2 + ((Y - scm_y) / 3.0) ** 2 <= 1.0

            self._paint(
                Tissue.SCM,
                (-xh, xh, scm_y - 3.5, scm_y + 3.5, -zh, zh),
                scm,
                only_on=(Tissue.BACKGROUND, Tissue.FAT),
            )

        # Strap muscles: a tapered band just anterior to the gland with a midline raphe.
        strap_half = 22.0

        def strap(
            X: NDArray[np.float64], Y: NDArray[np.float64], Z: NDArray[np.float64]
        ) -> NDArray[np.bool_]:
            top = fat_bottom(X, Z)
            taper = 1.0 - (X / strap_half) ** 4
            bottom = np.maximum(top + p.strap_thickness_mm * taper, (y_ant - 0.3) * taper)
            inside: NDArray[np.bool_] = (Y >= top) & (Y < bottom)
            return inside & (np.abs(X) > 0.25) & (np.abs(X) < strap_half)

        self._paint(
            Tissue.STRAP_MUSCLE,
            (-strap_half, strap_half, p.skin_thickness_mm, y_ant + 2, -zh, zh),
            strap,
            only_on=(Tissue.BACKGROUND, Tissue.FAT, Tissue.SCM),
        )

        # Esophagus: posterior and to the patient's left of the trachea.
        if p.with_esophagus:
            ex, ey = 0.55 * r_tr, y_tr + 0.75 * r_tr
            self._paint(
                Tissue.ESOPHAGUS,
                (ex - 7, ex + 7, ey - 5, ey + 5, -zh, zh),
                lambda X, Y, Z: ((X - ex) / 6.0) ** 2 + ((Y - ey) / 3.8) ** 2 <= 1.0,
            )

        # Thyroid lobes: smooth deformed ellipsoids along z.
        lobe_centres: dict[str, tuple[float, float, float]] = {}
        size_scale = {
            "right": math.sqrt(p.right_left_ratio),
            "left": 1.0 / math.sqrt(p.right_left_ratio),
        }
        for side, sgn in (("right", -1.0), ("left", 1.0)):
            k = size_scale[side]
            hw = 0.5 * p.lobe_width_mm * k
            hd = 0.5 * p.lobe_depth_mm * k
            hl = half_len * (0.96 + 0.08 * rng.random())
            cx0 = sgn * (r_tr + hw - 0.3 * p.lobe_width_mm)
            cy0 = y_ant + hd
            zc_lobe = zc + rng.uniform(-2.0, 2.0)
            dx = _smooth_fn(rng, p.shape_variation)
            dy = _smooth_fn(rng, p.shape_variation)
            bend_x = _smooth_fn(rng, 1.5)
            taper = rng.uniform(0.05, 0.2)
            expo = p.lobe_profile_exponent

            def lobe(
                X: NDArray[np.float64],
                Y: NDArray[np.float64],
                Z: NDArray[np.float64],
                sgn: float = sgn,
                hw: float = hw,
                hd: float = hd,
                hl: float = hl,
                cx0: float = cx0,
                cy0: float = cy0,
                zc_lobe: float = zc_lobe,
                dx: Callable[[NDArray[np.float64]], NDArray[np.float64]] = dx,
                dy: Callable[[NDArray[np.float64]], NDArray[np.float64]] = dy,
                bend_x: Callable[[NDArray[np.float64]], NDArray[np.float64]] = bend_x,
                taper: float = taper,
                expo: float = expo,
            ) -> NDArray[np.bool_]:
                s = np.clip((Z - zc_lobe) / hl, -1.0, 1.0)
                prof = np.power(np.clip(1.0 - s**2, 0.0, None), expo) * (1.0 - taper * s)
                rx = hw * prof * (1.0 + dx(s)) + 1e-6
                ry = hd * prof * (1.0 + dy(s)) + 1e-6
                # upper poles diverge laterally and run slightly posterior
                cx = cx0 + sgn * (2.0 * s + bend_x(s))
                cy = cy0 + 1.5 * s
                inside: NDArray[np.bool_] = ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0
                return inside & (np.abs(Z - zc_lobe) < hl)

            bx = abs(cx0) + hw + 5
            self._paint(
                Tissue.THYROID,
                (
                    min(sgn * bx, 0),
                    max(sgn * bx, 0),
                    y_ant - 1,
                    cy0 + hd + 4,
                    zc_lobe - hl - 1,
                    zc_lobe + hl + 1,
                ),
                lobe,
            )
            lobe_centres[side] = (cx0, cy0, zc_lobe)

        # Isthmus: slab in front of the trachea joining the lobes (lower half of the gland).
        z_is = zc - 0.12 * p.lobe_length_mm
        h_is = 0.5 * p.isthmus_height_mm
        t_is = p.isthmus_thickness_mm
        x_is = 0.5 * (abs(lobe_centres["right"][0]) + abs(lobe_centres["left"][0]))

        def isthmus(
            X: NDArray[np.float64], Y: NDArray[np.float64], Z: NDArray[np.float64]
        ) -> NDArray[np.bool_]:
            zprof = np.sqrt(np.clip(1.0 - ((Z - z_is) / h_is) ** 4, 0.0, None))
            r = np.sqrt(X**2 + (Y - y_tr) ** 2)
            ring = (r >= r_tr + 0.2) & (r <= r_tr + 0.2 + t_is * zprof)
            return ring & (Y < y_tr - 0.2 * r_tr) & (np.abs(X) <= x_is) & (zprof > 0)

        self._paint(
            Tissue.THYROID,
            (-x_is, x_is, y_ant - 1, y_tr, z_is - h_is, z_is + h_is),
            isthmus,
            only_on=(Tissue.BACKGROUND, Tissue.STRAP_MUSCLE),
        )

        # Trachea (cartilage ring around an air lumen) overrides thyroid and esophagus.
        self._paint(
            Tissue.TRACHEA_WALL,
            (-r_tr, r_tr, y_tr - r_tr, y_tr + r_tr, -zh, zh),
            lambda X, Y, Z: X**2 + (Y - y_tr) ** 2 <= r_tr**2,
        )
        r_lu = r_tr - p.trachea_wall_mm
        self._paint(
            Tissue.AIR,
            (-r_lu, r_lu, y_tr - r_lu, y_tr + r_lu, -zh, zh),
            lambda X, Y, Z: X**2 + (Y - y_tr) ** 2 <= r_lu**2,
        )

        # Carotid arteries and internal jugular veins, lateral to the lobes.
        carotid: dict[str, tuple[float, float]] = {}
        jugular: dict[str, tuple[float, float]] = {}
        r_cc = p.carotid_radius_mm
        jrx, jry = p.jugular_radius_mm
        for side, sgn in (("right", -1.0), ("left", 1.0)):
            cx0, cy0, zl = lobe_centres[side]
            hw = 0.5 * p.lobe_width_mm * size_scale[side]
            hd = 0.5 * p.lobe_depth_mm * size_scale[side]
            ccx = cx0 + sgn * (0.55 * hw + r_cc + 0.5)
            ccy = cy0 + 0.45 * hd
            carotid[side] = (ccx, ccy)
            jx = ccx + sgn * (r_cc + 0.7 * jrx + 0.5)
            jy = ccy - 0.6 * r_cc
            jugular[side] = (jx, jy)
            jvar = _smooth_fn(rng, 0.15)

            def cca(
                X: NDArray[np.float64],
                Y: NDArray[np.float64],
                Z: NDArray[np.float64],
                ccx: float = ccx,
                ccy: float = ccy,
                sgn: float = sgn,
                zl: float = zl,
            ) -> NDArray[np.bool_]:
                cx = ccx + sgn * 0.06 * (Z - zl)
                return (X - cx) ** 2 + (Y - ccy) ** 2 <= r_cc**2

            def ijv(
                X: NDArray[np.float64],
                Y: NDArray[np.float64],
                Z: NDArray[np.float64],
                jx: float = jx,
                jy: float = jy,
                sgn: float = sgn,
                zl: float = zl,
                jvar: Callable[[NDArray[np.float64]], NDArray[np.float64]] = jvar,
            ) -> NDArray[np.bool_]:
                k = 1.0 + jvar(Z / zh)
                cx = jx + sgn * 0.08 * (Z - zl)
                return ((X - cx) / (jrx * k)) ** 2 + ((Y - jy) / (jry * k)) ** 2 <= 1.0

            self._paint(Tissue.CAROTID, (-xh, xh, ccy - r_cc - 1, ccy + r_cc + 1, -zh, zh), cca)
            self._paint(
                Tissue.JUGULAR,
                (-xh, xh, jy - 1.3 * jry - 1, jy + 1.3 * jry + 1, -zh, zh),
                ijv,
                only_on=(
                    Tissue.BACKGROUND,
                    Tissue.THYROID,
                    Tissue.SCM,
                    Tissue.STRAP_MUSCLE,
                    Tissue.FAT,
                ),
            )

        # Nodules (clipped to the parenchyma) with optional calcifications.
        for _ in range(p.n_nodules):
            self._add_nodule(rng, lobe_centres, size_scale)

        self.landmarks = Landmarks(
            trachea_centre_xy_mm=(0.0, y_tr),
            trachea_radius_mm=r_tr,
            lobe_centre_mm=lobe_centres,
            lobe_z_range_mm=(zc - half_len, zc + half_len),
            isthmus_z_mm=z_is,
            carotid_centre_xy_mm=carotid,
            jugular_centre_xy_mm=jugular,
            thyroid_anterior_y_mm=y_ant,
        )

    def _add_nodule(
        self,
        rng: np.random.Generator,
        lobe_centres: dict[str, tuple[float, float, float]],
        size_scale: dict[str, float],
    ) -> None:
        p = self.params
        side = "right" if rng.random() < 0.5 else "left"
        cx, cy, cz = lobe_centres[side]
        k = size_scale[side]
        centre = (
            cx + rng.uniform(-0.3, 0.3) * p.lobe_width_mm * k * 0.5,
            cy + rng.uniform(-0.3, 0.3) * p.lobe_depth_mm * k * 0.5,
            cz + rng.uniform(-0.5, 0.5) * p.lobe_length_mm * 0.5,
        )
        r0 = rng.uniform(*p.nodule_radius_mm)
        radii = (
            r0 * rng.uniform(0.8, 1.1),
            r0 * rng.uniform(0.75, 1.0),
            r0 * rng.uniform(0.9, 1.3),
        )
        label = int(rng.choice([Tissue.NODULE_HYPO, Tissue.NODULE_ISO, Tissue.NODULE_HYPER]))
        calc_c: tuple[float, float, float] | None = None
        calc_r = 0.0
        if rng.random() < p.calcification_probability:
            calc_r = float(rng.uniform(0.6, 1.3))
            off = rng.uniform(-0.4, 0.4, size=3) * np.asarray(radii)
            calc_c = (centre[0] + off[0], centre[1] + off[1], centre[2] + off[2])
        nod = Nodule(tuple(map(float, centre)), tuple(map(float, radii)), label, calc_c, calc_r)  # type: ignore[arg-type]
        c = np.asarray(centre)
        r = np.asarray(radii)

        def ell(
            X: NDArray[np.float64], Y: NDArray[np.float64], Z: NDArray[np.float64]
        ) -> NDArray[np.bool_]:
            d: NDArray[np.bool_] = (
                ((X - c[0]) / r[0]) ** 2 + ((Y - c[1]) / r[1]) ** 2 + ((Z - c[2]) / r[2]) ** 2
            ) <= 1.0
            return d

        bb = (c[0] - r[0], c[0] + r[0], c[1] - r[1], c[1] + r[1], c[2] - r[2], c[2] + r[2])
        self._paint(label, bb, ell, only_on=(Tissue.THYROID,))
        if calc_c is not None:
            cc = np.asarray(calc_c)
            self._paint(
                Tissue.CALCIFICATION,
                (
                    cc[0] - calc_r,
                    cc[0] + calc_r,
                    cc[1] - calc_r,
                    cc[1] + calc_r,
                    cc[2] - calc_r,
                    cc[2] + calc_r,
                ),
                lambda X, Y, Z: (X - cc[0]) ** 2 + (Y - cc[1]) ** 2 + (Z - cc[2]) ** 2 <= calc_r**2,
                only_on=_NODULE_LABELS,
            )
        self.nodules.append(nod)

    # ------------------------------------------------------------------------- queries
    @property
    def shape(self) -> tuple[int, int, int]:
        """Label volume shape ``(nx, ny, nz)``."""
        nx, ny, nz = self.labels.shape
        return (nx, ny, nz)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel (mm^3)."""
        return self.spacing_mm**3

    @property
    def thyroid_voxel_count(self) -> int:
        """Number of gland voxels (:data:`GLAND_LABELS`, nodules included)."""
        counts = np.bincount(self.labels.ravel(), minlength=256)
        return int(sum(int(counts[int(t)]) for t in GLAND_LABELS))

    @property
    def thyroid_volume_ml(self) -> float:
        """Exact gland volume (mL) = gland voxel count * voxel mm^3 / 1000 (nodules included)."""
        return self.thyroid_voxel_count * self.voxel_volume_mm3 / 1000.0

    def index_of(self, point_mm: NDArray[np.float64]) -> NDArray[np.int64]:
        """Voxel index ``(..., 3)`` (int64, unclipped) holding phantom points ``(..., 3)`` mm."""
        return np.rint((np.asarray(point_mm) - self.origin_mm) / self.spacing_mm).astype(np.int64)

    def label_at(self, point_mm: NDArray[np.float64]) -> NDArray[np.uint8]:
        """Labels (uint8, shape ``(...)``) at phantom points ``(..., 3)`` mm (clipped to volume)."""
        idx = self.index_of(point_mm)
        idx = np.clip(idx, 0, np.asarray(self.labels.shape) - 1)
        return self.labels[idx[..., 0], idx[..., 1], idx[..., 2]]

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description (params, seed, grid, volume, landmarks)."""
        return {
            "seed": self.seed,
            "params": dataclasses.asdict(self.params),
            "spacing_mm": self.spacing_mm,
            "origin_mm": [float(v) for v in self.origin_mm],
            "shape": list(self.shape),
            "axes": "x: patient right->left, y: anterior->posterior (depth, skin at y=0), "
            "z: caudal->cranial; labels[ix, iy, iz], voxel centre = origin + spacing * index",
            "thyroid_volume_ml": self.thyroid_volume_ml,
            "nodules": [dataclasses.asdict(n) for n in self.nodules],
            "landmarks": dataclasses.asdict(self.landmarks),
            "tissue_labels": {t.name: int(t) for t in Tissue},
        }
