"""Model cards: a YAML file next to the weights that says how to feed and read a model.

Minimal card (all other keys are free-form and kept in :attr:`ModelCard.raw`)::

    name: thyroid_unet_v1
    version: 1.0.0
    file: model.pt               # TorchScript (.pt/.pth/.ts/.torchscript) or ONNX (.onnx)
    onnx_file: model.onnx        # optional second backend of the same weights
    input: {height: 144, width: 192, channels: 1}
    normalization: {scale: 0.00392156862745098, mean: 0.2, std: 0.2}
    output: {type: logits, classes: [background, thyroid]}

Input to the network: ``(B, channels, height, width)`` float32 =
``(grey_uint8 * scale - mean) / std``; output ``(B, len(classes), height, width)`` float32
logits (softmax over dim 1). ``load_card`` raises :class:`ModelCardError` with a message that
names the card and the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "BACKEND_BY_SUFFIX",
    "CARD_FILENAME",
    "ModelCard",
    "ModelCardError",
    "backend_for_file",
    "load_card",
    "resolve_card_path",
]

CARD_FILENAME = "model_card.yaml"
BACKEND_BY_SUFFIX: dict[str, str] = {
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".onnx": "onnx",
}
MIN_SIZE, MAX_SIZE = 16, 4096


class ModelCardError(ValueError):
    """The model card is missing, malformed, or points at an unusable model file."""


@dataclass
class ModelCard:
    """Validated contents of a model card.

    Attributes:
        path: the card file.
        name, version: identification.
        model_file: absolute path of the primary model file.
        backend: ``"torchscript"`` or ``"onnx"`` (from ``model_file``'s extension).
        input_hw: network input ``(height, width)`` in pixels.
        channels: input channels (1 = grey B-mode).
        scale, mean, std: normalisation ``(grey * scale - mean) / std``.
        classes: class names; output channel / label value ``i`` is ``classes[i]``.
        onnx_file: optional absolute path of an ONNX export of the same model.
        raw: the whole parsed YAML mapping.
    """

    path: Path
    name: str
    version: str
    model_file: Path
    backend: str
    input_hw: tuple[int, int]
    channels: int
    scale: float
    mean: float
    std: float
    classes: tuple[str, ...]
    onnx_file: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def thyroid_index(self) -> int:
        """Label value / output channel of ``"thyroid"``."""
        return self.classes.index("thyroid")

    def model_path(self, backend: str | None = None) -> tuple[Path, str]:
        """``(file, backend)`` for the requested backend (``None`` = the primary file)."""
        if backend is None or backend == self.backend:
            return self.model_file, self.backend
        if backend == "onnx" and self.onnx_file is not None:
            return self.onnx_file, "onnx"
        raise ModelCardError(
            f"{self.path}: no {backend!r} model file (primary is {self.model_file.name} "
            f"= {self.backend}; onnx_file: {self.onnx_file})"
        )


def backend_for_file(path: Path, card: Path | None = None) -> str:
    """Backend name from a model file extension; :class:`ModelCardError` if unknown."""
    b = BACKEND_BY_SUFFIX.get(path.suffix.lower())
    if b is None:
        where = f"{card}: " if card else ""
        raise ModelCardError(
            f"{where}unknown model file extension {path.suffix!r} of {path.name!r}; expected "
            f"one of {sorted(BACKEND_BY_SUFFIX)} (TorchScript or ONNX)"
        )
    return b


def resolve_card_path(dir_or_card: str | Path) -> Path:
    """A directory -> its ``model_card.yaml``; a file is returned as is."""
    p = Path(dir_or_card)
    if p.is_dir():
        p = p / CARD_FILENAME
    if not p.is_file():
        raise ModelCardError(f"model card not found: {p}")
    return p


def _get(d: Any, key: str, card: Path) -> Any:
    parts = key.split(".")
    cur = d
    for i, k in enumerate(parts):
        if not isinstance(cur, dict) or k not in cur:
            raise ModelCardError(f"{card}: missing required field '{'.'.join(parts[: i + 1])}'")
        cur = cur[k]
    return cur


def _size(v: Any, key: str, card: Path) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not MIN_SIZE <= v <= MAX_SIZE:
        raise ModelCardError(
            f"{card}: '{key}' must be an integer in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {v!r}"
        )
    return v


def _number(v: Any, key: str, card: Path, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ModelCardError(f"{card}: '{key}' must be a number, got {v!r}")
    if positive and not v > 0:
        raise ModelCardError(f"{card}: '{key}' must be > 0, got {v!r}")
    return float(v)


def _model_file(card: Path, rel: Any, key: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise ModelCardError(f"{card}: '{key}' must be a file name, got {rel!r}")
    f = (card.parent / rel).resolve()
    backend_for_file(f, card)
    if not f.is_file():
        raise ModelCardError(f"{card}: model file '{rel}' ({key}) does not exist at {f}")
    return f


def load_card(dir_or_card: str | Path) -> ModelCard:
    """Read and validate a model card (a directory holding ``model_card.yaml`` or the YAML
    file itself). Raises :class:`ModelCardError` with a clear message on any problem."""
    card = resolve_card_path(dir_or_card)
    try:
        raw = yaml.safe_load(card.read_text())
    except yaml.YAMLError as e:
        raise ModelCardError(f"{card}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ModelCardError(f"{card}: top level must be a mapping")
    name = str(_get(raw, "name", card))
    version = str(_get(raw, "version", card))
    model_file = _model_file(card, _get(raw, "file", card), "file")
    backend = backend_for_file(model_file, card)
    if "backend" in raw and raw["backend"] != backend:
        raise ModelCardError(
            f"{card}: 'backend: {raw['backend']}' does not match the file extension of "
            f"{model_file.name} ({backend})"
        )
    onnx_file = None
    if raw.get("onnx_file"):
        onnx_file = _model_file(card, raw["onnx_file"], "onnx_file")
        if backend_for_file(onnx_file, card) != "onnx":
            raise ModelCardError(f"{card}: 'onnx_file' must end in .onnx, got {onnx_file.name}")
    h = _size(_get(raw, "input.height", card), "input.height", card)
    w = _size(_get(raw, "input.width", card), "input.width", card)
    channels = raw["input"].get("channels", 1)
    if channels != 1:
        raise ModelCardError(f"{card}: 'input.channels' must be 1 (grey B-mode), got {channels!r}")
    norm = _get(raw, "normalization", card)
    scale = _number(norm.get("scale", 1.0 / 255.0), "normalization.scale", card, positive=True)
    mean = _number(_get(raw, "normalization.mean", card), "normalization.mean", card)
    std = _number(_get(raw, "normalization.std", card), "normalization.std", card, positive=True)
    out_type = _get(raw, "output.type", card)
    if out_type != "logits":
        raise ModelCardError(f"{card}: 'output.type' must be 'logits', got {out_type!r}")
    classes = _get(raw, "output.classes", card)
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise ModelCardError(
            f"{card}: 'output.classes' must be a list of >= 2 class names, got {classes!r}"
        )
    if len(set(classes)) != len(classes):
        raise ModelCardError(f"{card}: 'output.classes' has duplicates: {classes}")
    if "thyroid" not in classes:
        raise ModelCardError(f"{card}: 'output.classes' must include 'thyroid', got {classes}")
    return ModelCard(
        card,
        name,
        version,
        model_file,
        backend,
        (h, w),
        1,
        scale,
        mean,
        std,
        tuple(classes),
        onnx_file,
        raw,
    )
