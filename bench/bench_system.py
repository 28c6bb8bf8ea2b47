"""Whole-system soak and fault benchmark (issue "The whole system", reliability).

Starts the whole graph with ``us-run --respawn`` (acquisition on the simulator, 640x480 at
30 fps, segmentation, reconstruction, gRPC bridge) under a namespace and channel names of
its own, plus a remote viewer streaming frame + mask + pose over gRPC (JPEG + PNG, 15 Hz,
like ``us-demo``), and watches it for ``--soak-min`` minutes:

* RSS of every node process (psutil; the pid the runner last started each node with;
  the warm spares of ``--respawn`` are not counted) every ``sample_s`` (10 s; 5 s with
  ``--quick``; shorter when a window would hold fewer than 3 samples);
  ``rss_growth_pct`` = 100 * (mean total node RSS over the last window / mean over the
  first window - 1), windows of ``window_s`` = min(300 s, (soak - warm-up) / 3) starting
  after a warm-up of min(60 s, 20 % of the soak): with the default 30 min, the last 5 min
  vs the first 5 min after the first minute. Per node too.
* ``producer_lost``: frames the acquisition lost at the source (its NodeStatus
  ``frames_dropped``: the simulator could not render a frame in time, i.e. a grabber would
  have dropped it), at the end of the soak.
* frame -> mask latency from the channel headers (frame ``publish_monotonic_ns`` -> mask
  ``publish_monotonic_ns``, same host clock): p50/p95 per minute (stability) and
  ``e2e_mask_p95_ms`` over the soak after warm-up;
* ``e2e_volume_p95_ms``: ReconstructionInfo.latency_p95_ms (capture -> compounded, p95 over
  the node's recent frames), sampled every 0.5 s; the median of the samples after warm-up
  (the max is reported too);
* ``e2e_client_p95_ms``: capture ``host_timestamp_ns`` -> received by the gRPC client
  (CLOCK_REALTIME, same host), after warm-up;
* ``volume_err_pct``: ReconstructionInfo.thyroid_volume_ml at the end of the soak vs the
  phantom's true ``NeckPhantom.from_seed(seed).thyroid_volume_ml``.

Then the faults, on the same graph, one after the other (each: what is done, when it counts
as survived, recovery = fault -> first sign of normal service):

  kill_segmentation   SIGKILL; the runner respawns it; first mask of the new process
  kill_reconstruction SIGKILL; respawned; first ReconstructionInfo of the new process with
                      frames compounded
  kill_grpc_bridge    SIGKILL; respawned; first message at the (reconnecting) gRPC viewer
  kill_acquisition    SIGKILL; respawned; first mask computed from a frame of the new
                      producer (new producer_epoch); the viewer's resumption is reported
  client_stall        a second gRPC client stops reading for 10 s: the producer's fps
                      over those 10 s is within 5 % of the 10 s before (source losses
                      before / during are reported; recovery 0)
  client_vanish       a client process is SIGKILLed mid-stream: same criterion

Writes ``bench/results/system.json`` (``--out``). ``remote_fps`` / ``remote_lat_p95_ms``
(segmentation on another host over the ROS topic) are measured by
``bench/bench_cross_host.py`` (network namespaces, needs root) and carried over from
``bench/results/cross_host.json`` when it exists.

    python bench/bench_system.py [--soak-min 30] [--quick] [--no-faults]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from us_bringup.graph_process import GraphProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
NODES = ("acquisition", "segmentation", "reconstruction", "grpc_bridge")


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 2) if values else None


class ChannelWatcher:
    """Reads every frame and mask header (frame -> mask latency), re-opening a channel after
    1 s of silence so that it follows restarted producers."""

    def __init__(self, frames: str, masks: str) -> None:
        self.names = {"frames": frames, "masks": masks}
        self.written: dict[tuple[int, int], int] = {}  # (epoch, seq) -> publish ns
        self.frame_rx: list[float] = []  # monotonic s of each frame received
        self.frame_epoch = 0
        self.mask_lat: list[tuple[float, float]] = []  # (monotonic s, ms)
        # (monotonic s, mask writer epoch, source epoch) of the newest mask
        self.last_mask: tuple[float, int, int] = (0.0, 0, 0)
        self.n_masks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def frames_between(self, t0: float, t1: float) -> int:
        return sum(1 for t in self.frame_rx[-20000:] if t0 <= t < t1)

    def _run(self) -> None:
        from us_frame_channel import ChannelError, FrameReader

        readers: dict[str, Any] = {"frames": None, "masks": None}
        last = {"frames": time.monotonic(), "masks": time.monotonic()}
        try:
            while not self._stop.is_set():
                for key, name in self.names.items():
                    r = readers[key]
                    if r is None:
                        try:
                            r = readers[key] = FrameReader(name, mode="every", wait_s=0.05)
                            last[key] = time.monotonic()
                        except ChannelError:
                            continue
                    try:
                        f = r.read(0.01) if key == "frames" else r.try_read()
                        while f is not None:
                            now = time.monotonic()
                            last[key] = now
                            with f:
                                i = f.info
                            if key == "frames":
                                self.written[(i.producer_epoch, i.seq)] = i.publish_monotonic_ns
                                self.frame_rx.append(now)
                                self.frame_epoch = i.producer_epoch
                                if len(self.written) > 600:  # keep the last ~20 s
                                    for k in list(self.written)[:300]:
                                        del self.written[k]
                            else:
                                self.n_masks += 1
                                self.last_mask = (now, i.producer_epoch, i.source_epoch)
                                w = self.written.get((i.source_epoch, i.source_seq))
                                if w is not None:
                                    ms = (i.publish_monotonic_ns - w) / 1e6
                                    self.mask_lat.append((now, ms))
                            f = r.try_read()
                    except ChannelError:
                        r.close()
                        readers[key] = None
                        continue
                    if time.monotonic() - last[key] > 1.0:
                        r.close()
                        readers[key] = None
        finally:
            for r in readers.values():
                if r is not None:
                    r.close()


class Viewer:
    """A remote viewer on gRPC (combined JPEG + PNG mask, 15 Hz); reconnects when the
    bridge goes away. Latency: capture host_timestamp_ns -> received (CLOCK_REALTIME)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.lat: list[tuple[float, float]] = []  # (monotonic s, ms)
        self.last_rx = 0.0
        self.last_epoch = 0
        self.n = 0
        self.reconnects = 0
        self.error = ""
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

        while not self._stop.is_set():
            try:
                with UltrasoundClient(self.target) as c:
                    self._call = c.stream(
                        "combined",
                        encoding="jpeg",
                        jpeg_quality=80,
                        max_rate_hz=15.0,
                        mask_encoding="png",
                    )
                    for msg in self._call:
                        now_ns = time.time_ns()
                        now = time.monotonic()
                        self.n += 1
                        self.last_rx = now
                        self.last_epoch = int(msg.producer_epoch)
                        self.lat.append((now, (now_ns - msg.host_timestamp_ns) / 1e6))
                        if self._stop.is_set():
                            return
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                self.error = f"{exc.code().name}: {exc.details()}"
            self.reconnects += 1
            self._stop.wait(0.2)


