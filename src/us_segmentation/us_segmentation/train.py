"""Train the thyroid U-Net on a simulator dataset (CLI, no ROS imports).

    python -m us_segmentation.train --data /tmp/us_seg_data --out /tmp/us_seg_run \
        --epochs 8 --seed 0

Deterministic for a given seed and thread count on CPU. Writes to ``--out``: ``model.pt``
(TorchScript, best validation epoch), ``model.onnx``, ``model_card.yaml``, ``metrics.json``
and ``train_log.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from .augment import augment_batch
from .data import CLASS_NAMES, FrameSet, load_split
from .model import UNet, count_parameters

__all__ = ["dice_ce_loss", "export_model", "main", "validate", "write_card"]


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, w_dice: float = 1.0) -> torch.Tensor:
    """Cross-entropy + soft Dice over the foreground classes.

    Args:
        logits: ``(B, C, H, W)`` float32. target: ``(B, H, W)`` int64 class indices.
    """
    ce = F.cross_entropy(logits, target)
    p = logits.softmax(1)[:, 1:]
    oh = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (p * oh).sum((0, 2, 3))
    den = p.sum((0, 2, 3)) + oh.sum((0, 2, 3))
    dl = 1.0 - ((2.0 * inter + 1.0) / (den + 1.0)).mean()
    return ce + w_dice * dl


def _normalise(img: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return ((img / 255.0 - mean) / std)[:, None]


@torch.no_grad()
def validate(
    model: nn.Module, fs: FrameSet, mean: float, std: float, cls: int = 1, batch: int = 16
) -> dict[str, float]:
    """Dice of class ``cls`` at model resolution: mean over frames whose ground truth
    contains the class (``dice_mean``), pooled over all frames (``dice_global``)."""
    model.eval()
    dices, inter, tot = [], 0, 0
    for i in range(0, len(fs.images), batch):
        x = _normalise(torch.from_numpy(fs.images[i : i + batch]).float(), mean, std)
        pred = model(x).argmax(1).numpy() == cls
        gt = fs.targets[i : i + batch] == cls
        for p, g in zip(pred, gt, strict=True):
            it, s = int((p & g).sum()), int(p.sum() + g.sum())
            inter += it
            tot += s
            if g.any():
                dices.append(2.0 * it / s)
    return {
        "dice_mean": float(np.mean(dices)) if dices else float("nan"),
        "dice_global": 2.0 * inter / max(tot, 1),
    }


def export_model(model: nn.Module, out: Path, hw: tuple[int, int]) -> dict[str, str]:
    """Write ``model.pt`` (TorchScript, traced) and ``model.onnx`` (opset 17, dynamic batch)
    of an eval-mode model for input ``(B, 1, h, w)``; returns the written file names."""
    model = copy.deepcopy(model).eval()
    x = torch.zeros(1, 1, *hw)
    files = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        ts = torch.jit.freeze(torch.jit.trace(model, x))
        ts.save(str(out / "model.pt"))
    files["torchscript"] = "model.pt"
    try:
        with warnings.catch_warnings():  # legacy (TorchScript-based) exporter: static graph
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (x,),
                str(out / "model.onnx"),
                input_names=["input"],
                output_names=["logits"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        files["onnx"] = "model.onnx"
    except Exception as e:  # noqa: BLE001 - ONNX export is optional
        print(f"ONNX export failed: {e}", file=sys.stderr)
    return files


def write_card(path: Path, card: dict[str, Any]) -> None:
    """Write a model card mapping as YAML (keys in insertion order)."""
    path.write_text(yaml.safe_dump(card, sort_keys=False, width=100))


def _dataset_info(data: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"dir": str(data)}
    ds = data / "dataset.json"
    if ds.is_file():
        d = json.loads(ds.read_text())
        a = d.get("args", {})
        info["generator_args"] = a
        info["phantom_seed_rule"] = d.get("phantom_seed_rule")
        info["sweep_seed_rule"] = d.get("sweep_seed_rule")
        if a:
            size = a.get("size", [640, 480])
            info["command"] = (
                f"python -m us_acquisition.sim.dataset --out {a.get('out')} "
                f"--phantoms {a.get('phantoms')} --sweeps-per-phantom "
                f"{a.get('sweeps_per_phantom')} --seed {a.get('seed')} --frames-per-sweep "
                f"{a.get('frames_per_sweep')} --size {size[0]}x{size[1]}"
            )
    sp = data / "splits.json"
    if sp.is_file():
        s = json.loads(sp.read_text())
        info["splits"] = {k: s[k] for k in ("train", "validation", "test") if k in s}
    return info


def main(argv: list[str] | None = None) -> int:
    """Training CLI entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m us_segmentation.train", description="Train the thyroid segmentation U-Net."
    )
    ap.add_argument("--data", required=True, type=Path, help="simulator dataset directory")
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--height", type=int, default=144, help="model input height (px)")
    ap.add_argument("--width", type=int, default=192, help="model input width (px)")
    ap.add_argument("--base", type=int, default=16, help="U-Net base channels")
    ap.add_argument("--depth", type=int, default=4, help="U-Net levels (down-samplings)")
    ap.add_argument("--classes", default=",".join(CLASS_NAMES))
    ap.add_argument("--steps-per-epoch", type=int, default=100, help="0 = one pass over train")
    ap.add_argument("--val-frame-step", type=int, default=2, help="validate every k-th frame")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument(
        "--time-budget-min",
        type=float,
        default=18.0,
        help="stop after the epoch that exceeds this wall time",
    )
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--name", default="thyroid_unet_v1")
    ap.add_argument("--version", default="1.0.0")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    classes = tuple(c.strip() for c in args.classes.split(","))
    hw = (args.height, args.width)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    train = load_split(args.data, "train", hw, classes)
    val = load_split(args.data, "validation", hw, classes, frame_step=args.val_frame_step)
    mean = round(float(train.images.mean() / 255.0), 4)
    std = round(float(train.images.std() / 255.0), 4)
    print(
        f"loaded train {train.images.shape} val {val.images.shape} in "
        f"{time.perf_counter() - t_start:.0f} s; mean {mean} std {std}",
        flush=True,
    )

    model = UNet(1, len(classes), base=args.base, depth=args.depth)
    n_params = count_parameters(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    spe = args.steps_per_epoch or math.ceil(len(train.images) / args.batch)
    total = args.epochs * spe
    warm = min(50, total // 10)

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    best: dict[str, Any] = {"dice_mean": -1.0}
    best_state: dict[str, torch.Tensor] = {}
    history = []
    log = (out / "train_log.jsonl").open("w")
    stopped_early = False
    for epoch in range(args.epochs):
        model.train()
        t_ep = time.perf_counter()
        perm = rng.permutation(len(train.images))
        losses = []
        for s in range(spe):
            idx = np.sort(perm[(s * args.batch) % len(perm) :][: args.batch])
            img = torch.from_numpy(train.images[idx]).float()
            tgt = torch.from_numpy(train.targets[idx]).long()
            if not args.no_augment:
                img, tgt = augment_batch(img, tgt, gen)
            loss = dice_ce_loss(model(_normalise(img, mean, std)), tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if s % 50 == 0:
                print(
                    f"  epoch {epoch} step {s}/{spe} loss {np.mean(losses[-50:]):.4f} "
                    f"lr {sched.get_last_lr()[0]:.2e} "
                    f"[{time.perf_counter() - t_start:.0f} s]",
                    flush=True,
                )
        v = validate(model, val, mean, std, classes.index("thyroid"))
        rec = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            **v,
            "epoch_s": round(time.perf_counter() - t_ep, 1),
            "elapsed_s": round(time.perf_counter() - t_start, 1),
        }
        history.append(rec)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(f"epoch {epoch}: {rec}", flush=True)
        if v["dice_mean"] > best["dice_mean"]:
            best = {**rec}
            best_state = copy.deepcopy(model.state_dict())
        if (
            time.perf_counter() - t_start
        ) / 60.0 > args.time_budget_min and epoch < args.epochs - 1:
            stopped_early = True
            print("time budget reached; stopping", flush=True)
            break
    log.close()
    model.load_state_dict(best_state)
    model.eval()
    files = export_model(model, out, hw)
    train_s = time.perf_counter() - t_start

    cmd = "python -m us_segmentation.train " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    metrics = {
        "validation": {
            "dice_mean": best["dice_mean"],
            "dice_global": best["dice_global"],
            "best_epoch": best["epoch"],
            "resolution": "model input",
        },
        "history": history,
        "train_frames": len(train.images),
        "val_frames": len(val.images),
        "parameters": n_params,
        "train_wall_s": round(train_s, 1),
        "stopped_early": stopped_early,
        "torch": str(torch.__version__),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    card: dict[str, Any] = {
        "name": args.name,
        "version": args.version,
        "description": "Thyroid gland (incl. nodules) segmentation of B-mode frames; "
        "trained on the us_acquisition simulator only.",
        "file": files["torchscript"],
        "backend": "torchscript",
    }
    if "onnx" in files:
        card["onnx_file"] = files["onnx"]
    card.update(
        {
            "architecture": {
                "type": "UNet",
                "base_channels": args.base,
                "depth": args.depth,
                "norm": "batch",
                "upsampling": "bilinear",
                "parameters": n_params,
            },
            "input": {
                "height": hw[0],
                "width": hw[1],
                "channels": 1,
                "dtype": "float32",
                "layout": "NCHW",
                "resize": "whole ROI stretched to height x width, bilinear + antialias "
                "(no padding, no crop)",
            },
            "normalization": {
                "scale": 1.0 / 255.0,
                "mean": mean,
                "std": std,
                "formula": "(grey_uint8 * scale - mean) / std",
            },
            "output": {
                "type": "logits",
                "classes": list(classes),
                "shape": "(B, n_classes, height, width)",
            },
            "training": {
                "command": cmd,
                "seed": args.seed,
                "threads": args.threads,
                "epochs_run": len(history),
                "best_epoch": best["epoch"],
                "wall_s": round(train_s, 1),
                "torch": str(torch.__version__),
                "augmentation": "flip, depth crop+rescale, scale/rotate/shift, elastic, "
                "gain, contrast, TGC ramp, multiplicative speckle, "
                "shadow bands"
                if not args.no_augment
                else "none",
                "loss": "cross-entropy + soft Dice",
                "optimizer": "AdamW + cosine LR",
                "data": _dataset_info(args.data),
            },
            "metrics": {"validation": metrics["validation"]},
        }
    )
    write_card(out / "model_card.yaml", card)
    print(
        f"done in {train_s:.0f} s; best epoch {best['epoch']} val dice "
        f"{best['dice_mean']:.4f}; wrote {out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
