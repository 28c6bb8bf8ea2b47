"""Thyroid segmentation for tracked ultrasound: model, data pipeline, training, evaluation
and model-card loading (pure Python modules; the ROS node lives elsewhere).

Main entry points: :func:`us_segmentation.inference.load_model`,
:class:`us_segmentation.inference.Segmenter`, :func:`default_model_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "default_model_dir"]

#: Name of the model shipped with the package (``models/<name>/``).
DEFAULT_MODEL = "thyroid_unet_v3"


def default_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Directory of a shipped model: the source tree (``src/us_segmentation/models/<name>``)
    if present, else ``<prefix>/share/us_segmentation/models/<name>`` of an installed
    workspace (searched along ``AMENT_PREFIX_PATH``). Raises ``FileNotFoundError``."""
    candidates = [Path(__file__).resolve().parent.parent / "models" / name]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "us_segmentation" / "models" / name)
    for c in candidates:
        if (c / "model_card.yaml").is_file():
            return c
    raise FileNotFoundError(f"model {name!r} not found in {[str(c) for c in candidates]}")
