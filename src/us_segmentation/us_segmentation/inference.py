"""Load a model from its card and segment B-mode frames (pure torch/numpy/scipy, no ROS).

    from us_segmentation.inference import Segmenter
    seg = Segmenter("src/us_segmentation/models/thyroid_unet_v1", threads=2)
    labels, confidence = seg.segment(roi_u8, spacing_mm=(0.078, 0.083))

Pipeline per frame: ``(H, W) uint8`` -> bilinear anti-aliased resize to the card's input
size -> ``(grey * scale - mean) / std`` -> network -> logits bilinearly resized back to
``(H, W)`` -> softmax -> arg-max labels + confidence -> optional post-processing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .data import resize_frames
from .model_card import ModelCard, ModelCardError, load_card

__all__ = [
    "LoadedModel",
    "PostProcess",
    "SegmentationResult",
    "Segmenter",
    "fill_holes",
    "keep_largest_component",
    "load_model",
    "postprocess",
    "remove_small_components",
    "resolve_device",
]


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available else ``"cpu"``; other values pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _optimized(module: Any) -> Any:
    """Freeze a TorchScript module and fold conv + batch-norm (``optimize_for_inference``):
    ~20 % less time per frame for the shipped U-Net on CPU, outputs equal within 2e-6. A
    module that cannot be frozen (e.g. one that mutates attributes) is used as loaded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.optimize_for_inference(torch.jit.freeze(module))
    except Exception:  # noqa: BLE001 - an optimisation, never a reason to fail loading
        return module


