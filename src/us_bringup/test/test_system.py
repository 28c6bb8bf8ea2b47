"""The whole graph end to end, as CI runs it (issue "The whole system").

``us-run`` starts acquisition (simulator, 320x240 at 15 fps), segmentation, reconstruction
and the gRPC bridge under a namespace and channel names of their own, and the test watches
it from outside the way a user would: as one more consumer of the frame and mask channels,
through the nodes' topics and services, and as a gRPC client. Every wait is a deadline on a
condition; the graph must then stop cleanly on SIGINT (exit code 0).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from us_bringup.graph_process import GraphProcess, free_port

NODES = ("acquisition", "segmentation", "reconstruction", "grpc_bridge")


Graph = GraphProcess  # the name the fault tests import


@dataclass
class Seen:
    """What a :class:`ChannelWatcher` read (monotonic ns; frames keyed by (epoch, seq))."""

    frames: dict[tuple[int, int], int] = field(default_factory=dict)  # -> publish ns
    frame_rx: list[tuple[int, int, int]] = field(default_factory=list)  # (rx ns, epoch, seq)
    # (rx ns, mask epoch, mask seq, source epoch, source seq, publish ns, width, height)
    masks: list[tuple[int, int, int, int, int, int, int, int]] = field(default_factory=list)


class ChannelWatcher:
    """Reads every frame and mask of the graph's channels in a thread.

    Opens the channels as they appear and re-opens one after ``reopen_s`` of silence, as
    the nodes' own consumers do, so that it follows producers that restart."""

    def __init__(self, frames: str, masks: str, reopen_s: float = 1.0) -> None:
        self.names = {"frames": frames, "masks": masks}
        self.reopen_s = reopen_s
        self.seen = Seen()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChannelWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from us_frame_channel import ChannelError, FrameReader

        readers: dict[str, Any] = {"frames": None, "masks": None}
        last = {"frames": time.monotonic(), "masks": time.monotonic()}
        try:
            while not self._stop.is_set():
                got = False
                for key, name in self.names.items():
                    r = readers[key]
                    if r is None:
                        try:
                            r = readers[key] = FrameReader(name, mode="every", wait_s=0.05)
                            last[key] = time.monotonic()
                        except ChannelError:
                            continue
                    try:
                        while (f := r.try_read()) is not None:
                            got = True
                            last[key] = time.monotonic()
                            now = time.monotonic_ns()
                            with f:
                                i = f.info
                                if key == "frames":
                                    self.seen.frames[(i.producer_epoch, i.seq)] = (
                                        i.publish_monotonic_ns
                                    )
                                    self.seen.frame_rx.append((now, i.producer_epoch, i.seq))
                                else:
                                    self.seen.masks.append(
                                        (
                                            now,
                                            i.producer_epoch,
                                            i.seq,
                                            i.source_epoch,
                                            i.source_seq,
                                            i.publish_monotonic_ns,
                                            i.width,
                                            i.height,
                                        )
                                    )
                    except ChannelError as exc:
                        self.errors.append(f"{name}: {exc}")
                        r.close()
                        readers[key] = None
                        continue
                    if time.monotonic() - last[key] > self.reopen_s:
                        r.close()
                        readers[key] = None
                if not got:
                    time.sleep(0.005)
        finally:
            for r in readers.values():
                if r is not None:
                    r.close()


