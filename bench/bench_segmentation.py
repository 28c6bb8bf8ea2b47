"""Benchmark the thyroid segmentation: accuracy on unseen phantoms, per-frame speed, and
end-to-end latency in the running graph (acquisition on the simulator at 30 fps ->
segmentation node -> mask channel). PyTorch (TorchScript) and ONNX Runtime, same run.

    python bench/bench_segmentation.py [--quick] [--seconds 30]

Writes ``bench/results/segmentation.json``. Main keys (the node's default backend,
TorchScript): dice, hd95_mm, infer_p50_ms, infer_p95_ms, e2e_p50_ms, e2e_p95_ms,
masks_per_s, backend, model_mb; the same figures per backend under ``backends``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: Phantom seeds never used for training (1000-1013), validation or the tests (4242).
EVAL_SEEDS = (6001, 6002, 6003)
DEFAULT_THREADS = 1  # the node's default (threads: 1 in config/segmentation.yaml)
THREADS = DEFAULT_THREADS  # torch / ONNX Runtime threads of the node (--threads)


def _pct(v: list[float], q: float) -> float:
    return float(np.percentile(v, q)) if v else float("nan")


def eval_set(quick: bool) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Frames (N, 480, 640) uint8 of transverse + longitudinal sweeps of unseen phantoms,
    their gland masks, pixel spacing (mm)."""
    from us_acquisition.sim import BModeSimulator, NeckPhantom
    from us_acquisition.sim.bmode import BModeParams
    from us_acquisition.sim.dataset import make_trajectory, simulate_sweep
    from us_acquisition.sim.phantom import gland_mask

    imgs, gts = [], []
    sp = (0.0, 0.0)
    seeds = EVAL_SEEDS[:1] if quick else EVAL_SEEDS
    n = 8 if quick else 16
    for s in seeds:
        ph = NeckPhantom.from_seed(s)
        for j, kind in enumerate(["freehand_transverse", "freehand_longitudinal_left"]):
            sim = BModeSimulator(ph, BModeParams(width_px=640, height_px=480), seed=s * 10 + j)
            traj = make_trajectory(kind, ph, s * 10 + j)
            sw = simulate_sweep(ph, sim, traj, n_frames=n, seed=s * 10 + j)
            imgs.append(sw.images)
            gts.append(gland_mask(sw.labels))
            sp = (float(sw.pixel_spacing_mm[0]), float(sw.pixel_spacing_mm[1]))
    return np.concatenate(imgs), np.concatenate(gts), sp


def accuracy_and_speed(
    backend: str, images: np.ndarray, gts: np.ndarray, sp: tuple[float, float]
) -> dict[str, Any]:
    """Dice / HD95 over frames showing >= 20 mm^2 of gland, and per-frame segment() time
    (640x480 frame -> resize -> model input -> labels at 640x480), THREADS threads."""
    from us_segmentation.inference import Segmenter
    from us_segmentation.metrics import dice, hd95_mm

    from us_segmentation import default_model_dir

    seg = Segmenter(default_model_dir(), backend=backend, device="cpu", threads=THREADS)
    for img in images[:3]:
        seg.segment(img, sp)
    dices, hds, times = [], [], []
    inter = total = 0
    for img, gt in zip(images, gts, strict=True):
        t0 = time.perf_counter()
        pred = seg.segment(img, sp).labels == seg.card.thyroid_index
        times.append((time.perf_counter() - t0) * 1e3)
        inter += int((pred & gt).sum())
        total += int(pred.sum() + gt.sum())
        if gt.sum() * sp[0] * sp[1] >= 20.0:
            dices.append(dice(pred, gt))
            hds.append(hd95_mm(pred, gt, sp))
    return {
        "dice": float(np.mean(dices)),
        "dice_median": float(np.median(dices)),
        "dice_global": 2.0 * inter / max(total, 1),
        "hd95_mm": float(np.mean(hds)),
        "hd95_mm_median": float(np.median(hds)),
        "frames": len(images),
        "frames_scored": len(dices),
        "infer_p50_ms": _pct(times, 50),
        "infer_p95_ms": _pct(times, 95),
    }


