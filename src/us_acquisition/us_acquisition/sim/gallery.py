"""Gallery figure of the simulator (transverse / longitudinal frames, labels, 1080p screen).

``python -m us_acquisition.sim.gallery [--out docs/img/sim_gallery.png] [--seed 4]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .bmode import BModeParams, BModeSimulator
from .motion import longitudinal_pose, transverse_pose
from .phantom import NeckPhantom, Tissue

__all__ = ["label_colors", "make_gallery"]


def label_colors() -> NDArray[np.uint8]:
    """RGB colour table ``uint8 (256, 3)`` for :class:`Tissue` label images."""
    lut = np.zeros((256, 3), np.uint8)
    colors = {
        Tissue.BACKGROUND: (40, 40, 40),
        Tissue.THYROID: (230, 160, 40),
        Tissue.SKIN: (250, 220, 200),
        Tissue.FAT: (240, 240, 120),
        Tissue.STRAP_MUSCLE: (200, 60, 60),
        Tissue.SCM: (150, 40, 90),
        Tissue.CAROTID: (230, 20, 20),
        Tissue.JUGULAR: (40, 80, 230),
        Tissue.TRACHEA_WALL: (160, 160, 220),
        Tissue.AIR: (10, 10, 60),
        Tissue.ESOPHAGUS: (150, 110, 80),
        Tissue.DEEP_MUSCLE: (120, 50, 50),
        Tissue.BONE: (245, 245, 245),
        Tissue.NODULE_HYPO: (120, 200, 80),
        Tissue.NODULE_ISO: (80, 200, 200),
        Tissue.NODULE_HYPER: (200, 240, 120),
        Tissue.CALCIFICATION: (255, 255, 255),
        Tissue.GEL: (0, 0, 0),
        Tissue.OUTSIDE: (0, 0, 0),
    }
    for k, c in colors.items():
        lut[int(k)] = c
    return lut


def make_gallery(out: str | Path, seed: int = 4, spacing_mm: float = 0.25) -> Path:
    """Render the gallery PNG (matplotlib Agg) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    ph = NeckPhantom.from_seed(
        seed, spacing_mm=spacing_mm, n_nodules=2, calcification_probability=1.0
    )
    lm = ph.landmarks
    sim = BModeSimulator(ph, seed=seed)
    zc = 0.5 * (lm.lobe_centre_mm["left"][2] + lm.lobe_centre_mm["right"][2])
    nod = ph.nodules[0] if ph.nodules else None
    side = "left"
    if nod is not None:
        side = "left" if nod.centre_mm[0] > 0 else "right"
    cx, _, cz = lm.lobe_centre_mm[side]
    x_long = nod.centre_mm[0] if nod is not None else cx
    t_tr = transverse_pose(0.0, zc)
    t_lo = longitudinal_pose(x_long, cz)
    fr_t = sim.render(t_tr)
    fr_l = sim.render(t_lo)
    screen = BModeSimulator(ph, BModeParams(screen=True), seed=seed).render(t_tr)
    lut = label_colors()
    sx, sy = fr_t.pixel_spacing_mm
    h, w = fr_t.image.shape
    ext = (-w * sx / 2, w * sx / 2, h * sy, 0.0)

    fig = plt.figure(figsize=(16, 15.5), dpi=90)
    gs = fig.add_gridspec(3, 2, height_ratios=[1, 1, 1.25])
    panels = [
        (fr_t.image, f"transverse, mid-gland (z = {zc:.1f} mm); image left = patient right"),
        (lut[fr_t.labels], "transverse labels"),
        (fr_l.image, f"longitudinal, {side} lobe (x = {x_long:.1f} mm); image left = cranial"),
        (lut[fr_l.labels], "longitudinal labels"),
    ]
    for k, (img, title) in enumerate(panels):
        ax = fig.add_subplot(gs[k // 2, k % 2])
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, extent=ext, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("lateral x_p (mm)")
        ax.set_ylabel("depth y_p (mm)")
    ax = fig.add_subplot(gs[2, :])
    ax.imshow(screen.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    x0, y0, rw, rh = screen.roi
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), rw, rh, fill=False, ec="lime", lw=1.5))
    ax.set_title(
        f"1920x1080 scanner-screen mode, ROI (x, y, w, h) = {screen.roi} (green)", fontsize=10
    )
    ax.axis("off")
    fig.suptitle(
        f"us_acquisition.sim: phantom seed {seed}, {ph.thyroid_volume_ml:.1f} mL gland, "
        f"lobe length {ph.params.lobe_length_mm:.0f} mm, 10 MHz linear probe 50 x 40 mm",
        fontsize=12,
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: write the gallery PNG."""
    ap = argparse.ArgumentParser(description="Write the simulator gallery PNG.")
    ap.add_argument("--out", type=Path, default=Path("docs/img/sim_gallery.png"))
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args(argv)
    print(make_gallery(args.out, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
