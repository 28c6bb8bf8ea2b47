"""Compact U-Net for B-mode thyroid segmentation (pure PyTorch, no ROS imports).

Input ``(B, 1, H, W)`` float32, normalised as ``(grey / 255 - mean) / std`` (see the model
card); output ``(B, C, H, W)`` float32 **logits** (class 0 = background, 1 = thyroid, ...).
``H`` and ``W`` must be multiples of ``2 ** depth``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "count_parameters"]


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(max(1, ch // 8), ch)
    raise ValueError(f"unknown norm {kind!r} (expected 'batch' or 'group')")


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> norm -> ReLU`` layers: ``(B, cin, H, W) -> (B, cout, H, W)``."""

    def __init__(self, cin: int, cout: int, norm: str = "batch") -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip, then a :class:`ConvBlock`."""

    def __init__(self, cin: int, cskip: int, cout: int, norm: str = "batch") -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
        self.block = ConvBlock(cin + cskip, cout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net with ``depth`` down-samplings and channel widths ``base * 2**k`` (capped at
    ``base * 8``).

    Args:
        in_channels: input channels (1 for B-mode).
        n_classes: output classes (logits).
        base: channels of the first level (16 -> ~1.1 M parameters at depth 4).
        depth: number of 2x down-samplings; input H, W must be multiples of ``2**depth``.
        norm: ``"batch"`` (default, folds into the convs at export) or ``"group"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        base: int = 16,
        depth: int = 4,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        widths = [base * min(2**k, 8) for k in range(depth + 1)]
        self.depth = depth
        self.inc = ConvBlock(in_channels, widths[0], norm)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvBlock(widths[k], widths[k + 1], norm))
            for k in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[k + 1], widths[k], widths[k], norm) for k in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) float32 -> (B, n_classes, H, W) float32`` logits."""
        x = self.inc(x)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
