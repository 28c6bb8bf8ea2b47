"""gRPC bridge benchmark: 1080p frames from the shared-memory channel to remote clients.

Processes on this machine (loopback): a producer writing 1920x1080 mono8 at 60 fps into a
frame channel, the bridge server (``us_grpc_bridge.service.BridgeServer``, no ROS), and
1, 4 or 16 streaming clients, raw and JPEG. Per case, measured over the same window:

* per-client fps, added latency frame written (host CLOCK_REALTIME in the frame header) ->
  message received by the client, p50/p95, ms; bytes per frame;
* bridge CPU (psutil, % of one core) and the producer's fps (must stay within 1 % of 60);
* frames: the project's simulator shown on a 1080p scanner screen (``_scanner_frames``);
* a stalled client (opens a stream, never reads) next to a reading one;
* the floor: a plain TCP server sending the same raw frames (read from the same channel)
  to one client (``tcp_floor_lat_p50_ms``).

    python bench/bench_grpc.py [--quick] [--out bench/results/grpc.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 1920, 1080, 60.0


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _wait_stdin_closed() -> threading.Event:
    """An event set when the orchestrator closes our stdin (the stop signal)."""
    done = threading.Event()

    def watch() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    return done


def _scanner_frames(n: int) -> list[np.ndarray]:
    """Scanner-screen-like 1080p mono8 frames: the project's simulator (640x480 B-mode of
    the neck phantom, consecutive sweep poses) shown 2x enlarged in a 1280x960 image
    region of a dark 1920x1080 screen, as a scanner's video output carries it."""
    from us_acquisition.sources.sim_source import SimulatorSource

    src = SimulatorSource(width=640, height=480, realtime=False)
    src.open()
    out = []
    try:
        for _ in range(n):
            f = src.read(10.0)
            assert f is not None
            screen = np.zeros((H, W), np.uint8)
            screen[60:1020, 320:1600] = np.repeat(np.repeat(f.image, 2, axis=0), 2, axis=1)
            screen[10:40, 40:600] = 200  # a bar of the scanner's UI
            out.append(screen)
    finally:
        src.close()
    return out


# ----------------------------------------------------------------------------- roles
def role_producer(a: argparse.Namespace) -> None:
    """1080p mono8 at 60 fps, paced on an absolute schedule; reports publish times."""
    from us_frame_channel import ChannelConfig, FrameWriter

    frames = _scanner_frames(4)
    stop = _wait_stdin_closed()
    cfg = ChannelConfig.for_frames(a.name, W, H, "mono8", max_consumers=4)
    times: list[float] = []
    with FrameWriter(cfg) as w:
        _emit({"event": "ready"})
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            delay = t0 + i / FPS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            w.publish(frames[i % len(frames)], "mono8", spacing_mm=(0.1, 0.1))
            times.append(time.monotonic())
            i += 1
    _emit({"event": "result", "times": times})


class _NullBackend:
    def node_statuses(self) -> list[Any]:
        return []

    def T_world_probe(self, stamp_ns: int) -> tuple[Any, str]:
        return None, "off"


def role_bridge(a: argparse.Namespace) -> None:
    from us_grpc_bridge.auth import TokenStore
    from us_grpc_bridge.service import BridgeConfig, BridgeServer

    stop = _wait_stdin_closed()
    cfg = BridgeConfig(
        port=0,
        frames_channel=a.name,
        masks_channel=a.name + "-m",
        max_clients=32,
        max_message_bytes=16 * 1024 * 1024,
    )
    srv = BridgeServer(cfg, cast(Any, _NullBackend()), TokenStore())
    port = srv.start()
    srv.activate()
    _emit({"event": "ready", "port": port})
    stop.wait()
    srv.stop(0.2)
    _emit({"event": "result"})


def role_client(a: argparse.Namespace) -> None:
    from us_grpc_bridge.client import UltrasoundClient

    stop = _wait_stdin_closed()
    c = UltrasoundClient(f"127.0.0.1:{a.port}")
    call = c.stream("frames", encoding=a.encoding, jpeg_quality=80)
    recv: list[float] = []
    lat: list[float] = []
    nbytes: list[int] = []
    srv: list[float] = []
    dropped = 0
    threading.Thread(target=lambda: (stop.wait(), call.cancel()), daemon=True).start()
    if a.stalled:
        _emit({"event": "ready"})
        stop.wait()
        _emit({"event": "result", "recv": [], "lat_ms": [], "bytes": [], "dropped": 0})
        return
    try:
        for m in call:
            now_ns = time.time_ns()
            if not recv:
                _emit({"event": "ready"})
            recv.append(time.monotonic())
            lat.append((now_ns - m.host_timestamp_ns) / 1e6)
            srv.append((m.server_send_ns - m.host_timestamp_ns) / 1e6)
            nbytes.append(len(m.image.data))
            dropped = m.frames_dropped
    except Exception:  # noqa: BLE001 - cancelled at the end
        pass
    _emit(
        {
            "event": "result",
            "recv": recv,
            "lat_ms": lat,
            "bytes": nbytes,
            "dropped": dropped,
            "srv_ms": srv,
        }
    )