def make_replay(path: Path, fps: float = 30.0) -> Path:
    """A tracked sequence file (.igs.mha) of one simulated 8 s freehand transverse sweep of
    an unseen phantom at ``fps``: what a grabber + tracker recording delivers, replayed by
    the acquisition node at its own timestamps (no rendering cost in the loop)."""
    from us_acquisition.sequence_io import TrackedSequence, write_sequence
    from us_acquisition.sim import BModeSimulator, NeckPhantom
    from us_acquisition.sim.bmode import BModeParams
    from us_acquisition.sim.dataset import make_trajectory, simulate_sweep

    ph = NeckPhantom.from_seed(EVAL_SEEDS[0])
    sim = BModeSimulator(ph, BModeParams(width_px=640, height_px=480), seed=5)
    traj = make_trajectory("freehand_transverse", ph, 5)
    n = round(traj.duration_s * fps)
    sw = simulate_sweep(ph, sim, traj, n_frames=n, seed=5)
    seq = TrackedSequence(
        frames=sw.images,
        timestamps_s=np.arange(n, dtype=np.float64) / fps,
        transforms={"ProbeToTracker": sw.frames.T_phantom_probe_true},
        transform_status={"ProbeToTracker": np.ones(n, dtype=bool)},
        spacing_mm=sw.pixel_spacing_mm,
    )
    write_sequence(path, seq)
    return path


def in_graph(backend: str, seconds: float, replay: Path | None) -> dict[str, Any]:
    """Acquisition (640x480 mono8, 30 fps: a replayed tracked recording, or the simulator
    rendering live when ``replay`` is None) + segmentation node as processes; frame
    written -> mask written latency from the two channels' headers (monotonic)."""
    from lifecycle_msgs.msg import Transition
    from us_acquisition.ros_testing import RosProbe, start_node, stop_node

    from us_frame_channel import FrameReader

    uid = uuid.uuid4().hex[:8]
    ns, fch, mch = f"/bench{uid}", f"bench/f-{uid}", f"bench/m-{uid}"
    src: dict[str, Any] = (
        {"source": "sim", "width": 640, "height": 480, "fps": 30.0}
        if replay is None
        else {"source": "sequence", "source_path": str(replay), "loop": True}
    )
    acq = start_node("acquisition_node", ns, src | {"channel_name": fch})
    seg = start_node(
        "segmentation_node",
        ns,
        {
            "input_channel": fch,
            "mask_channel": mch,
            "backend": backend,
            "threads": THREADS,
            "device": "cpu",
        },
    )
    probe = RosProbe(ns)
    written: dict[int, int] = {}
    e2e: list[tuple[float, float]] = []  # (t since start s, ms)
    masks = 0
    try:
        for node in ("segmentation", "acquisition"):
            for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
                if not probe.transition(node, tid, 60.0):
                    raise RuntimeError(f"{node}: transition {tid} failed")
        frames = FrameReader(fch, mode="every", wait_s=10.0)
        mreader = FrameReader(mch, mode="every", wait_s=10.0)
        warm_end = time.monotonic() + 3.0
        while time.monotonic() < warm_end:  # model warm-up, caches
            for r in (frames, mreader):
                while (f := r.try_read()) is not None:
                    f.release()
            time.sleep(0.01)
        t0 = time.monotonic()
        end = t0 + seconds
        frames_seen = 0
        pending: list[tuple[float, int, int]] = []  # (t, source_seq, mask written ns)
        while time.monotonic() < end:
            m = mreader.read(0.005)
            while m is not None:
                with m:
                    pending.append(
                        (time.monotonic() - t0, m.info.source_seq, m.info.publish_monotonic_ns)
                    )
                    masks += 1
                m = mreader.try_read()
            while (f := frames.try_read()) is not None:
                with f:
                    written[f.info.seq] = f.info.publish_monotonic_ns
                    frames_seen += 1
            keep = []
            for t, sseq, mns in pending:
                w = written.get(sseq)
                if w is not None:
                    e2e.append((t, (mns - w) / 1e6))
                elif t > time.monotonic() - t0 - 1.0:
                    keep.append((t, sseq, mns))  # frame not read yet; give up after 1 s
            pending = keep
        elapsed = time.monotonic() - t0
        dropped_masks = mreader.stats.dropped
        frames.close()
        mreader.close()
    finally:
        probe.close()
        stop_node(seg)
        stop_node(acq)
    lat = [v for _, v in e2e]
    first = [v for t, v in e2e if t < seconds / 2]
    second = [v for t, v in e2e if t >= seconds / 2]
    return {
        "seconds": round(elapsed, 1),
        "frames_per_s": frames_seen / elapsed,
        "masks_per_s": masks / elapsed,
        "frames_skipped_pct": 100.0 * max(0, frames_seen - masks) / max(frames_seen, 1),
        "e2e_p50_ms": _pct(lat, 50),
        "e2e_p95_ms": _pct(lat, 95),
        "e2e_p99_ms": _pct(lat, 99),
        "e2e_p50_first_half_ms": _pct(first, 50),
        "e2e_p50_second_half_ms": _pct(second, 50),
        "masks_lost_by_bench_reader": dropped_masks,
    }


