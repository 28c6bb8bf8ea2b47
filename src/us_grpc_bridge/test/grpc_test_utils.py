"""Helpers of the bridge tests: a real frame/mask channel written by this process, a fake
ROS backend, a server on a free port, deadline-based waits."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
from us_grpc_bridge.auth import TlsSettings, TokenStore
from us_grpc_bridge.service import BackendError, BridgeConfig, BridgeServer

from us_frame_channel import ChannelConfig, FrameWriter

W, H = 320, 240
OPERATOR = "operator-token-" + "x" * 16
VIEWER = "viewer-token-" + "y" * 16


class Producer:
    """Writes frames (mono8) and masks (label8, source_seq = frame seq) at ``fps``."""

    def __init__(self, fps: float = 100.0) -> None:
        uid = uuid.uuid4().hex[:8]
        self.frames = f"test/br-{uid}"
        self.masks = f"test/brm-{uid}"
        self.fps = fps
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.published = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        fw = FrameWriter(ChannelConfig.for_frames(self.frames, W, H, "mono8", max_consumers=8))
        mw = FrameWriter(
            ChannelConfig.for_frames(self.masks, W, H, "label8", max_consumers=8, kind="masks")
        )
        self.ready.set()
        y, x = np.mgrid[0:H, 0:W]
        base = ((x + y) % 256).astype(np.uint8)
        labels = np.zeros((H, W), np.uint8)
        labels[60:180, 100:220] = 1
        t0 = time.monotonic()
        i = 0
        try:
            while not self.stop.is_set():
                delay = t0 + i / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                seq = fw.publish(np.roll(base, i, axis=1), "mono8", spacing_mm=(0.2, 0.25))
                mw.publish(labels, "label8", source_seq=seq, source_epoch=fw.epoch)
                self.published += 1
                i += 1
        finally:
            fw.close()
            mw.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@dataclass
class FakeBackend:
    """Lifecycle state machine and canned replies standing in for the ROS graph."""

    states: dict[str, str] = field(default_factory=lambda: {"acquisition": "unconfigured"})
    params: dict[str, Any] = field(default_factory=dict)
    recorder_up: bool = False
    slow: bool = False
    volume_calls: list[tuple[int, bool, bool]] = field(default_factory=list)

    def node_statuses(self) -> list[tuple[Any, float]]:
        hdr = SimpleNamespace(stamp=SimpleNamespace(sec=5, nanosec=7), frame_id="")
        ch = SimpleNamespace(
            channel="us/frames",
            layout_version=1,
            max_frame_bytes=W * H,
            consumers=2,
            max_consumers=4,
            seq=10,
            frames_published=11,
            fps=30.0,
            publish_p50_us=50.0,
            publish_p99_us=90.0,
        )
        msg = SimpleNamespace(
            header=hdr,
            node_name="/us/acquisition",
            state=3,
            state_label=self.states["acquisition"],
            fps=30.0,
            frames_in=11,
            frames_out=11,
            frames_dropped=1,
            latency_p50_ms=1.0,
            latency_p95_ms=2.0,
            last_error="",
            channels=[ch],
            values=[SimpleNamespace(key="source", value="synthetic")],
        )
        return [(msg, 0.5)]

    def _known(self, node: str) -> None:
        if node not in self.states:
            raise BackendError(grpc.StatusCode.UNAVAILABLE, f"service /us/{node} is not available")

    def get_state(self, node: str) -> str:
        self._known(node)
        return self.states[node]

    def change_state(self, node: str, transition: str) -> str:
        self._known(node)
        if self.slow:
            raise BackendError(grpc.StatusCode.DEADLINE_EXCEEDED, "no answer within 0.1 s")
        table = {
            ("unconfigured", "configure"): "inactive",
            ("inactive", "activate"): "active",
            ("active", "deactivate"): "inactive",
            ("inactive", "cleanup"): "unconfigured",
        }
        nxt = table.get((self.states[node], transition))
        if nxt is None:
            raise BackendError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{node}: {transition} refused in state {self.states[node]}",
            )
        self.states[node] = nxt
        return nxt

    def set_parameters(self, node: str, values: dict[str, Any]) -> None:
        self._known(node)
        for k, v in values.items():
            if k == "fps" and not (isinstance(v, float) and 0.1 <= v <= 2000):
                raise BackendError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"{node} refused fps: fps must be <= 2000"
                )
            self.params[k] = v

    def get_volume(self, downsample: int, intensity: bool, labels: bool) -> Any:
        self.volume_calls.append((downsample, intensity, labels))
        n = 8 * 6 * 4
        vox = bytes(range(n % 256)) * (n // 256) + bytes(range(n % 256))
        hdr = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0), frame_id="tracker")
        return SimpleNamespace(
            header=hdr,
            dims=[8, 6, 4],
            spacing_mm=[0.5, 0.5, 0.5],
            origin_mm=[1.0, 2.0, 3.0],
            direction=[1, 0, 0, 0, 1, 0, 0, 0, 1],
            intensity=vox[:n] if intensity else b"",
            labels=bytes(n) if labels else b"",
            thyroid_volume_ml=12.5,
        )

    def get_mesh(self) -> Any:
        hdr = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0), frame_id="tracker")
        return SimpleNamespace(
            header=hdr,
            vertices_mm=[0.0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
            triangles=[0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3],
            volume_ml=0.000167,
        )

    def reset_volume(self) -> str:
        return "volume cleared"

    def save_volume(self, directory: str, basename: str, formats: list[str]) -> list[str]:
        return [f"{directory}/{basename}.{f}" for f in (formats or ["nrrd", "ply"])]

    def recording(self, start: bool, path: str) -> Any:
        if not self.recorder_up:
            raise BackendError(
                grpc.StatusCode.UNAVAILABLE, "service /us/recorder/recording is not available"
            )
        return SimpleNamespace(
            path=path or "auto.igs.mha",
            frames_written=0 if start else 42,
            frames_lost=0,
            message="ok",
        )

    def T_world_probe(self, stamp_ns: int) -> tuple[Any, str]:
        T = np.eye(4)
        T[:3, 3] = [100.0, 0.0, 0.0]
        return T, "ok"


def make_server(
    producer: Producer,
    backend: Any,
    tokens: TokenStore | None = None,
    **kw: Any,
) -> BridgeServer:
    cfg = BridgeConfig(
        port=0,
        frames_channel=producer.frames,
        masks_channel=producer.masks,
        **kw,
    )
    srv = BridgeServer(cfg, backend, tokens or TokenStore())
    srv.start()
    srv.activate()
    return srv


def wait_until(cond: Any, timeout_s: float, step_s: float = 0.02) -> bool:
    """Poll ``cond`` until true or the deadline (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step_s)
    return bool(cond())


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def tls(self, mutual: bool) -> TlsSettings:
        return TlsSettings(
            str(self.server_cert), str(self.server_key), str(self.ca) if mutual else ""
        )
