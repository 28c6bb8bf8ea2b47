"""``us-demo`` (``make demo``): the whole graph on the built-in simulator, with results.

Starts ``us-run`` (acquisition on a simulated freehand thyroid sweep -> segmentation ->
reconstruction -> gRPC bridge), watches it as one more consumer of the frame and mask
channels and of the nodes' topics, shows progress, saves the reconstruction through the
node's service, and writes a results folder:

    results/demo-<time>/
      volume.nrrd, volume_labels.nrrd   reconstructed B-mode volume and thyroid labels
      volume_thyroid.ply / .stl         thyroid surface (mm, world = tracker frame)
      slices.png                        orthogonal slices with the segmentation overlaid
      mesh.png                          the thyroid mesh rendered
      frames.png                        frames of the sweep with their masks
      latency.png                       frame -> mask -> volume -> gRPC client latency
      summary.json                      volume vs truth vs ellipsoid, fps, latency, status
      graph.log                         what the nodes printed

    us-demo [--seconds 32] [--fps 30] [--seed 7] [--out results]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

NODES = ("acquisition", "segmentation", "reconstruction", "grpc_bridge")
GRPC_PORT = 50051


def _pct(v: list[float], q: float) -> float | None:
    return float(np.percentile(v, q)) if v else None


class Watcher:
    """Reads the frame and mask channels (every frame) and the nodes' topics."""

    def __init__(self, ns: str, keep: int) -> None:
        from us_acquisition.node_common import LATCHED
        from us_acquisition.ros_testing import RosProbe

        from us_interfaces.msg import NodeStatus, ReconstructionInfo, SegmentationResult

        self.probe = RosProbe(ns)
        self.info = self.probe.subscribe(ReconstructionInfo, "reconstruction/info", LATCHED)
        self.results = self.probe.subscribe(SegmentationResult, "segmentation/result", 50)
        self.status = {n: self.probe.subscribe(NodeStatus, f"{n}/status", LATCHED) for n in NODES}
        self.keep = keep
        self.written: dict[int, int] = {}  # frame seq -> publish monotonic ns
        self.frames: dict[int, np.ndarray] = {}
        self.kept: list[tuple[int, np.ndarray, np.ndarray, tuple[float, float]]] = []
        self.mask_lat: list[tuple[float, float]] = []  # (t s, frame written -> mask ms)
        self.n_frames = 0
        self.n_masks = 0
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self.error = ""
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _take(self, f: Any, keep_every: int) -> None:
        with f:
            self.written[f.info.seq] = f.info.publish_monotonic_ns
            self.n_frames += 1
            if f.info.seq % keep_every == 0 and len(self.kept) < self.keep:
                self.frames[f.info.seq] = np.array(f.array, copy=True)

    def _read(self) -> None:
        from us_frame_channel import ChannelError, FrameReader

        try:
            frames = FrameReader("us/frames", mode="every", wait_s=90.0)
            masks = FrameReader("us/masks", mode="every", wait_s=90.0)
        except ChannelError as exc:
            self.error = str(exc)
            return
        keep_every = 40
        with frames, masks:
            while not self._stop.is_set():
                f = frames.read(0.02)
                while f is not None:
                    self._take(f, keep_every)
                    f = frames.try_read()
                while (m := masks.try_read()) is not None:
                    # its frame was published first: take the frames that came meanwhile
                    while (f := frames.try_read()) is not None:
                        self._take(f, keep_every)
                    with m:
                        self.n_masks += 1
                        w = self.written.get(m.info.source_seq)
                        if w is not None:
                            self.mask_lat.append(
                                (
                                    time.monotonic() - self.t0,
                                    (m.info.publish_monotonic_ns - w) / 1e6,
                                )
                            )
                        img = self.frames.pop(m.info.source_seq, None)
                        if img is not None:
                            sp = (m.info.spacing_x_mm, m.info.spacing_y_mm)
                            self.kept.append((m.info.source_seq, img, np.array(m.array), sp))