def _node_processes(graph: GraphProcess) -> dict[str, Any]:
    """The live process of each node: the pid the runner last started it with (a warm
    spare of ``--respawn`` has the same command line, so command lines do not tell)."""
    import psutil

    out: dict[str, Any] = {}
    for n in NODES:
        pids = graph.pids(n)
        if not pids:
            continue
        try:
            out[n] = psutil.Process(pids[-1])
        except psutil.Error:
            continue
    return out


def _rss_mb(procs: dict[str, Any]) -> dict[str, float]:
    import psutil

    out: dict[str, float] = {}
    for n, p in procs.items():
        try:
            out[n] = p.memory_info().rss / 2**20
        except psutil.Error:
            pass
    return out


def _cpu_s(procs: dict[str, Any]) -> dict[str, float]:
    import psutil

    out: dict[str, float] = {}
    for n, p in procs.items():
        try:
            c = p.cpu_times()
            out[n] = float(c.user + c.system)
        except psutil.Error:
            pass
    return out


def _growth(
    samples: list[tuple[float, dict[str, float]]],
    a: tuple[float, float],
    b: tuple[float, float],
    key: str | None,
) -> float | None:
    def mean(w: tuple[float, float]) -> float | None:
        v = [
            (sum(r.values()) if key is None else r[key])
            for t, r in samples
            if w[0] <= t <= w[1] and (key is None or key in r) and len(r) == len(NODES)
        ]
        return float(np.mean(v)) if v else None

    m0, m1 = mean(a), mean(b)
    if m0 is None or m1 is None or m0 <= 0:
        return None
    return round(100.0 * (m1 / m0 - 1.0), 2)