def role_tcp_server(a: argparse.Namespace) -> None:
    """The floor: frames from the same channel, raw bytes over one TCP connection."""
    from us_frame_channel import FrameReader

    stop = _wait_stdin_closed()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    _emit({"event": "ready", "port": srv.getsockname()[1]})
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with FrameReader(a.name, mode="latest", wait_s=10) as r:
        while not stop.is_set():
            f = r.read(0.2)
            if f is None:
                continue
            with f:
                hdr = struct.pack("<qI", f.info.host_timestamp_ns, f.array.nbytes)
                try:
                    conn.sendall(hdr)
                    conn.sendall(f.array.data)
                except OSError:
                    break
    conn.close()
    _emit({"event": "result"})


def role_tcp_client(a: argparse.Namespace) -> None:
    stop = _wait_stdin_closed()
    s = socket.create_connection(("127.0.0.1", a.port))
    buf = bytearray(W * H)
    view = memoryview(buf)
    recv: list[float] = []
    lat: list[float] = []
    s.settimeout(0.5)

    def exact(mv: memoryview) -> bool:
        got = 0
        while got < len(mv):
            try:
                n = s.recv_into(mv[got:])
            except TimeoutError:
                if stop.is_set():
                    return False
                continue
            if n == 0:
                return False
            got += n
        return True

    hdr = bytearray(12)
    while not stop.is_set():
        if not exact(memoryview(hdr)):
            break
        ts, n = struct.unpack("<qI", hdr)
        if not exact(view[:n]):
            break
        now_ns = time.time_ns()
        if not recv:
            _emit({"event": "ready"})
        recv.append(time.monotonic())
        lat.append((now_ns - ts) / 1e6)
    _emit(
        {"event": "result", "recv": recv, "lat_ms": lat, "bytes": [W * H] * len(recv), "dropped": 0}
    )


ROLES = {
    "producer": role_producer,
    "bridge": role_bridge,
    "client": role_client,
    "tcp-server": role_tcp_server,
    "tcp-client": role_tcp_client,
}


# ------------------------------------------------------------------------ orchestration
class Child:
    def __init__(self, role: str, **kw: Any) -> None:
        args = [sys.executable, __file__, "--role", role]
        for k, v in kw.items():
            if v is True:
                args.append(f"--{k}")
            elif v not in (None, False):
                args += [f"--{k}", str(v)]
        self.p = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip

    def wait_event(self, event: str, timeout_s: float) -> dict[str, Any]:
        assert self.p.stdout is not None
        result: dict[str, Any] = {}
        done = threading.Event()

        def read() -> None:
            assert self.p.stdout is not None
            for line in self.p.stdout:
                if line.startswith("{"):
                    obj = json.loads(line)
                    if obj.get("event") == event:
                        result.update(obj)
                        done.set()
                        return
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(timeout_s) or not result:
            raise RuntimeError(f"{event} not received (exit code {self.p.poll()})")
        return result

    def finish(self, timeout_s: float = 30.0) -> dict[str, Any]:
        assert self.p.stdin is not None
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            return self.wait_event("result", timeout_s)
        finally:
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.send_signal(signal.SIGKILL)
                self.p.wait(5)


def _window(
    c: dict[str, Any], t0: float, t1: float
) -> tuple[list[float], list[float], list[int], list[float]]:
    keep = [i for i, t in enumerate(c["recv"]) if t0 <= t <= t1]
    srv = c.get("srv_ms") or []
    return (
        [c["recv"][i] for i in keep],
        [c["lat_ms"][i] for i in keep],
        [c["bytes"][i] for i in keep],
        [srv[i] for i in keep] if srv else [],
    )


