"""Tests of sweep simulation, the .npz writer and the dataset CLI (tiny sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from us_acquisition.sim.bmode import BModeParams, BModeSimulator
from us_acquisition.sim.dataset import (
    load_sweep_npz,
    main,
    simulate_sweep,
    write_sweep_npz,
)
from us_acquisition.sim.motion import ProbeTrajectory
from us_acquisition.sim.phantom import NeckPhantom


def test_sweep_npz_roundtrip(tmp_path: Path) -> None:
    ph = NeckPhantom.from_seed(1, spacing_mm=1.0)
    sim = BModeSimulator(ph, BModeParams(width_px=160, height_px=120), seed=2)
    traj = ProbeTrajectory.freehand_transverse(ph, seed=2, duration_s=2.0)
    sw = simulate_sweep(ph, sim, traj, n_frames=9, time_offset_ms=20.0, seed=3)
    path = write_sweep_npz(tmp_path / "s.npz", sw, phantom=ph)
    d = load_sweep_npz(path)
    assert d["images"].shape == (9, 120, 160) and d["images"].dtype == np.uint8
    assert d["labels"].shape == (9, 120, 160) and d["labels"].dtype == np.uint8
    assert d["frame_timestamps_ns"].dtype == np.int64 and d["frame_timestamps_ns"].size == 9
    assert d["T_phantom_probe_true"].shape == (9, 4, 4)
    assert d["tracker_timestamps_ns"].size == 241  # 2 s at 120 Hz
    assert d["tracker_T_phantom_probe"].shape == (241, 4, 4)
    assert tuple(d["roi"]) == (0, 0, 160, 120)
    assert np.allclose(d["pixel_spacing_mm"], [50 / 160, 40 / 120])
    assert float(d["thyroid_volume_ml"]) == ph.thyroid_volume_ml
    assert np.array_equal(d["phantom_labels"], ph.labels)
    assert np.allclose(d["phantom_origin_mm"], ph.origin_mm)
    meta = d["metadata"]
    assert meta["time_offset_ms"] == 20.0 and meta["phantom"]["seed"] == 1
    # the frame stamped t shows the pose at t + 20 ms
    t = d["frame_timestamps_ns"] / 1e9
    assert np.allclose(d["T_phantom_probe_true"], traj.poses(t + 0.02))
    # last frame's label image re-renders identically from the stored pose
    assert np.array_equal(sim.render(d["T_phantom_probe_true"][-1]).labels, d["labels"][-1])


def test_cli_splits_by_phantom_and_is_reproducible(tmp_path: Path) -> None:
    args = [
        "--phantoms",
        "3",
        "--sweeps-per-phantom",
        "2",
        "--seed",
        "5",
        "--size",
        "96x72",
        "--frames-per-sweep",
        "3",
        "--spacing",
        "1.0",
    ]
    assert main(["--out", str(tmp_path / "a"), *args]) == 0
    assert main(["--out", str(tmp_path / "b"), *args]) == 0
    splits = json.loads((tmp_path / "a" / "splits.json").read_text())
    groups = [set(splits[k]) for k in ("train", "validation", "test")]
    assert all(groups)
    assert set.union(*groups) == {"phantom_000", "phantom_001", "phantom_002"}
    assert sum(len(g) for g in groups) == 3
    for pid, files in splits["files"].items():
        assert len(files) == 2
        for f in files:
            a = load_sweep_npz(tmp_path / "a" / f)
            b = load_sweep_npz(tmp_path / "b" / f)
            assert a["images"].shape == (3, 72, 96)
            assert np.array_equal(a["images"], b["images"])
            assert np.array_equal(a["tracker_T_phantom_probe"], b["tracker_T_phantom_probe"])
            assert a["metadata"]["phantom_id"] == pid
    assert (tmp_path / "a" / "phantom_000" / "phantom.npz").exists()