def graph_args(
    uid: str,
    port: int,
    *,
    nodes: tuple[str, ...] = NODES,
    fps: float = 15.0,
    width: int = 320,
    height: int = 240,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """``us-run`` arguments: namespace and channel names unique to ``uid``."""
    frames, masks = f"test/sys-{uid}/frames", f"test/sys-{uid}/masks"
    sets = [
        "acquisition.source=sim",
        f"acquisition.width={width}",
        f"acquisition.height={height}",
        f"acquisition.fps={fps}",
        "acquisition.sim_seed=3",
        f"acquisition.channel_name={frames}",
        f"segmentation.input_channel={frames}",
        f"segmentation.mask_channel={masks}",
        f"reconstruction.frames_channel={frames}",
        f"reconstruction.mask_channel={masks}",
        f"grpc_bridge.frames_channel={frames}",
        f"grpc_bridge.masks_channel={masks}",
        f"grpc_bridge.port={port}",
        "grpc_bridge.igtl_port=0",
        *extra,
    ]
    args = ["--nodes", ",".join(nodes), "--namespace", f"sys{uid}"]
    for s in sets:
        args += ["--set", s]
    return args


def channels(uid: str) -> tuple[str, str]:
    return f"test/sys-{uid}/frames", f"test/sys-{uid}/masks"


def grpc_frames(target: str, n: int, deadline_s: float) -> list[Any]:
    """``n`` frame messages from the bridge, retrying until it serves (within the deadline)."""
    import grpc
    from us_grpc_bridge.client import UltrasoundClient

    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with UltrasoundClient(target, timeout_s=5.0) as c:
                got = list(
                    c.stream("frames", max_messages=n, timeout_s=deadline - time.monotonic())
                )
                if len(got) >= n:
                    return got
        except grpc.RpcError as exc:
            last = f"{exc.code().name}: {exc.details()}"
        time.sleep(0.5)
    raise AssertionError(f"no {n} gRPC frames from {target} within {deadline_s} s ({last})")


def test_whole_graph_end_to_end() -> None:
    from us_acquisition.node_common import LATCHED
    from us_acquisition.ros_testing import RosProbe
    from visualization_msgs.msg import Marker

    from us_interfaces.msg import NodeStatus, ReconstructionInfo
    from us_interfaces.srv import GetVolume

    t_start = time.monotonic()
    uid = uuid.uuid4().hex[:8]
    port = free_port()
    frames_ch, masks_ch = channels(uid)
    graph = Graph(graph_args(uid, port))
    probe = RosProbe(f"/sys{uid}")
    status = {n: probe.subscribe(NodeStatus, f"{n}/status", LATCHED) for n in NODES}
    info = probe.subscribe(ReconstructionInfo, "reconstruction/info", LATCHED)
    try:
        with ChannelWatcher(frames_ch, masks_ch) as w:
            # every node comes up to active
            up = probe.spin_until(
                lambda: (
                    all(s and s[-1].state == NodeStatus.STATE_ACTIVE for s in status.values())
                    or graph.proc.poll() is not None
                ),
                45,
            )
            assert up and graph.proc.poll() is None, graph.text
            t_up = time.monotonic() - t_start

            # a mask comes out, and its header names a real frame of the frame channel
            def mask_of_a_frame() -> bool:
                return any(
                    (m[3], m[4]) in w.seen.frames and (m[6], m[7]) == (320, 240)
                    for m in list(w.seen.masks)
                )

            assert probe.spin_until(mask_of_a_frame, 20), (
                f"{len(w.seen.frames)} frames, {len(w.seen.masks)} masks, {w.errors}\n" + graph.text
            )
            t_mask = time.monotonic() - t_start

            # the reconstruction compounds: info says so, and GetVolume returns a volume
            assert probe.spin_until(
                lambda: bool(info) and info[-1].frames_used > 0 and min(info[-1].dims) > 0, 20
            ), (info[-1] if info else "no ReconstructionInfo", graph.text)
            res = probe.call(
                GetVolume,
                "reconstruction/get_volume",
                GetVolume.Request(downsample=2, intensity=True, labels=False),
                30,
            )
            assert res.success, res.message
            assert min(res.volume.dims) > 0 and len(res.volume.intensity) > 0
            assert max(res.volume.intensity) > 0  # not an empty grid

            # RViz's thyroid mesh: a subscriber that joins now gets the latest mesh
            mesh = probe.subscribe(Marker, "reconstruction/thyroid_mesh", LATCHED)
            assert probe.spin_until(lambda: bool(mesh) and len(mesh[-1].points) > 0, 20), (
                info[-1],
                graph.text,
            )
            m = mesh[-1]
            assert m.type == Marker.TRIANGLE_LIST and len(m.points) % 3 == 0
            assert m.header.frame_id == info[-1].header.frame_id

            # a gRPC client receives frames
            msgs = grpc_frames(f"127.0.0.1:{port}", 5, 20)
            assert [m.image.width for m in msgs] == [320] * 5
            assert all(m.host_timestamp_ns > 0 and len(m.image.data) > 0 for m in msgs)
            seqs = [m.seq for m in msgs]
            assert seqs == sorted(seqs) and len(set(seqs)) == 5
            t_grpc = time.monotonic() - t_start
            # the producer never lost a frame at the source
            assert status["acquisition"][-1].frames_dropped == 0, status["acquisition"][-1]
    finally:
        probe.close()
        rc = graph.stop()
    out = graph.text
    assert rc == 0, out
    for n in NODES:
        assert f"{n}: shutdown ok" in out, out
        assert f"{n} exited with code 0" in out, out
    print(
        f"\nsystem test: graph up {t_up:.1f} s, first mask {t_mask:.1f} s, gRPC frames "
        f"{t_grpc:.1f} s, total {time.monotonic() - t_start:.1f} s after us-run"
    )