class Bench:
    def __init__(self, a: argparse.Namespace) -> None:
        from us_acquisition.node_common import LATCHED
        from us_acquisition.ros_testing import RosProbe

        from us_interfaces.msg import NodeStatus, ReconstructionInfo

        self.a = a
        uid = uuid.uuid4().hex[:8]
        self.ns = f"soak{uid}"
        self.frames_ch, self.masks_ch = f"bench/{uid}/frames", f"bench/{uid}/masks"
        self.port = free_port()
        sets = [
            "acquisition.source=sim",
            f"acquisition.width={a.width}",
            f"acquisition.height={a.height}",
            f"acquisition.fps={a.fps}",
            f"acquisition.sim_seed={a.seed}",
            f"acquisition.channel_name={self.frames_ch}",
            f"segmentation.input_channel={self.frames_ch}",
            f"segmentation.mask_channel={self.masks_ch}",
            f"reconstruction.frames_channel={self.frames_ch}",
            f"reconstruction.mask_channel={self.masks_ch}",
            f"grpc_bridge.frames_channel={self.frames_ch}",
            f"grpc_bridge.masks_channel={self.masks_ch}",
            f"grpc_bridge.port={self.port}",
            "grpc_bridge.igtl_port=0",
            *a.set,
        ]
        args = ["--nodes", ",".join(NODES), "--namespace", self.ns, "--respawn"]
        for s in sets:
            args += ["--set", s]
        log = Path(a.log) if a.log else Path(tempfile.mkdtemp(prefix="bench-system-")) / "graph.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"  graph output: {log}", flush=True)
        self.graph = GraphProcess(args, log)
        self.probe = RosProbe(f"/{self.ns}")
        self.status = {n: self.probe.subscribe(NodeStatus, f"{n}/status", LATCHED) for n in NODES}
        self.info_rx: list[tuple[float, Any]] = []
        self.probe.node.create_subscription(
            ReconstructionInfo,
            f"/{self.ns}/reconstruction/info",
            lambda m: self.info_rx.append((time.monotonic(), m)),
            LATCHED,
        )
        self.watch = ChannelWatcher(self.frames_ch, self.masks_ch)
        self.viewer = Viewer(f"127.0.0.1:{self.port}")

    def wait(self, cond: Callable[[], Any], timeout_s: float) -> bool:
        return self.probe.spin_until(cond, timeout_s)

    def sleep(self, s: float) -> None:
        self.probe.spin_until(lambda: False, s)

    def up(self) -> bool:
        return all(s and s[-1].state == 3 for s in self.status.values())

    # -- soak -------------------------------------------------------------------------------
    def soak(self) -> dict[str, Any]:
        a = self.a
        soak_s = a.soak_min * 60.0
        warm = min(60.0, 0.2 * soak_s)
        window = min(300.0, (soak_s - warm) / 3.0)
        sample_s = 5.0 if a.quick else min(10.0, max(1.0, window / 3.0))
        import psutil

        t0 = time.monotonic()
        procs = _node_processes(self.graph)
        me = psutil.Process()
        cpu0, me0 = _cpu_s(procs), sum(me.cpu_times()[:2])
        rss: list[tuple[float, dict[str, float]]] = []
        vol_p95: list[tuple[float, float]] = []
        next_sample = t0
        next_print = t0 + 30.0
        while (now := time.monotonic()) - t0 < soak_s:
            self.sleep(0.5)
            if self.graph.proc.poll() is not None:
                raise SystemExit("bench_system: the graph stopped during the soak\n")
            if self.info_rx and self.info_rx[-1][1].latency_p95_ms > 0:
                vol_p95.append((now - t0, float(self.info_rx[-1][1].latency_p95_ms)))
            if now >= next_sample:
                next_sample += sample_s
                rss.append((now - t0, _rss_mb(_node_processes(self.graph))))
            if now >= next_print:
                next_print += 30.0
                lat = [v for t, v in self.watch.mask_lat if t > now - 30]
                acq = self.status["acquisition"][-1]
                print(
                    f"  t={now - t0:5.0f} s  producer {acq.fps:5.1f} fps, lost "
                    f"{acq.frames_dropped}  frame->mask p95 {_pct(lat, 95)} ms  viewer "
                    f"{self.viewer.n} msgs  RSS {sum(rss[-1][1].values()):.0f} MB",
                    flush=True,
                )
        t_end = time.monotonic()
        cpu1, me1 = _cpu_s(procs), sum(me.cpu_times()[:2])
        cpu_pct = {n: round(100 * (cpu1[n] - cpu0[n]) / (t_end - t0), 1) for n in cpu1 if n in cpu0}
        cpu_pct["bench_harness"] = round(100 * (me1 - me0) / (t_end - t0), 1)
        first = (warm, warm + window)
        last = (soak_s - window, soak_s)
        mask_after = [v for t, v in self.watch.mask_lat if t - t0 >= warm]
        client_after = [v for t, v in self.viewer.lat if t - t0 >= warm]
        vol_after = [v for t, v in vol_p95 if t >= warm]
        minutes = []
        for m in range(int(np.ceil(soak_s / 60.0))):
            v = [x for t, x in self.watch.mask_lat if m * 60 <= t - t0 < (m + 1) * 60]
            minutes.append(
                {"minute": m, "masks": len(v), "p50_ms": _pct(v, 50), "p95_ms": _pct(v, 95)}
            )
        p95s = [m["p95_ms"] for m in minutes[1:] if m["p95_ms"] is not None]
        acq = self.status["acquisition"][-1]
        info = self.info_rx[-1][1] if self.info_rx else None
        from us_acquisition.sim.phantom import NeckPhantom

        truth = float(NeckPhantom.from_seed(a.seed).thyroid_volume_ml)
        measured = float(info.thyroid_volume_ml) if info is not None else 0.0
        elapsed = t_end - t0
        return {
            "soak_s": round(elapsed, 1),
            "warmup_s": warm,
            "window_s": round(window, 1),
            "sample_s": sample_s,
            "rss_growth_pct": _growth(rss, first, last, None),
            "rss_growth_pct_per_node": {n: _growth(rss, first, last, n) for n in NODES},
            "rss_mb_first": {n: round(v, 1) for n, v in (rss[0][1] if rss else {}).items()},
            "rss_mb_last": {n: round(v, 1) for n, v in (rss[-1][1] if rss else {}).items()},
            "rss_samples": [[round(t, 1), round(sum(r.values()), 1)] for t, r in rss],
            "cpu_pct_of_one_core": cpu_pct,
            "producer_lost": int(acq.frames_dropped),
            "producer_frames": int(acq.frames_out),
            "producer_fps": round(float(acq.fps), 2),
            "watcher_frames_per_s": round(self.watch.frames_between(t0, t_end) / elapsed, 2),
            "masks_per_s": round(len([1 for t, _ in self.watch.mask_lat if t >= t0]) / elapsed, 2),
            "e2e_mask_p50_ms": _pct(mask_after, 50),
            "e2e_mask_p95_ms": _pct(mask_after, 95),
            "mask_latency_per_minute": minutes,
            "mask_p95_minute_spread_ms": (
                round(max(p95s) - min(p95s), 2) if len(p95s) >= 2 else None
            ),
            "e2e_volume_p95_ms": _pct(vol_after, 50),
            "e2e_volume_p95_ms_max": round(max(vol_after), 2) if vol_after else None,
            "e2e_client_p50_ms": _pct(client_after, 50),
            "e2e_client_p95_ms": _pct(client_after, 95),
            "client_messages_per_s": round(self.viewer.n / elapsed, 2),
            "frames_compounded": int(info.frames_used) if info is not None else 0,
            "frames_skipped": int(info.frames_skipped) if info is not None else 0,
            "skip_reasons": {kv.key: kv.value for kv in info.skip_reasons} if info else {},
            "thyroid_volume_ml": round(measured, 3),
            "thyroid_volume_true_ml": round(truth, 3),
            "volume_err_pct": round(100.0 * (measured - truth) / truth, 2) if measured else None,
        }

    # -- faults -----------------------------------------------------------------------------
    def _kill(self, node: str) -> tuple[float, int]:
        pids = self.graph.pids(node)
        pid = pids[-1] if pids else None
        assert pid is not None, f"no pid of {node}"
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return t, pid

    def _window(self, seconds: float) -> tuple[float, int]:
        """(producer fps seen by the watcher, frames lost at the source) over the next
        ``seconds``; the loss is read from the acquisition's 1 Hz status."""
        d0 = int(self.status["acquisition"][-1].frames_dropped)
        t0 = time.monotonic()
        self.sleep(seconds)
        fps = self.watch.frames_between(t0, t0 + seconds) / seconds
        self.sleep(1.2)  # a fresh status
        return fps, int(self.status["acquisition"][-1].frames_dropped) - d0

    def faults(self, deadline_s: float = 60.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []

        def record(name: str, ok: bool, t0: float, t1: float | None, **detail: Any) -> None:
            rec = {
                "fault": name,
                "survived": bool(ok and t1 is not None and self.graph.proc.poll() is None),
                "recovery_s": round(t1 - t0, 2) if t1 is not None else None,
                **detail,
            }
            print(f"  fault {rec}", flush=True)
            out.append(rec)
            # let the graph settle before the next fault
            self.wait(lambda: self.up() and time.monotonic() - self.watch.last_mask[0] < 0.5, 30)
            self.sleep(3.0)

        # segmentation: first mask of the new process (a new mask channel writer epoch)
        old = self.watch.last_mask[1]
        t0, _ = self._kill("segmentation")
        ok = self.wait(lambda: self.watch.last_mask[1] not in (old, 0), deadline_s)
        t_act = self.graph.when("segmentation: activate ok", t0)
        record(
            "kill_segmentation",
            ok,
            t0,
            self.watch.last_mask[0] if ok else None,
            respawned_active_s=round(t_act - t0, 2) if t_act else None,
        )

        # reconstruction: an info of the new process (frames_used restarted) with frames in it
        used = int(self.info_rx[-1][1].frames_used) if self.info_rx else 0
        t0, _ = self._kill("reconstruction")

        def recon_back() -> float | None:
            for t, m in list(self.info_rx):
                if t > t0 and 0 < m.frames_used < used:
                    return t
            return None

        ok = self.wait(lambda: recon_back() is not None, deadline_s)
        t_act = self.graph.when("reconstruction: activate ok", t0)
        record(
            "kill_reconstruction",
            ok,
            t0,
            recon_back(),
            respawned_active_s=round(t_act - t0, 2) if t_act else None,
        )

        # grpc_bridge: the viewer receives again (it reconnects by itself)
        t0, _ = self._kill("grpc_bridge")
        ok = self.wait(lambda: self.viewer.last_rx > t0 + 0.2, deadline_s)
        t_act = self.graph.when("grpc_bridge: activate ok", t0)
        record(
            "kill_grpc_bridge",
            ok,
            t0,
            self.viewer.last_rx if ok else None,
            respawned_active_s=round(t_act - t0, 2) if t_act else None,
        )

        # acquisition: a mask computed from a frame of the new producer
        old_src = self.watch.last_mask[2]
        old_view = self.viewer.last_epoch
        t0, _ = self._kill("acquisition")
        ok = self.wait(lambda: self.watch.last_mask[2] not in (old_src, 0), deadline_s)
        t1 = self.watch.last_mask[0] if ok else None
        view_ok = self.wait(lambda: self.viewer.last_epoch not in (old_view, 0), 15)
        t_act = self.graph.when("acquisition: activate ok", t0)
        record(
            "kill_acquisition",
            ok,
            t0,
            t1,
            respawned_active_s=round(t_act - t0, 2) if t_act else None,
            grpc_viewer_resumed=view_ok,
            grpc_viewer_resumed_s=round(self.viewer.last_rx - t0, 2) if view_ok else None,
        )

        # a client that stalls: opens a stream of raw frames and stops reading. Survived
        # when the producer's fps over 10 s is within 5 % of the 10 s just before.
        from us_grpc_bridge.client import UltrasoundClient

        fps0, lost0 = self._window(10.0)
        with UltrasoundClient(f"127.0.0.1:{self.port}") as c:
            call = c.stream("frames")
            next(call)
            t0 = time.monotonic()
            fps1, lost1 = self._window(10.0)
            call.cancel()
        record(
            "client_stall",
            fps1 >= 0.95 * fps0,
            t0,
            t0,
            producer_fps_before=round(fps0, 2),
            producer_fps=round(fps1, 2),
            producer_lost_before=lost0,
            producer_lost=lost1,
        )

        # a client process that vanishes (SIGKILL) mid-stream: the same criterion
        code = (
            "import sys\nfrom us_grpc_bridge.client import UltrasoundClient\n"
            "with UltrasoundClient(sys.argv[1]) as c:\n"
            "    for i, m in enumerate(c.stream('frames')):\n"
            "        if i == 5: print('streaming', flush=True)\n"
        )
        fps0, lost0 = self._window(10.0)
        client = subprocess.Popen(
            [sys.executable, "-c", code, f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        client.stdout.readline()
        t0 = time.monotonic()
        client.kill()
        client.wait(10)
        fps1, lost1 = self._window(10.0)
        record(
            "client_vanish",
            fps1 >= 0.95 * fps0,
            t0,
            t0,
            producer_fps_before=round(fps0, 2),
            producer_fps=round(fps1, 2),
            producer_lost_before=lost0,
            producer_lost=lost1,
        )
        return out


def _remote_figures(path: Path) -> dict[str, Any]:
    """``remote_fps`` / ``remote_lat_p95_ms`` from bench_cross_host.py's results."""
    if not path.exists():
        return {
            "remote_fps": None,
            "remote_lat_p95_ms": None,
            "remote_from": "not measured: run sudo python bench/bench_cross_host.py",
        }
    d = json.loads(path.read_text())
    return {
        "remote_fps": d.get("remote_fps"),
        "remote_lat_p95_ms": d.get("remote_lat_p95_ms"),
        "remote_from": f"bench/bench_cross_host.py ({path.name})",
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--soak-min", type=float, default=30.0, help="soak duration, minutes")
    p.add_argument("--quick", action="store_true", help="1.5-min soak + faults (~4 min)")
    p.add_argument("--no-faults", action="store_true")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--seed", type=int, default=7, help="simulated patient")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "system.json"))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NODE.PARAM=VALUE",
        help="extra us-run parameter override (repeatable), e.g. segmentation.threads=1",
    )
    p.add_argument("--log", default="", help="file for the graph's output (default: a temp dir)")
    a = p.parse_args()
    if a.quick:
        a.soak_min = 1.5
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("IOX2_LOG_LEVEL", "Error")
    print(
        f"bench_system: whole graph, simulator {a.width}x{a.height} at {a.fps:g} fps, soak "
        f"{a.soak_min:g} min" + ("" if a.no_faults else ", then faults"),
        flush=True,
    )
    b = Bench(a)
    b.watch.start()
    b.viewer.start()
    t_start = time.monotonic()
    result: dict[str, Any] = {}
    faults: list[dict[str, Any]] = []
    rc = 1
    try:
        if not b.wait(
            lambda: (
                (b.up() and b.watch.n_masks > 0 and b.viewer.n > 0)
                or b.graph.proc.poll() is not None
            ),
            180,
        ):
            raise SystemExit("bench_system: the graph did not come up:\n" + b.graph.text[-4000:])
        if b.graph.proc.poll() is not None:
            raise SystemExit("bench_system: the graph stopped:\n" + b.graph.text[-4000:])
        startup_s = time.monotonic() - t_start
        print(f"  graph up, masks and gRPC flowing after {startup_s:.1f} s", flush=True)
        result = b.soak()
        result["startup_s"] = round(startup_s, 1)
        if not a.no_faults:
            faults = b.faults()
    finally:
        b.viewer.stop()
        b.watch.stop()
        b.probe.close()
        rc = b.graph.stop(90.0)
    clean = all(f"{n} exited with code 0" in b.graph.text for n in NODES)
    out: dict[str, Any] = {
        "command": "python bench/bench_system.py"
        + (" --quick" if a.quick else f" --soak-min {a.soak_min:g}"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "graph": f"us-run --respawn: {', '.join(NODES)}; simulator {a.width}x{a.height} at "
        f"{a.fps:g} fps, seed {a.seed}; gRPC viewer: combined JPEG + PNG mask at 15 Hz"
        + "".join(f"; --set {s}" for s in a.set),
        **_remote_figures(Path(a.out).with_name("cross_host.json")),
        "soak_min": a.soak_min,
        "rss_growth_pct": result.get("rss_growth_pct"),
        "rss_growth_method": "100 * (mean total RSS of the 4 node processes over the last "
        "window / over the first window after warm-up - 1); windows of min(300 s, (soak - "
        "warm-up) / 3), warm-up min(60 s, 20 % of the soak)",
        "producer_lost": result.get("producer_lost"),
        "e2e_mask_p95_ms": result.get("e2e_mask_p95_ms"),
        "e2e_volume_p95_ms": result.get("e2e_volume_p95_ms"),
        "e2e_client_p95_ms": result.get("e2e_client_p95_ms"),
        "faults_survived": sum(1 for f in faults if f["survived"]),
        "faults_tried": len(faults),
        "volume_err_pct": result.get("volume_err_pct"),
        "faults": faults,
        "shutdown_exit_code": rc,
        "shutdown_clean": clean,
        "details": result,
    }
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    keys = (
        "soak_min",
        "rss_growth_pct",
        "producer_lost",
        "e2e_mask_p95_ms",
        "e2e_volume_p95_ms",
        "e2e_client_p95_ms",
        "faults_survived",
        "faults_tried",
        "volume_err_pct",
        "shutdown_exit_code",
    )
    for k in keys:
        print(f"  {k:20s} {out[k]}")
    for f in faults:
        print(f"  {f['fault']:20s} survived={f['survived']} recovery_s={f['recovery_s']}")
    print(f"bench_system: {a.out}")
    return 0 if result and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