class LoadedModel:
    """A validated card plus a callable backend.

    ``run(x)`` takes ``(B, 1, h, w)`` float32 (normalised, torch tensor on CPU) and returns
    ``(B, C, h, w)`` float32 logits as a CPU torch tensor, whatever the backend.
    """

    def __init__(
        self, card: ModelCard, backend: str, path: Path, device: str, threads: int | None = None
    ) -> None:
        self.card, self.backend, self.path, self.device = card, backend, path, device
        self._ts: Any = None
        self._ort: Any = None
        if backend == "torchscript":
            try:
                with warnings.catch_warnings():  # torch.jit.load is deprecated (still works)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._ts = torch.jit.load(str(path), map_location=device).eval()
            except Exception as e:
                raise ModelCardError(f"{card.path}: cannot load TorchScript {path}: {e}") from e
            self._ts = _optimized(self._ts)
        else:
            try:
                import onnxruntime as ort
            except ImportError as e:
                raise ModelCardError(
                    f"{card.path}: ONNX model {path.name} needs 'onnxruntime' installed"
                ) from e
            so = ort.SessionOptions()
            if threads:
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            if (
                device.startswith("cuda")
                and "CUDAExecutionProvider" in ort.get_available_providers()
            ):
                providers.insert(0, "CUDAExecutionProvider")
            try:
                self._ort = ort.InferenceSession(str(path), so, providers=providers)
            except Exception as e:
                raise ModelCardError(f"{card.path}: cannot load ONNX {path}: {e}") from e
            self._ort_input = self._ort.get_inputs()[0].name

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, h, w)`` float32 -> ``(B, C, h, w)`` float32 logits (CPU tensor)."""
        if self._ts is not None:
            return self._ts(x.to(self.device)).float().cpu()
        out = self._ort.run(None, {self._ort_input: x.numpy().astype(np.float32, copy=False)})
        return torch.from_numpy(out[0])

    def check_output(self) -> None:
        """Run zeros through the network; :class:`ModelCardError` if the output shape is
        not ``(1, len(classes), h, w)``."""
        h, w = self.card.input_hw
        try:
            y = self.run(torch.zeros(1, 1, h, w))
        except Exception as e:
            raise ModelCardError(
                f"{self.card.path}: model {self.path.name} fails on a (1, 1, {h}, {w}) input: {e}"
            ) from e
        want = (1, len(self.card.classes), h, w)
        if tuple(y.shape) != want:
            raise ModelCardError(
                f"{self.card.path}: model output shape {tuple(y.shape)} != {want} "
                f"(classes {list(self.card.classes)}, input {h}x{w})"
            )


def load_model(
    dir_or_card: str | Path,
    backend: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    check: bool = True,
) -> LoadedModel:
    """Validate a model card and load its model.

    Args:
        dir_or_card: model directory (with ``model_card.yaml``) or the card file.
        backend: ``None`` = the card's ``file`` (backend from its extension), or
            ``"torchscript"`` / ``"onnx"`` to pick ``file`` / ``onnx_file``.
        device: ``"auto"`` (cuda if available), ``"cpu"``, ``"cuda"``, ...
        threads: ONNX Runtime intra-op threads (torch threads are set by :class:`Segmenter`).
        check: run a zero input and verify the output shape.

    Raises:
        ModelCardError: invalid card, missing/unknown model file, or wrong output shape.
    """
    card = load_card(dir_or_card)
    if backend not in (None, "torchscript", "onnx"):
        raise ModelCardError(f"unknown backend {backend!r} (expected torchscript or onnx)")
    path, b = card.model_path(backend)
    m = LoadedModel(card, b, path, resolve_device(device), threads)
    if check:
        m.check_output()
    return m


# --------------------------------------------------------------------------- post-processing
def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 8-connected component of a boolean ``(H, W)`` mask (empty stays empty)."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())[1:]
    return np.asarray(lab == (int(np.argmax(sizes)) + 1))


def remove_small_components(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Drop 8-connected components smaller than ``min_px`` pixels from a boolean mask."""
    if min_px <= 1:
        return mask.astype(bool)
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return np.asarray(keep[lab])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes of a boolean ``(H, W)`` mask (``scipy.ndimage``), working on the
    mask's bounding box only (a hole cannot reach outside it)."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return mask.astype(bool)
    cols = np.flatnonzero(mask.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out = mask.astype(bool)  # a copy
    out[r0:r1, c0:c1] = ndimage.binary_fill_holes(out[r0:r1, c0:c1])
    return out


def _argmax_classes(p: np.ndarray) -> np.ndarray:
    """Arg-max over the class axis of ``(C, H, W)`` probabilities -> ``(H, W)`` uint8.
    (Compares class planes one at a time: ~100x faster than a strided reduction over C.)"""
    labels = np.zeros(p.shape[1:], dtype=np.uint8)
    best = p[0]
    for c in range(1, p.shape[0]):
        better = p[c] > best
        labels[better] = c
        best = np.where(better, p[c], best)
    return labels


@dataclass
class PostProcess:
    """Post-processing options, applied per foreground class in class order.

    Attributes:
        largest_component: keep only the largest connected component. ``True`` = all
            foreground classes, or a sequence of class names. Off by default: near the poles
            a transverse frame shows two separate lobes.
        fill_holes: fill holes enclosed by a class (they get that class).
        min_area_mm2: remove components smaller than this area (needs ``spacing_mm``).
    """

    largest_component: bool | Sequence[str] = False
    fill_holes: bool = True
    min_area_mm2: float = 0.0


def postprocess(
    labels: np.ndarray,
    classes: Sequence[str],
    opts: PostProcess,
    spacing_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """Apply :class:`PostProcess` to a ``(H, W)`` uint8 label image; returns a new array.
    Pixels removed from a class become background (0)."""
    out = labels.copy()
    min_px = 0
    if opts.min_area_mm2 > 0 and spacing_mm is not None:
        min_px = int(np.ceil(opts.min_area_mm2 / (spacing_mm[0] * spacing_mm[1])))
    for c in range(1, len(classes)):
        m = out == c
        if not m.any():
            continue
        m0 = m
        if min_px:
            m = remove_small_components(m, min_px)
        lc = opts.largest_component
        if lc is True or (not isinstance(lc, bool) and classes[c] in lc):
            m = keep_largest_component(m)
        out[m0 & ~m] = 0
        if opts.fill_holes:
            m = fill_holes(m)
        out[m] = c
    return out


class SegmentationResult(NamedTuple):
    """``labels``: ``(H, W)`` uint8 class index per pixel (card's ``classes``);
    ``confidence``: ``(H, W)`` float32 softmax probability of the arg-max class."""

    labels: np.ndarray
    confidence: np.ndarray


class Segmenter:
    """Segment single B-mode ROI frames with a carded model.

    Args:
        model: model directory / card path, or an already :func:`load_model`-ed model.
        backend: ``None`` (card's primary file), ``"torchscript"`` or ``"onnx"``.
        device: ``"auto"`` = cuda if available else cpu.
        threads: torch intra-op threads (process-wide ``torch.set_num_threads``) and ONNX
            Runtime threads; ``None`` leaves the defaults.
        post: post-processing options (default: fill holes only).

    Deterministic on CPU for a fixed input, backend and thread count.
    """

    def __init__(
        self,
        model: str | Path | LoadedModel,
        backend: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        post: PostProcess | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model = (
            model
            if isinstance(model, LoadedModel)
            else load_model(model, backend=backend, device=device, threads=threads)
        )
        self.card = self.model.card
        self.post = post if post is not None else PostProcess()

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names; label value ``i`` is ``classes[i]``."""
        return self.card.classes

    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """``(H, W)`` uint8 -> ``(1, 1, h, w)`` float32 normalised network input."""
        if frame.ndim != 2:
            raise ValueError(f"expected a (H, W) grey frame, got shape {frame.shape}")
        c = self.card
        x = resize_frames(frame, c.input_hw)
        return ((x * c.scale - c.mean) / c.std)[:, None].contiguous()

    @torch.no_grad()
    def probabilities(self, frame: np.ndarray) -> np.ndarray:
        """Class probabilities at frame resolution: ``(C, H, W)`` float32 (softmax)."""
        logits = self.model.run(self.preprocess(frame))
        if tuple(logits.shape[-2:]) != frame.shape:
            logits = F.interpolate(logits, size=frame.shape, mode="bilinear", align_corners=False)
        return logits.softmax(1)[0].numpy()

    def segment(
        self,
        frame: np.ndarray,
        spacing_mm: tuple[float, float] | None = None,
        smoother: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> SegmentationResult:
        """Segment one frame.

        Args:
            frame: ``(H, W)`` uint8 B-mode ROI (image region only, no scanner chrome).
            spacing_mm: ``(sx, sy)`` pixel spacing in mm (column, row); used by
                ``min_area_mm2`` post-processing.
            smoother: optional temporal filter applied to the ``(C, h, w)`` float32 class
                probabilities at the model's resolution before they are brought to frame
                size (e.g. :class:`us_segmentation.live.TemporalSmoother`); it returns the
                filtered probabilities of *this* frame, so the mask is never delayed.

        Returns:
            :class:`SegmentationResult` ``(labels (H, W) uint8, confidence (H, W) float32)``.
            Labels are the arg-max of the class probabilities resized bilinearly to the
            frame; confidence is the winning probability at model resolution, resized.
        """
        with torch.no_grad():
            p = self.model.run(self.preprocess(frame)).softmax(1)  # (1, C, h, w)
            if smoother is not None:
                p = torch.from_numpy(np.ascontiguousarray(smoother(p[0].numpy())))[None]
            conf = p.max(1, keepdim=True).values
            if tuple(p.shape[-2:]) != frame.shape:
                p = F.interpolate(p, size=frame.shape, mode="bilinear", align_corners=False)
                conf = F.interpolate(conf, size=frame.shape, mode="bilinear", align_corners=False)
            labels = _argmax_classes(p[0].numpy())
        labels = postprocess(labels, self.classes, self.post, spacing_mm)
        return SegmentationResult(labels, conf[0, 0].numpy())
