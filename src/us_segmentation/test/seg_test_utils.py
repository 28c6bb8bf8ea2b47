"""Helpers shared by the us_segmentation tests (unique module name on sys.path)."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY_HW = (32, 48)


def write_tiny_card(d: Path, **overrides: object) -> Path:
    """Card for ``model.pt`` in ``d``; top-level keys replaced by ``overrides``."""
    card: dict[str, object] = {
        "name": "tiny",
        "version": "0.0.1",
        "file": "model.pt",
        "input": {"height": TINY_HW[0], "width": TINY_HW[1], "channels": 1},
        "normalization": {"scale": 1.0 / 255.0, "mean": 0.3, "std": 0.2},
        "output": {"type": "logits", "classes": ["background", "thyroid"]},
    }
    card.update(overrides)
    p = d / "model_card.yaml"
    p.write_text(yaml.safe_dump(card, sort_keys=False))
    return p
