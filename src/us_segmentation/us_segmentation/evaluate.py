"""Evaluate a carded model on a simulator dataset split (CLI, no ROS imports).

    python -m us_segmentation.evaluate --model src/us_segmentation/models/thyroid_unet_v1 \
        --data /tmp/us_seg_data --split test

Accuracy is measured at **full frame resolution**: the logits are resized back to the frame
(exactly what :class:`~us_segmentation.inference.Segmenter` returns) and compared with the
simulator's gland mask (thyroid incl. nodules). Dice is per frame (mean over frames whose
ground truth contains thyroid) and pooled; HD95 is in mm using the frame's pixel spacing.
Speed is the network forward pass alone at the model input size, ``(1, 1, h, w)``, per
backend and thread count (p50/p95 over ``--iters`` runs after 10 warm-up runs), plus the
whole ``Segmenter.segment`` call at frame size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .data import class_targets, read_splits
from .inference import LoadedModel, PostProcess, Segmenter, load_model
from .metrics import dice, hd95_mm

__all__ = ["benchmark", "benchmark_all", "evaluate_split", "main", "update_card"]


def _summary(x: list[float]) -> dict[str, float]:
    a = np.asarray(x, np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "mean": round(float(a.mean()), 4),
        "median": round(float(np.median(a)), 4),
        "p05": round(float(np.percentile(a, 5)), 4),
        "p95": round(float(np.percentile(a, 95)), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
    }


def evaluate_split(
    seg: Segmenter,
    data_dir: str | Path,
    split: str = "test",
    frame_step: int = 1,
    files: list[str] | None = None,
) -> dict[str, Any]:
    """Dice / HD95 (mm) of the thyroid class on every ``frame_step``-th frame of a split.

    Returns a JSON-serialisable dict: ``dice`` (per-frame summary over frames with thyroid in
    the ground truth), ``dice_global`` (pooled over all frames), ``hd95_mm`` (frames where
    both masks are non-empty), ``missed_frames`` (GT thyroid, empty prediction),
    ``false_positive_frames`` (no GT thyroid, non-empty prediction), and ``per_kind``.
    """
    data_dir = Path(data_dir)
    files = files if files is not None else read_splits(data_dir)[split]
    ti = seg.card.thyroid_index
    dices: list[float] = []
    hds: list[float] = []
    per_kind: dict[str, dict[str, list[float]]] = {}
    inter = tot = missed = fp = n = n_gt = 0
    for rel in files:
        with np.load(data_dir / rel) as z:
            images, labels = z["images"][::frame_step], z["labels"][::frame_step]
            sx, sy = (float(v) for v in z["pixel_spacing_mm"])
            sp = (sx, sy)
            kind = json.loads(str(z["metadata"])).get("sweep_kind", "unknown")
        gts = class_targets(labels, ("background", "thyroid")) == 1
        k = per_kind.setdefault(kind, {"dice": [], "hd95_mm": []})
        for img, gt in zip(images, gts, strict=True):
            pred = seg.segment(img, sp).labels == ti
            n += 1
            inter += int((pred & gt).sum())
            tot += int(pred.sum() + gt.sum())
            if gt.any():
                n_gt += 1
                d = dice(pred, gt)
                dices.append(d)
                k["dice"].append(d)
                if pred.any():
                    h = hd95_mm(pred, gt, sp)
                    hds.append(h)
                    k["hd95_mm"].append(h)
                else:
                    missed += 1
            elif pred.any():
                fp += 1
    return {
        "split": split,
        "files": len(files),
        "frames": n,
        "frames_with_thyroid": n_gt,
        "dice": _summary(dices),
        "dice_global": round(2.0 * inter / max(tot, 1), 4),
        "hd95_mm": _summary(hds),
        "missed_frames": missed,
        "false_positive_frames": fp,
        "per_kind": {
            kk: {"dice": _summary(v["dice"]), "hd95_mm": _summary(v["hd95_mm"])}
            for kk, v in per_kind.items()
        },
        "resolution": "full frame",
        "class": "thyroid (gland incl. nodules)",
    }


def benchmark(model: LoadedModel, threads: int, iters: int = 100) -> dict[str, float]:
    """p50/p95/mean ms of one forward pass ``(1, 1, h, w)`` on ``model`` with ``threads``
    torch threads (TorchScript) or an ONNX Runtime session built with ``threads``."""
    torch.set_num_threads(threads)
    h, w = model.card.input_hw
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, h, w)).astype(np.float32))
    for _ in range(10):
        model.run(x)
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model.run(x)
        ts.append((time.perf_counter() - t0) * 1e3)
    return {
        "p50_ms": round(float(np.percentile(ts, 50)), 2),
        "p95_ms": round(float(np.percentile(ts, 95)), 2),
        "mean_ms": round(float(np.mean(ts)), 2),
        "iters": iters,
    }


def benchmark_all(model_dir: str | Path, iters: int = 100) -> dict[str, Any]:
    """:func:`benchmark` for every available backend x {1, 2} threads, plus the full
    ``Segmenter.segment`` call on a 640x480 frame (TorchScript, 2 threads)."""
    out: dict[str, Any] = {}
    card_backends = ["torchscript", "onnx"]
    for b in card_backends:
        for th in (1, 2):
            try:
                m = load_model(model_dir, backend=b, device="cpu", threads=th)
            except Exception as e:  # noqa: BLE001 - report and continue
                out[f"{b}_{th}t"] = {"error": str(e)}
                continue
            out[f"{b}_{th}t"] = benchmark(m, th, iters)
    seg = Segmenter(model_dir, backend="torchscript", device="cpu", threads=2)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640), dtype=np.uint8)
    for _ in range(5):
        seg.segment(frame, (0.078, 0.083))
    ts = []
    for _ in range(max(10, iters // 2)):
        t0 = time.perf_counter()
        seg.segment(frame, (0.078, 0.083))
        ts.append((time.perf_counter() - t0) * 1e3)
    out["segment_640x480_torchscript_2t"] = {
        "p50_ms": round(float(np.percentile(ts, 50)), 2),
        "p95_ms": round(float(np.percentile(ts, 95)), 2),
        "iters": len(ts),
    }
    return out


def update_card(card_path: Path, split: str, res: dict[str, Any], data: str) -> None:
    """Store evaluation results ``res`` of ``split``: in full in the model's
    ``metrics.json`` and as a summary under ``metrics.<split>`` of the card."""
    mfile = card_path.parent / "metrics.json"
    m = json.loads(mfile.read_text()) if mfile.is_file() else {}
    m[split] = res
    mfile.write_text(json.dumps(m, indent=2))
    card = yaml.safe_load(card_path.read_text())
    summary: dict[str, Any] = {
        "dice_mean": res["dice"].get("mean"),
        "dice_median": res["dice"].get("median"),
        "dice_global": res["dice_global"],
        "hd95_mm_mean": res["hd95_mm"].get("mean"),
        "hd95_mm_median": res["hd95_mm"].get("median"),
        "hd95_mm_p95": res["hd95_mm"].get("p95"),
        "frames": res["frames"],
        "frames_with_thyroid": res["frames_with_thyroid"],
        "missed_frames": res["missed_frames"],
        "false_positive_frames": res["false_positive_frames"],
        "data": data,
        "resolution": "full frame",
    }
    if "speed" in res:
        summary["speed_ms_p50_p95"] = {
            k: [v.get("p50_ms"), v.get("p95_ms")]
            for k, v in res["speed"].items()
            if isinstance(v, dict) and "p50_ms" in v
        }
    card.setdefault("metrics", {})[split] = summary
    card_path.write_text(yaml.safe_dump(card, sort_keys=False, width=100))


def main(argv: list[str] | None = None) -> int:
    """Evaluation CLI entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m us_segmentation.evaluate",
        description="Dice / HD95 (mm) / speed of a carded model.",
    )
    ap.add_argument("--model", required=True, type=Path, help="model dir or card")
    ap.add_argument("--data", required=True, type=Path, help="simulator dataset directory")
    ap.add_argument("--split", default="test", choices=["train", "validation", "test"])
    ap.add_argument("--backend", default=None, choices=["torchscript", "onnx"])
    ap.add_argument("--frame-step", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--largest-component", action="store_true")
    ap.add_argument("--no-fill-holes", action="store_true")
    ap.add_argument("--min-area-mm2", type=float, default=0.0)
    ap.add_argument("--iters", type=int, default=100, help="speed benchmark iterations")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--bench-only", action="store_true", help="speed only, no accuracy")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument(
        "--update-card",
        action="store_true",
        help="store the results in the model's metrics.json and model_card.yaml",
    )
    args = ap.parse_args(argv)

    post = PostProcess(
        largest_component=args.largest_component,
        fill_holes=not args.no_fill_holes,
        min_area_mm2=args.min_area_mm2,
    )
    seg = Segmenter(args.model, backend=args.backend, device="cpu", threads=args.threads, post=post)
    if args.bench_only:
        speed = benchmark_all(args.model, args.iters)
        print(json.dumps(speed, indent=2))
        if args.json:
            args.json.write_text(json.dumps(speed, indent=2))
        return 0
    t0 = time.perf_counter()
    res: dict[str, Any] = evaluate_split(seg, args.data, args.split, args.frame_step)
    res["postprocess"] = vars(post)
    res["backend"] = seg.model.backend
    res["eval_s"] = round(time.perf_counter() - t0, 1)
    if not args.no_bench:
        res["speed"] = benchmark_all(args.model, args.iters)
        res["speed"]["torch_version"] = str(torch.__version__)
        try:
            import onnxruntime as ort

            res["speed"]["onnxruntime_version"] = ort.__version__
        except ImportError:
            pass
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if args.update_card:
        update_card(seg.card.path, args.split, res, str(args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