def run_case(
    clients: int, encoding: str, seconds: float, *, stalled: int = 0, tcp: bool = False
) -> dict[str, Any]:
    import psutil

    name = f"bench/grpc-{uuid.uuid4().hex[:8]}"
    prod = Child("producer", name=name)
    prod.wait_event("ready", 30)
    server = Child("tcp-server" if tcp else "bridge", name=name)
    port = server.wait_event("ready", 30)["port"]
    stalls = [Child("client", port=port, encoding=encoding, stalled=True) for _ in range(stalled)]
    for s in stalls:
        s.wait_event("ready", 60)
    role = "tcp-client" if tcp else "client"
    cl = [Child(role, port=port, encoding=encoding) for _ in range(clients)]
    for c in cl:
        c.wait_event("ready", 90)
    time.sleep(1.0)  # warm-up: caches, TCP windows
    proc = psutil.Process(server.p.pid)
    cpu0 = proc.cpu_times()
    t0 = time.monotonic()
    time.sleep(seconds)
    t1 = time.monotonic()
    cpu1 = proc.cpu_times()
    results = [c.finish() for c in cl]
    for s in stalls:
        s.finish()
    server.finish()
    ptimes = [t for t in prod.finish()["times"] if t0 <= t <= t1]
    fps, lat, nbytes, in_bridge = [], [], [], []
    for r in results:
        recv, la, nb, sv = _window(r, t0, t1)
        fps.append(len(recv) / (t1 - t0))
        lat += la
        nbytes += nb
        in_bridge += sv
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0) * 100
    return {
        "clients": clients,
        "encoding": "tcp-raw" if tcp else encoding,
        "stalled_clients": stalled,
        "fps_per_client": round(float(np.mean(fps)), 1) if fps else 0.0,
        "fps_per_client_min": round(float(min(fps)), 1) if fps else 0.0,
        "lat_p50_ms": round(_pct(lat, 50), 2),
        "lat_p95_ms": round(_pct(lat, 95), 2),
        "bytes_per_frame": round(float(np.mean(nbytes))) if nbytes else 0,
        # frame written -> message built in the bridge (the rest is gRPC + client)
        "bridge_lat_p50_ms": round(_pct(in_bridge, 50), 2) if in_bridge else None,
        "bridge_lat_p95_ms": round(_pct(in_bridge, 95), 2) if in_bridge else None,
        "acq_fps": round(len(ptimes) / (t1 - t0), 2),
        "bridge_cpu_pct": round(cpu, 1),
        "client_dropped_last": [r["dropped"] for r in results],
        "window_s": round(t1 - t0, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=sorted(ROLES))
    p.add_argument("--name", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--encoding", default="raw")
    p.add_argument("--stalled", action="store_true")
    p.add_argument("--quick", action="store_true", help="shorter windows, fewer cases")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "grpc.json"))
    a = p.parse_args()
    if a.role:
        ROLES[a.role](a)
        return 0
    seconds = 4.0 if a.quick else 10.0
    counts = (1, 4) if a.quick else (1, 4, 16)
    rows: list[dict[str, Any]] = []
    hdr = (
        f"{'clients':>7} {'encoding':<8} {'stall':>5} {'fps/cl':>7} {'min':>6} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'bytes/frame':>11} {'acq fps':>8} {'bridge cpu':>10}"
    )
    print(hdr, flush=True)
    floor = run_case(1, "raw", seconds, tcp=True)
    cases: list[tuple[int, str, int]] = [(n, e, 0) for e in ("raw", "jpeg") for n in counts]
    cases.append((1, "raw", 1))
    for n, enc, stall in [(0, "", 0), *cases]:
        try:
            r = floor if n == 0 else run_case(n, enc, seconds, stalled=stall)
        except Exception as exc:  # noqa: BLE001 - a failed case is reported
            r = {"clients": n, "encoding": enc, "stalled_clients": stall, "error": str(exc)}
            print(f"{n:>7} {enc:<8} FAILED: {exc}", flush=True)
            rows.append(r)
            continue
        r["tcp_floor_lat_p50_ms"] = floor["lat_p50_ms"]
        rows.append(r)
        print(
            f"{r['clients']:>7} {r['encoding']:<8} {r['stalled_clients']:>5} "
            f"{r['fps_per_client']:>7.1f} {r['fps_per_client_min']:>6.1f} "
            f"{r['lat_p50_ms']:>7.2f} {r['lat_p95_ms']:>7.2f} {r['bytes_per_frame']:>11} "
            f"{r['acq_fps']:>8.2f} {r['bridge_cpu_pct']:>9.0f}%",
            flush=True,
        )
    ok = [r for r in rows if "error" not in r]
    raw1 = next(
        (
            r
            for r in ok
            if r["encoding"] == "raw" and r["clients"] == 1 and not r["stalled_clients"]
        ),
        None,
    )
    jpg1 = next((r for r in ok if r["encoding"] == "jpeg" and r["clients"] == 1), None)
    stalled_row = next((r for r in ok if r["stalled_clients"]), None)
    summary: dict[str, Any] = {"tcp_floor_lat_p50_ms": floor["lat_p50_ms"]}
    if raw1 and jpg1 and jpg1["bytes_per_frame"]:
        summary["raw_over_jpeg_bytes"] = round(raw1["bytes_per_frame"] / jpg1["bytes_per_frame"], 1)
    if raw1 and stalled_row:
        summary["stalled_fps_ratio"] = round(
            stalled_row["fps_per_client"] / raw1["fps_per_client"], 3
        )
    for k, v in summary.items():
        print(f"{k}: {v}")
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "command": "python bench/bench_grpc.py" + (" --quick" if a.quick else ""),
        "summary": summary,
        "cases": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")
    return 0


def run(quick: bool) -> dict[str, Any]:
    """Run the benchmark in a child process and return its JSON document."""
    out = ROOT / "bench" / "results" / ("grpc-quick.json" if quick else "grpc.json")
    cmd = [sys.executable, __file__, "--out", str(out)] + (["--quick"] if quick else [])
    subprocess.run(cmd, check=True)
    return dict(json.loads(out.read_text()))


if __name__ == "__main__":
    sys.exit(main())
