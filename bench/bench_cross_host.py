"""Benchmark frames across hosts: two "hosts" simulated by network namespaces joined by a
veth pair shaped to a Gigabit Ethernet link (``us_bringup.netns``), the real nodes started
by ``us-run`` in each.

1. transport: the acquisition node (synthetic 1920x1080 mono8, 2 MB per frame, 30 fps) on
   host a, a subscriber on host b; stock Fast DDS vs the shipped profile
   (config/fastdds/large_frames.xml), best-effort vs reliable: frames delivered of those
   captured, fps and capture -> received latency.
2. remote segmentation: a tracked recording replayed at 30 fps (640x480) on host a, the
   segmentation node on host b with ``input_transport:=topic`` (shipped profile): masks/s
   and capture -> mask latency; next to it the same graph on one host over shared memory.

    sudo python bench/bench_cross_host.py [--quick] [--seconds 20] [--link 1gbit]

Writes ``bench/results/cross_host.json`` and the keys ``remote_fps`` and
``remote_lat_p95_ms`` into ``bench/results/system.json``. Needs root (``ip netns``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SINK = HERE / "cross_host_sink.py"
sys.path.insert(0, str(HERE))


def _pct(v: list[float], q: float) -> float:
    return round(float(np.percentile(v, q)), 2) if v else float("nan")


def _top(hosts: Any, host: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return hosts.us_top(host, env, wait_s=4.0)


def _wait_active(graph: Any, node: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if graph.when(f"{node}: activate ok") is not None:
            return
        if graph.proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"{node} did not come up:\n{graph.text[-3000:]}")


def _sink(
    hosts: Any, host: str, env: dict[str, str], kind: str, topic: str, qos: str, seconds: float
) -> dict[str, Any]:
    r = subprocess.run(
        hosts.cmd(
            host,
            [sys.executable, str(SINK), kind, topic, "--qos", qos, "--seconds", str(seconds)],
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 120,
    )
    try:
        out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RuntimeError(f"sink failed: {r.stdout[-500:]} {r.stderr[-2000:]}") from None
    if "error" in out:
        raise RuntimeError(out["error"])
    return out


def _env(hosts: Any, profile: str | None) -> dict[str, str]:
    from us_bringup.runner import dds_profile_path

    env = hosts.env(ROS_DOMAIN_ID=str(150 + os.getpid() % 50))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if profile:
        path = dds_profile_path(profile)
        assert path is not None, profile
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return env


def transport_case(
    hosts: Any, profile: str | None, qos: str, seconds: float, size: tuple[int, int], fps: float
) -> dict[str, Any]:
    from us_bringup.graph_process import GraphProcess

    uid = uuid.uuid4().hex[:8]
    ns = f"/xh{uid}"
    env = _env(hosts, profile)
    w, h = size
    sets = [
        "acquisition.source=synthetic",
        f"acquisition.width={w}",
        f"acquisition.height={h}",
        f"acquisition.fps={fps}",
        f"acquisition.channel_name=bench/xh-{uid}",
    ]
    args = ["--nodes", "acquisition", "--namespace", ns]
    for s in sets:
        args += ["--set", s]
    acq = GraphProcess(args, prefix=hosts.cmd("a", []), env=env)
    try:
        _wait_active(acq, "acquisition")
        rx0 = hosts.rx_bytes("b")
        out = _sink(hosts, "b", env, "frames", f"{ns}/acquisition/frames", qos, seconds)
        rx = hosts.rx_bytes("b") - rx0
        top = _top(hosts, "a", env).get(f"{ns}/acquisition", {})
    finally:
        acq.stop()
    seqs = sorted(set(out["seqs"]))
    span = seqs[-1] - seqs[0] + 1 if seqs else 0
    lat = out["lat_ms"]
    return {
        "profile": profile or "stock",
        "qos": qos,
        "frame_bytes": w * h,
        "seconds": round(out["seconds"], 1),
        "frames_captured": span,
        "frames_received": len(seqs),
        "delivered_pct": round(100.0 * len(seqs) / span, 1) if span else 0.0,
        "fps_received": round(len(seqs) / out["seconds"], 1),
        "lat_p50_ms": _pct(lat, 50),
        "lat_p95_ms": _pct(lat, 95),
        "link_mb_received": round(rx / 1e6, 1),
        "publisher_superseded_total": int(top.get("values", {}).get("frames_topic_superseded", -1)),
    }


def segmentation_case(
    hosts: Any, remote: bool, replay: Path, seconds: float, skip_s: float = 4.0
) -> dict[str, Any]:
    """Replay on host a; segmentation on host b over the topic (remote) or on host a over
    shared memory. Figures from SegmentationResult (latency_ms: capture -> mask for a
    topic input, frame published -> mask for shared memory; publishing is ~0.1 ms after
    capture here)."""
    from us_bringup.graph_process import GraphProcess

    uid = uuid.uuid4().hex[:8]
    ns = f"/xs{uid}"
    env = _env(hosts, "large_frames")
    frames = f"bench/xs-{uid}/frames"
    common = ["--namespace", ns, "--dds-profile", "large_frames"]
    acq_sets = [
        "acquisition.source=sequence",
        f"acquisition.source_path={replay}",
        "acquisition.loop=true",
        f"acquisition.channel_name={frames}",
    ]
    seg_sets = [
        f"segmentation.mask_channel=bench/xs-{uid}/masks",
        "segmentation.threads=2",
        "segmentation.device=cpu",
    ]
    if remote:
        seg_sets += [
            "segmentation.input_transport=topic",
            "segmentation.input_topic=acquisition/frames",
        ]
    else:
        seg_sets += [f"segmentation.input_channel={frames}"]
    graphs = []

    def start(host: str, nodes: str, sets: list[str]) -> Any:
        args = ["--nodes", nodes, *common]
        for s in sets:
            args += ["--set", s]
        g = GraphProcess(args, prefix=hosts.cmd(host, []), env=env)
        graphs.append(g)
        return g

    try:
        if remote:
            acq = start("a", "acquisition", acq_sets)
            seg = start("b", "segmentation", seg_sets)
        else:
            acq = seg = start("a", "acquisition,segmentation", acq_sets + seg_sets)
        _wait_active(acq, "acquisition")
        _wait_active(seg, "segmentation")
        out = _sink(
            hosts,
            "b" if remote else "a",
            env,
            "results",
            f"{ns}/segmentation/result",
            "reliable",
            seconds + skip_s,
        )
        top = _top(hosts, "b" if remote else "a", env).get(f"{ns}/segmentation", {})
    finally:
        for g in reversed(graphs):
            g.stop()
    # drop the first skip_s of results (model warm-up, TCP connection set-up)
    n = len(out["lat_ms"])
    rate = n / out["seconds"] if out["seconds"] > 0 else 0.0
    k = min(n, int(rate * skip_s))
    lat = out["lat_ms"][k:]
    secs = out["seconds"] * (n - k) / n if n else 0.0
    return {
        "path": "topic, another host (veth)" if remote else "shared memory, one host",
        "seconds": round(secs, 1),
        "masks": len(lat),
        "masks_per_s": round(len(lat) / secs, 1) if secs else 0.0,
        "lat_p50_ms": _pct(lat, 50),
        "lat_p95_ms": _pct(lat, 95),
        "lat_p99_ms": _pct(lat, 99),
        "input_age_p95_ms": float(top.get("values", {}).get("input_age_p95_ms", "nan")),
        "frames_skipped_total": top.get("dropped"),
    }


def run(quick: bool, seconds: float, link: str) -> dict[str, Any]:
    from bench_segmentation import make_replay

    from us_bringup import netns

    replay = make_replay(Path("/tmp") / f"us_xh_replay_{os.getpid()}.igs.mha")
    res: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "link": link or "veth, unshaped",
        "transport": [],
    }
    size, fps = (1920, 1080), 30.0
    cases = [("stock", "best_effort"), ("large_frames", "best_effort")]
    if not quick:
        cases += [("stock", "reliable"), ("large_frames", "reliable")]
    try:
        with netns.HostPair() as hosts:
            if link:
                hosts.limit_rate(link)
            for profile, qos in cases:
                print(f"-- transport 1080p mono8 at {fps:g} fps: {profile} DDS, {qos}", flush=True)
                r = transport_case(
                    hosts, None if profile == "stock" else profile, qos, seconds, size, fps
                )
                print(f"   {json.dumps(r)}", flush=True)
                res["transport"].append(r)
            for remote in (False, True):
                print(
                    f"-- segmentation, {'remote (topic)' if remote else 'local (shm)'}", flush=True
                )
                r = segmentation_case(hosts, remote, replay, seconds)
                print(f"   {json.dumps(r)}", flush=True)
                res["segmentation_remote" if remote else "segmentation_local"] = r
    finally:
        replay.unlink(missing_ok=True)
    rem = res["segmentation_remote"]
    res["remote_fps"] = rem["masks_per_s"]
    res["remote_lat_p95_ms"] = rem["lat_p95_ms"]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer transport cases")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured s per case")
    ap.add_argument("--link", default="1gbit", help='tc rate of the link ("" = unshaped veth)')
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cross_host.json")
    a = ap.parse_args()
    from us_bringup import netns

    reason = netns.unavailable()
    if reason:  # e.g. not root: nothing measured, nothing written
        print(f"bench_cross_host: skipped: {reason}")
        return 0
    t0 = time.monotonic()
    res = run(a.quick, a.seconds, a.link)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    system = a.out.parent / "system.json"
    if a.out.name == "cross_host.json":
        sysres = json.loads(system.read_text()) if system.exists() else {}
        sysres["remote_fps"] = res["remote_fps"]
        sysres["remote_lat_p95_ms"] = res["remote_lat_p95_ms"]
        sysres["remote_from"] = "bench/bench_cross_host.py (bench/results/cross_host.json)"
        system.write_text(json.dumps(sysres, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "transport"}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