def run(quick: bool, seconds: float) -> dict[str, Any]:
    from us_segmentation import default_model_dir

    images, gts, sp = eval_set(quick)
    mdir = default_model_dir()
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "model": mdir.name,
        "model_mb": round(sum(f.stat().st_size for f in (mdir / "model.pt",)) / 1e6, 2),
        "onnx_mb": round((mdir / "model.onnx").stat().st_size / 1e6, 2),
        "eval_phantom_seeds": list(EVAL_SEEDS[:1] if quick else EVAL_SEEDS),
        "frame_px": [640, 480],
        "spacing_mm": list(sp),
        "backends": {},
    }
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        cuda = False
    out["cuda"] = "available (not measured by this script)" if cuda else "no GPU on this machine"
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench_seg_"))
    replay = make_replay(tmp / "sweep.igs.mha")
    out["graph_source"] = (
        "acquisition replays a tracked recording (.igs.mha, 640x480 mono8, 30 fps, 8 s "
        "sweep of an unseen phantom) like a grabber: no rendering in the loop; "
        "'with_live_simulator' renders every frame on the same 2 cores"
    )
    for backend in ("torchscript", "onnx"):
        print(f"-- {backend}: accuracy and per-frame speed on {len(images)} frames", flush=True)
        row = accuracy_and_speed(backend, images, gts, sp)
        print(f"-- {backend}: in the running graph (replay) for {seconds:g} s", flush=True)
        row.update(in_graph(backend, seconds, replay))
        out["backends"][backend] = row
    print(f"-- torchscript: graph with the simulator rendering live, {seconds:g} s", flush=True)
    out["backends"]["torchscript"]["with_live_simulator"] = in_graph("torchscript", seconds, None)
    main_row = out["backends"]["torchscript"]
    out["backend"] = f"torchscript (PyTorch) cpu, {THREADS} thread(s)"
    for k in (
        "dice",
        "hd95_mm",
        "infer_p50_ms",
        "infer_p95_ms",
        "e2e_p50_ms",
        "e2e_p95_ms",
        "masks_per_s",
    ):
        out[k] = main_row[k]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seconds", type=float, default=None, help="graph run per backend, s")
    p.add_argument("--out", default=str(HERE / "results" / "segmentation.json"))
    p.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="the node's inference threads"
    )
    a = p.parse_args()
    global THREADS
    THREADS = a.threads
    seconds = a.seconds or (10.0 if a.quick else 45.0)
    res = run(a.quick, seconds)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"\n{'':26s}{'PyTorch (ours)':>16s}{'ONNX Runtime':>16s}")
    b = res["backends"]
    for k, unit in (
        ("dice", ""),
        ("hd95_mm", " mm"),
        ("infer_p50_ms", " ms"),
        ("infer_p95_ms", " ms"),
        ("e2e_p50_ms", " ms"),
        ("e2e_p95_ms", " ms"),
        ("masks_per_s", "/s"),
        ("frames_per_s", "/s"),
    ):
        print(f"{k + unit:26s}{b['torchscript'][k]:16.3f}{b['onnx'][k]:16.3f}")
    print("targets: dice >= 0.90, hd95 <= 2 mm, e2e p95 <= 40 ms, >= 30 masks/s at 30 fps")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
