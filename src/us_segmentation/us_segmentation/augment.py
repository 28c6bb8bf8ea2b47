"""Batched, seeded ultrasound augmentation on torch tensors (CPU, no ROS imports).

All functions take/return grey values in [0, 255] float32 ``(B, H, W)`` and class-index
targets ``(B, H, W)`` int64; randomness comes only from the given ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentParams", "augment_batch"]


@dataclass
class AugmentParams:
    """Probabilities and ranges of :func:`augment_batch` (grey levels in 0-255 units;
    the simulator maps 60 dB to 0-255, so 4.25 grey = 1 dB of gain)."""

    p_flip: float = 0.5
    p_depth_crop: float = 0.5
    depth_keep: tuple[float, float] = (0.65, 1.0)  # fraction of the depth kept (rows from top)
    p_affine: float = 0.7
    scale: tuple[float, float] = (0.9, 1.12)
    rotate_deg: float = 6.0
    shift: float = 0.06  # fraction of the half-size
    p_elastic: float = 0.5
    elastic_px: float = 2.5  # displacement amplitude in output pixels
    gain_grey: float = 25.0  # +- overall gain offset
    contrast: tuple[float, float] = (0.75, 1.3)  # dynamic-range change about grey 128
    tgc_ramp_grey: float = 15.0  # +- linear ramp top -> bottom
    p_speckle: float = 0.6
    speckle_sigma: tuple[float, float] = (0.05, 0.25)  # multiplicative noise std
    p_shadow: float = 0.3
    shadow_factor: tuple[float, float] = (0.15, 0.6)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _geometric(
    img: torch.Tensor, tgt: torch.Tensor, p: AugmentParams, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    b, h, w = img.shape
    # theta maps output normalised coords (x, y) in [-1, 1] to input coords.
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    flip = torch.rand(b, generator=g) < p.p_flip
    theta[flip, 0, 0] = -1.0
    # depth crop: output rows cover input rows [0, keep*h] (skin stays on top)
    crop = torch.rand(b, generator=g) < p.p_depth_crop
    keep = torch.where(crop, _uniform(b, *p.depth_keep, g), torch.ones(b))
    theta[:, 1, 1] = keep
    theta[:, 1, 2] = keep - 1.0
    aff = torch.rand(b, generator=g) < p.p_affine
    s = torch.where(aff, _uniform(b, *p.scale, g), torch.ones(b))
    a = torch.where(aff, _uniform(b, -p.rotate_deg, p.rotate_deg, g), torch.zeros(b))
    a = a * math.pi / 180.0
    tx = torch.where(aff, _uniform(b, -p.shift, p.shift, g), torch.zeros(b))
    ty = torch.where(aff, _uniform(b, -p.shift, p.shift, g), torch.zeros(b))
    rot = torch.zeros(b, 2, 3)
    rot[:, 0, 0] = torch.cos(a) / s
    rot[:, 0, 1] = -torch.sin(a) / s * (h / w)
    rot[:, 1, 0] = torch.sin(a) / s * (w / h)
    rot[:, 1, 1] = torch.cos(a) / s
    rot[:, 0, 2] = tx
    rot[:, 1, 2] = ty
    # compose: first rot/scale in output space, then flip/crop
    m1 = torch.cat([rot, torch.tensor([0.0, 0.0, 1.0]).expand(b, 1, 3)], 1)
    m2 = torch.cat([theta, torch.tensor([0.0, 0.0, 1.0]).expand(b, 1, 3)], 1)
    full = (m2 @ m1)[:, :2]
    grid = F.affine_grid(full, [b, 1, h, w], align_corners=False)
    el = torch.rand(b, generator=g) < p.p_elastic
    if el.any():
        coarse = torch.randn(b, 2, 5, 7, generator=g) * el[:, None, None, None]
        disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        disp = disp.permute(0, 2, 3, 1) * p.elastic_px
        disp[..., 0] *= 2.0 / w
        disp[..., 1] *= 2.0 / h
        grid = grid + disp
    img_o = F.grid_sample(
        img[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[:, 0]
    tgt_o = F.grid_sample(
        tgt[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )[:, 0].long()
    return img_o, tgt_o


def _intensity(img: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    b, h, w = img.shape
    # speckle-like multiplicative noise, spatially correlated over ~2 px
    sp = torch.rand(b, generator=g) < p.p_speckle
    if sp.any():
        sigma = _uniform(b, *p.speckle_sigma, g) * sp
        n = torch.randn(b, 1, h, w, generator=g)
        n = F.avg_pool2d(n, 3, stride=1, padding=1)[:, 0] * 3.0  # unit-ish std again
        img = img * (1.0 + sigma[:, None, None] * n).clamp_min(0.0)
    # acoustic shadow band: columns [c0, c0 + bw) below row r0, soft edges
    sh = torch.rand(b, generator=g) < p.p_shadow
    if sh.any():
        cols = torch.arange(w, dtype=torch.float32)
        rows = torch.arange(h, dtype=torch.float32)
        c0 = _uniform(b, 0.0, w * 0.9, g)
        bw = _uniform(b, w * 0.04, w * 0.2, g)
        r0 = _uniform(b, 0.0, h * 0.7, g)
        f = _uniform(b, *p.shadow_factor, g)
        colm = torch.sigmoid((cols[None] - c0[:, None]) / 2.0) * torch.sigmoid(
            (c0[:, None] + bw[:, None] - cols[None]) / 2.0
        )
        rowm = torch.sigmoid((rows[None] - r0[:, None]) / 3.0)
        mask = rowm[:, :, None] * colm[:, None, :] * sh[:, None, None]
        img = img * (1.0 - mask * (1.0 - f[:, None, None]))
    # gain, contrast (dynamic range) and a TGC-like depth ramp
    gain = _uniform(b, -p.gain_grey, p.gain_grey, g)
    con = _uniform(b, *p.contrast, g)
    ramp = _uniform(b, -p.tgc_ramp_grey, p.tgc_ramp_grey, g)
    depth = torch.linspace(-0.5, 0.5, h)
    img = (img - 128.0) * con[:, None, None] + 128.0 + gain[:, None, None]
    img = img + ramp[:, None, None] * depth[None, :, None]
    return img.clamp(0.0, 255.0)


def augment_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    g: torch.Generator,
    params: AugmentParams | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch.

    Args:
        images: ``(B, H, W)`` float32 grey in [0, 255].
        targets: ``(B, H, W)`` int64 class indices.
        g: seeded CPU generator (the only source of randomness).
        params: ranges; defaults to :class:`AugmentParams`.

    Returns:
        ``(images (B, H, W) float32 in [0, 255], targets (B, H, W) int64)``.
    """
    p = params or AugmentParams()
    img, tgt = _geometric(images.float(), targets, p, g)
    return _intensity(img, p, g), tgt
