"""Speed/size of U-Net variants (untrained; forward pass only), for choosing the input size
and width: ``python -m us_segmentation.bench_sizes [--iters N]``. Prints JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import torch

from .model import UNet, count_parameters

__all__ = ["main"]

CONFIGS = [(8, 96, 128), (12, 96, 128), (8, 144, 192), (16, 96, 128), (16, 144, 192)]


def main(argv: list[str] | None = None) -> int:
    """For each (base, h, w): parameters, MB, TorchScript forward p50/p95 ms at 1 and 2
    threads for a ``(1, 1, h, w)`` input."""
    ap = argparse.ArgumentParser(prog="python -m us_segmentation.bench_sizes")
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args(argv)
    for base, h, w in CONFIGS:
        torch.manual_seed(0)
        m = UNet(1, 2, base=base).eval()
        x = torch.randn(1, 1, h, w)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ts = torch.jit.freeze(torch.jit.trace(m, x))
        row: dict[str, object] = {
            "base": base,
            "input_hw": [h, w],
            "parameters": count_parameters(m),
            "mb": round(count_parameters(m) * 4 / 1e6, 2),
        }
        for th in (1, 2):
            torch.set_num_threads(th)
            with torch.no_grad():
                for _ in range(5):
                    ts(x)
                t = []
                for _ in range(args.iters):
                    t0 = time.perf_counter()
                    ts(x)
                    t.append((time.perf_counter() - t0) * 1e3)
            row[f"p50_ms_{th}t"] = round(float(np.percentile(t, 50)), 1)
            row[f"p95_ms_{th}t"] = round(float(np.percentile(t, 95)), 1)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