class GrpcViewer:
    """A remote viewer: streams frame + mask + pose over gRPC (JPEG, 15 Hz) and measures
    capture -> received latency (CLOCK_REALTIME, same host)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.lat_ms: list[tuple[float, float]] = []
        self.n = 0
        self.with_pose = 0
        self.with_mask = 0
        self.bytes = 0
        self.dropped = 0
        self.error = ""
        self.t0 = time.monotonic()
        self._call: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import grpc
        from us_grpc_bridge.client import UltrasoundClient

        deadline = time.monotonic() + 90
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                with UltrasoundClient(self.target) as c:
                    self._call = c.stream(
                        "combined", encoding="jpeg", jpeg_quality=80, max_rate_hz=15.0,
                        mask_encoding="png",
                    )  # fmt: skip
                    for msg in self._call:
                        now = time.time_ns()
                        self.n += 1
                        self.bytes += len(msg.image.data) + len(msg.mask.data)
                        self.with_pose += bool(len(msg.T_world_image))
                        self.with_mask += msg.HasField("mask")
                        self.dropped = int(msg.frames_dropped)
                        self.lat_ms.append(
                            (time.monotonic() - self.t0, (now - msg.host_timestamp_ns) / 1e6)
                        )
                        if self._stop.is_set():
                            return
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                self.error = f"{exc.code().name}: {exc.details()}"
                time.sleep(0.5)  # the bridge is not up yet


def _plots(folder: Path, w: Watcher, vol_lat: list[tuple[float, float]],
           files: dict[str, Path], client: GrpcViewer) -> list[str]:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    if w.kept:
        n = min(len(w.kept), 6)
        fig, axes = plt.subplots(2, 3, figsize=(12.6, 7.2), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (seq, img, mask, sp) in zip(axes.ravel(), w.kept[:n], strict=False):
            h, wd = img.shape[:2]
            ext = (-wd * sp[0] / 2, wd * sp[0] / 2, h * sp[1], 0)
            ax.imshow(img, cmap="gray", vmin=0, vmax=255, extent=ext)
            if mask.any():
                ax.contour(mask == 1, levels=[0.5], colors="lime", linewidths=1.0,
                           extent=(ext[0], ext[1], ext[3], ext[2]), origin="upper")  # fmt: skip
            ax.set_title(f"frame {seq}: thyroid mask (green)", fontsize=9)
            ax.set_xlabel("lateral (mm)", fontsize=8)
            ax.set_ylabel("depth (mm)", fontsize=8)
            ax.axis("on")
            ax.tick_params(labelsize=7)
        fig.suptitle(
            "live frames (us/frames) with the masks the segmentation node wrote (us/masks)"
        )
        fig.tight_layout()
        fig.savefig(folder / "frames.png", dpi=100)
        plt.close(fig)
        made.append("frames.png")

    fig, ax = plt.subplots(figsize=(8, 3.6))
    if w.mask_lat:
        t, v = zip(*w.mask_lat, strict=True)
        ax.plot(t, v, ".", ms=2, label="frame written -> mask written")
    if client.lat_ms:
        t, v = zip(*client.lat_ms, strict=True)
        ax.plot(t, v, ".", ms=2, label="capture -> gRPC client received (JPEG + mask + pose)")
    if vol_lat:
        t, v = zip(*vol_lat, strict=True)
        ax.plot(t, v, "-", lw=1.5, label="capture -> compounded, p95 over the last frames")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("latency in the running graph")
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=100)
    plt.close(fig)
    made.append("latency.png")

    vol_path, lab_path = files.get("volume.nrrd"), files.get("volume_labels.nrrd")
    if vol_path and lab_path and vol_path.exists() and lab_path.exists():
        from us_reconstruction.export import read_volume

        vol, grid = read_volume(vol_path)
        lab, _ = read_volume(lab_path)
        idx = np.argwhere(lab > 0)
        c = idx.mean(axis=0).astype(int) if len(idx) else np.array(vol.shape) // 2
        vsp = grid.spacing_mm
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.8))
        views = [
            ("axial (x-y, z = %.0f mm)", vol[:, :, c[2]].T, lab[:, :, c[2]].T, (vsp[0], vsp[1]),
             ("x (mm)", "y = depth (mm)")),
            ("sagittal (y-z, x = %.0f mm)", vol[c[0], :, :], lab[c[0], :, :], (vsp[2], vsp[1]),
             ("z (mm)", "y = depth (mm)")),
            ("coronal (x-z, y = %.0f mm)", vol[:, c[1], :].T, lab[:, c[1], :].T, (vsp[0], vsp[2]),
             ("x (mm)", "z (mm)")),
        ]  # fmt: skip
        for ax, (title, img, lb, (sx, sy), (xl, yl)), k in zip(axes, views, range(3), strict=True):
            world = grid.index_to_world(np.asarray([c], dtype=float))[0]
            ext = (0, img.shape[1] * sx, img.shape[0] * sy, 0)
            ax.imshow(img, cmap="gray", vmin=0, vmax=255, extent=ext)
            if lb.any():
                ax.contour(lb > 0, levels=[0.5], colors="lime", linewidths=1.0,
                           extent=(ext[0], ext[1], ext[3], ext[2]), origin="upper")  # fmt: skip
            ax.set_title(title % world[[2, 0, 1][k]], fontsize=9)
            ax.set_xlabel(xl + " from the grid corner", fontsize=8)
            ax.set_ylabel(yl, fontsize=8)
        fig.suptitle("reconstructed volume (0.5 mm voxels) with the thyroid label (green)")
        fig.tight_layout()
        fig.savefig(folder / "slices.png", dpi=100)
        plt.close(fig)
        made.append("slices.png")

    mesh_path = files.get("volume_thyroid.ply")
    if mesh_path and mesh_path.exists():
        from mpl_toolkits.mplot3d.art3d import Poly3DCollection
        from us_reconstruction.export import read_mesh

        verts, tris = read_mesh(mesh_path)
        fig = plt.figure(figsize=(7, 6))
        ax = fig.add_subplot(projection="3d")
        tri = verts[tris]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        shade = 0.35 + 0.65 * np.clip(normals @ np.array([0.3, -0.5, 0.8]), 0, 1)
        colors = np.stack([0.95 * shade, 0.55 * shade, 0.4 * shade, np.ones_like(shade)], 1)
        ax.add_collection3d(Poly3DCollection(tri, facecolors=colors, linewidths=0))
        lo, hi = verts.min(0), verts.max(0)
        mid, r = (lo + hi) / 2, (hi - lo).max() / 2
        ax.set_xlim(mid[0] - r, mid[0] + r)
        ax.set_ylim(mid[1] - r, mid[1] + r)
        ax.set_zlim(mid[2] - r, mid[2] + r)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        ax.set_zlabel("z (mm)")
        ax.view_init(elev=-60, azim=-90)
        ax.set_title(f"thyroid surface: {len(tris)} triangles")
        fig.tight_layout()
        fig.savefig(folder / "mesh.png", dpi=100)
        plt.close(fig)
        made.append("mesh.png")
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="us-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=32.0, help="how long to scan (s)")
    p.add_argument("--fps", type=float, default=30.0, help="simulated scanner frame rate")
    p.add_argument("--seed", type=int, default=7, help="simulated patient (phantom seed)")
    p.add_argument("--out", default=os.path.join(os.environ.get("US_WS_ROOT", "."), "results"))
    a = p.parse_args(argv)

    from us_acquisition.sim.phantom import NeckPhantom

    from us_interfaces.srv import SaveVolume

    folder = (Path(a.out) / time.strftime("demo-%Y%m%d-%H%M%S")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    ns = "us"
    truth_ml = NeckPhantom.from_seed(a.seed).thyroid_volume_ml
    print(
        f"us-demo: simulated patient {a.seed} (thyroid {truth_ml:.2f} mL), freehand transverse "
        f"sweeps at {a.fps:g} fps for {a.seconds:g} s; graph: {' -> '.join(NODES)}",
        flush=True,
    )
    cmd = [
        "us-run",
        "--nodes",
        ",".join(NODES),
        "--namespace",
        ns,
        "--set",
        "acquisition.source=sim",
        "--set",
        f"acquisition.sim_seed={a.seed}",
        "--set",
        f"acquisition.fps={a.fps}",
        "--set",
        "acquisition.width=640",
        "--set",
        "acquisition.height=480",
        "--set",
        f"reconstruction.output_dir={folder}",
        "--set",
        f"grpc_bridge.port={GRPC_PORT}",
        "--set",
        "grpc_bridge.igtl_port=0",
    ]
    graph = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log_lines: list[str] = []

    def pump() -> None:
        assert graph.stdout is not None
        for line in graph.stdout:
            log_lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    w = Watcher(f"/{ns}", keep=6)
    w.start()
    client = GrpcViewer(f"127.0.0.1:{GRPC_PORT}")
    client.start()
    summary: dict[str, Any] = {"folder": str(folder), "seed": a.seed, "fps_setting": a.fps}
    vol_lat: list[tuple[float, float]] = []
    files: dict[str, Path] = {}
    ok = False
    try:
        up = w.probe.spin_until(
            lambda: any(s.state == 3 for s in w.status["acquisition"]) or graph.poll() is not None,
            120,
        )
        if not up or graph.poll() is not None:
            print("us-demo: the graph did not come up; see graph.log", flush=True)
            return 1
        t0 = time.monotonic()
        w.t0 = client.t0 = t0
        next_print = t0 + 2.0
        while time.monotonic() - t0 < a.seconds:
            w.probe.spin_until(lambda: False, 0.2)
            now = time.monotonic()
            if graph.poll() is not None:
                print("us-demo: the graph stopped early; see graph.log", flush=True)
                break
            info = w.info[-1] if w.info else None
            if info is not None and info.latency_p95_ms > 0:
                vol_lat.append((now - t0, info.latency_p95_ms))
            if now >= next_print:
                next_print += 2.0
                ml = info.thyroid_volume_ml if info else 0.0
                used = info.frames_used if info else 0
                lat = [v for t, v in w.mask_lat if t > now - t0 - 2.0]
                print(
                    f"  t={now - t0:4.0f} s  frames {w.n_frames:5d}  masks {w.n_masks:5d}  "
                    f"compounded {used:5d}  frame->mask p50 "
                    f"{(np.median(lat) if lat else float('nan')):5.1f} ms  "
                    f"thyroid {ml:5.2f} mL (true {truth_ml:.2f})",
                    flush=True,
                )
        elapsed = time.monotonic() - t0
        req = SaveVolume.Request(
            directory=str(folder), basename="volume", formats=["nrrd", "ply", "stl"]
        )
        try:
            saved = w.probe.call(SaveVolume, "reconstruction/save", req, 120)
            files = {Path(x).name: Path(x) for x in saved.paths}
            if not saved.success:
                print(f"us-demo: save failed: {saved.message}", flush=True)
        except AssertionError as exc:
            print(f"us-demo: save failed: {exc}", flush=True)
        w.probe.spin_until(lambda: False, 0.5)
        info = w.info[-1] if w.info else None
        res = w.results[-50:]
        lat = [v for _, v in w.mask_lat]
        measured = info.thyroid_volume_ml if info else 0.0
        ell = info.ellipsoid_volume_ml if info else 0.0
        summary.update(
            {
                "seconds": round(elapsed, 1),
                "thyroid_volume_true_ml": round(truth_ml, 3),
                "thyroid_volume_ml": round(measured, 3),
                "volume_err_pct": round(100 * (measured - truth_ml) / truth_ml, 2),
                "ellipsoid_volume_ml": round(ell, 3),
                "ellipsoid_err_pct": round(100 * (ell - truth_ml) / truth_ml, 2),
                "frames_per_s": round(w.n_frames / elapsed, 2),
                "masks_per_s": round(w.n_masks / elapsed, 2),
                "frames_compounded": info.frames_used if info else 0,
                "frames_skipped": info.frames_skipped if info else 0,
                "skip_reasons": {k.key: k.value for k in info.skip_reasons} if info else {},
                "frame_to_mask_p50_ms": _pct(lat, 50),
                "frame_to_mask_p95_ms": _pct(lat, 95),
                "capture_to_volume_p95_ms": info.latency_p95_ms if info else None,
                "grpc_client": {
                    "messages_per_s": round(client.n / elapsed, 2),
                    "capture_to_client_p50_ms": _pct([v for _, v in client.lat_ms], 50),
                    "capture_to_client_p95_ms": _pct([v for _, v in client.lat_ms], 95),
                    "with_pose_pct": round(100 * client.with_pose / max(client.n, 1), 1),
                    "with_mask_pct": round(100 * client.with_mask / max(client.n, 1), 1),
                    "bytes_per_message": round(client.bytes / max(client.n, 1)),
                    "dropped_for_this_client": client.dropped,
                    "last_error": client.error,
                },
                "inference_ms_p50": _pct([r.inference_ms for r in res], 50),
                "volume_dims": list(map(int, info.dims)) if info else [],
                "volume_spacing_mm": list(info.spacing_mm) if info else [],
                "node_status": {
                    n: {
                        "state": s[-1].state_label,
                        "fps": round(s[-1].fps, 2),
                        "frames_out": s[-1].frames_out,
                        "frames_dropped": s[-1].frames_dropped,
                        "last_error": s[-1].last_error,
                    }
                    for n, s in w.status.items()
                    if s
                },
                "files": sorted(files),
            }
        )
        ok = bool(files) and w.n_masks > 0
    finally:
        client.stop()
        w.stop()
        graph.send_signal(signal.SIGINT)
        try:
            graph.wait(timeout=60)
        except subprocess.TimeoutExpired:
            graph.kill()
            graph.wait()
        time.sleep(0.2)
        (folder / "graph.log").write_text("".join(log_lines))
        w.probe.close()
    summary["pictures"] = _plots(folder, w, vol_lat, files, client)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print()
    print(
        f"us-demo: thyroid volume {summary.get('thyroid_volume_ml', 0):.2f} mL measured "
        f"(error {summary.get('volume_err_pct', 0):+.1f} %), ellipsoid formula "
        f"{summary.get('ellipsoid_volume_ml', 0):.2f} mL "
        f"({summary.get('ellipsoid_err_pct', 0):+.1f} %), true {truth_ml:.2f} mL"
    )
    print(
        f"us-demo: {summary.get('frames_per_s', 0):.1f} frames/s, "
        f"{summary.get('masks_per_s', 0):.1f} masks/s, frame->mask p50 "
        f"{summary.get('frame_to_mask_p50_ms') or float('nan'):.1f} ms / p95 "
        f"{summary.get('frame_to_mask_p95_ms') or float('nan'):.1f} ms"
    )
    g = summary.get("grpc_client", {})
    print(
        f"us-demo: gRPC viewer {g.get('messages_per_s', 0):.1f} msg/s (JPEG + mask + pose), "
        f"capture->client p50 {g.get('capture_to_client_p50_ms') or float('nan'):.1f} ms, "
        f"{g.get('with_pose_pct', 0):.0f} % with T_world_image"
    )
    print(f"us-demo: results in {folder}/")
    for name in sorted(p.name for p in folder.iterdir()):
        print(f"  {name}")
    print("  open volume.nrrd + volume_labels.nrrd + volume_thyroid.ply in 3D Slicer (see README)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
