"""The gRPC server over real sockets: a real client, a real frame channel, a fake ROS."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_test_utils import OPERATOR, VIEWER, FakeBackend, H, Producer, W, make_server, wait_until
from us_grpc_bridge._generated import SERVICE_NAME, pb2
from us_grpc_bridge.auth import AuthConfigError, TokenStore
from us_grpc_bridge.client import UltrasoundClient, decode_image, volume_array
from us_grpc_bridge.service import BridgeConfig, BridgeServer

from us_grpc_bridge import client as cli


def _client(srv: BridgeServer, **kw: Any) -> UltrasoundClient:
    return UltrasoundClient(f"127.0.0.1:{srv.port}", timeout_s=5.0, **kw)


def _code(fn: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    err: Any = info.value
    return err.code(), err.details()


def _take(call: Any, n: int) -> list[Any]:
    out = []
    for m in call:
        out.append(m)
        if len(out) >= n:
            break
    call.cancel()
    return out


# ---------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("enc", ["raw", "png", "zstd", "lz4"])
def test_frames_lossless(server: Any, enc: str) -> None:
    srv, _ = server
    with _client(srv) as c:
        msgs = list(c.stream("frames", encoding=enc, max_messages=3, timeout_s=10))
    assert len(msgs) == 3
    m = msgs[-1]
    img = decode_image(m.image)
    assert img.shape == (H, W) and img.dtype == np.uint8
    y, x = np.mgrid[0:H, 0:W]
    base = ((x + y) % 256).astype(np.uint8)
    assert any(np.array_equal(img, np.roll(base, s, axis=1)) for s in range(W))  # exact pixels
    assert m.image.spacing_x_mm == pytest.approx(0.2) and m.host_timestamp_ns > 0
    assert m.messages_sent == 3 and m.seq > msgs[0].seq
    assert m.image.pixel_format == pb2.PIXEL_FORMAT_MONO8


def test_jpeg_downscale_and_bytes(server: Any) -> None:
    srv, _ = server
    with _client(srv) as c:
        raw = list(c.stream("frames", max_messages=2, timeout_s=10))[-1]
        jpg = list(
            c.stream(
                "frames",
                encoding="jpeg",
                jpeg_quality=80,
                downscale=2,
                max_messages=2,
                timeout_s=10,
            )
        )[-1]
    assert (jpg.image.width, jpg.image.height) == (W // 2, H // 2)
    assert jpg.image.spacing_y_mm == pytest.approx(0.5)
    assert decode_image(jpg.image).shape == (H // 2, W // 2)
    assert len(jpg.image.data) * 10 < len(raw.image.data)


def test_masks_and_combined_with_pose(server: Any) -> None:
    srv, _ = server
    with _client(srv) as c:
        masks = list(c.stream("masks", mask_encoding="png", max_messages=2, timeout_s=10))
        comb = _take(c.stream("combined", encoding="jpeg", downscale=2, timeout_s=10), 5)
    mask = decode_image(masks[-1].mask)
    assert masks[-1].mask.pixel_format == pb2.PIXEL_FORMAT_LABEL8
    assert mask[100, 150] == 1 and mask[0, 0] == 0
    paired = [m for m in comb if m.HasField("mask")]
    assert paired, "no combined message carried its mask"
    m = paired[-1]
    assert decode_image(m.mask).shape == (H // 2, W // 2)
    assert m.pose_status == "ok" and len(m.T_world_image) == 16 and m.world_frame == "tracker"
    T = np.array(m.T_world_image).reshape(4, 4)
    # downscaled pixel (0, 0) centre = source (0.5, 0.5): x = (1 - W/2) * 0.2 + 100 mm
    assert T @ [0, 0, 0, 1] == pytest.approx([(1 - W / 2) * 0.2 + 100, 0.25, 0, 1])


def test_rate_limit_counts_skipped(server: Any) -> None:
    srv, _ = server
    with _client(srv) as c:
        t0 = time.monotonic()
        msgs = list(
            c.stream("frames", encoding="lz4", max_rate_hz=20, max_messages=8, timeout_s=10)
        )
        dt = time.monotonic() - t0
    assert dt > 0.3  # 8 messages at <= 20 /s (first immediate)
    assert msgs[-1].frames_skipped > 5


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"kind": "video"}, "unknown stream"),
        ({"encoding": "gif"}, "unknown encoding"),
        ({"jpeg_quality": 101, "encoding": "jpeg"}, "jpeg_quality"),
        ({"downscale": 100}, "downscale"),
        ({"max_rate_hz": 1e6}, "max_rate_hz"),
        ({"max_rate_hz": -1}, "max_rate_hz"),
        ({"mask_encoding": "jpeg"}, "mask_encoding"),
    ],
)
def test_invalid_stream_requests(server: Any, kw: dict[str, Any], text: str) -> None:
    srv, _ = server
    kind = kw.pop("kind", "frames")
    with _client(srv) as c:
        code, details = _code(lambda: list(c.stream(kind, timeout_s=5, **kw)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and text in details


def test_stalled_client_drops_others_keep_rate(producer: Producer) -> None:
    backend = FakeBackend()
    srv = make_server(producer, backend, max_clients=4)
    try:
        with _client(srv) as stalled, _client(srv) as fast:
            stuck = stalled.stream("frames", timeout_s=30)  # raw 77 kB frames, never read
            assert wait_until(lambda: len(srv.servicer.clients()) == 1, 5)
            t0 = time.monotonic()
            got = _take(fast.stream("frames", timeout_s=30), 100)
            fps = (len(got) - 1) / (time.monotonic() - t0)
            assert fps > 0.8 * producer.fps, fps
            assert got[-1].frames_dropped <= 5
            # the stalled one is the only client left; its mailbox keeps overwriting
            (rec,) = fast.status().clients
            assert rec.frames_dropped > 20, rec
            assert wait_until(
                lambda: fast.status().clients[0].frames_dropped > rec.frames_dropped + 10, 5
            )
            assert producer.published > 0
            # it reads again: after what the transport had buffered, its messages report
            # what it lost
            later = _take(stuck, 150)[-1]
            assert later.frames_dropped > 30
    finally:
        srv.stop()


def test_disconnect_cleans_up_and_max_clients(producer: Producer) -> None:
    srv = make_server(producer, FakeBackend(), max_clients=2)
    try:
        with _client(srv) as c:
            a = c.stream("frames", encoding="zstd", timeout_s=30)
            b = c.stream("frames", encoding="zstd", timeout_s=30)
            next(iter(a))
            next(iter(b))
            code, details = _code(lambda: next(iter(c.stream("frames", timeout_s=5))))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 2" in details
            a.cancel()  # client goes away mid-stream
            assert wait_until(lambda: len(srv.servicer.clients()) == 1, 5)
            assert wait_until(lambda: srv.servicer.frames.subscribers == 1, 5)
            b.cancel()
            assert wait_until(lambda: len(srv.servicer.clients()) == 0, 5)
    finally:
        srv.stop()


def test_message_size_limit(producer: Producer) -> None:
    srv = make_server(producer, FakeBackend(), max_message_bytes=64 * 1024)
    try:
        with _client(srv) as c:
            code, details = _code(lambda: list(c.stream("frames", max_messages=1, timeout_s=5)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_message_bytes" in details
            ok = list(c.stream("frames", encoding="jpeg", max_messages=1, timeout_s=5))
            assert len(ok) == 1
    finally:
        srv.stop()


def test_updates_stream(server: Any) -> None:
    srv, _ = server
    with _client(srv) as c:
        call = c.updates(max_messages=2)
        assert wait_until(lambda: len(srv.servicer.updates._queues) >= 1, 5)
        srv.servicer.publish_update(
            pb2.Update(stamp_ns=1, reconstruction=pb2.ReconstructionUpdate(thyroid_volume_ml=9.5))
        )
        srv.servicer.publish_update(
            pb2.Update(stamp_ns=2, segmentation=pb2.SegmentationUpdate(seq=4, target_found=True))
        )
        got = list(call)
    assert got[0].reconstruction.thyroid_volume_ml == 9.5
    assert got[1].segmentation.target_found


# ------------------------------------------------------------------ status, volume, mesh
def test_status(server: Any) -> None:
    srv, _ = server
    with _client(srv) as c:
        st = c.status()
    n = st.nodes[0]
    assert n.node_name == "/us/acquisition" and n.fps == 30.0 and n.frames_dropped == 1
    assert n.channels[0].consumers == 2 and n.values["source"] == "synthetic"
    assert st.streaming and st.max_clients == 6


def test_volume_and_mesh(server: Any, tmp_path: Path, capsys: Any) -> None:
    srv, backend = server
    with _client(srv) as c:
        v = c.volume(2, labels=False)
        m = c.mesh()
    assert list(v.dims) == [8, 6, 4] and v.compression == "zstd" and not v.labels
    assert backend.volume_calls[-1] == (2, True, False)
    arr = volume_array(v)
    assert arr.shape == (4, 6, 8) and arr.ravel()[5] == 5
    assert len(m.triangles) == 12 and m.volume_ml > 0
    target = f"127.0.0.1:{srv.port}"
    assert (
        cli.main(["--target", target, "--json", "volume", "--save", str(tmp_path / "v.nrrd")]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["thyroid_volume_ml"] == 12.5 and len(out["saved"]) == 2
    assert (tmp_path / "v_labels.nrrd").exists()
    head = (tmp_path / "v.nrrd").read_bytes()[:400]
    assert b"sizes: 8 6 4" in head and b"space origin: (1,2,3)" in head
    assert cli.main(["--target", target, "mesh", "--save", str(tmp_path / "t.ply")]) == 0
    assert (tmp_path / "t.ply").read_bytes().startswith(b"ply\n")


# ------------------------------------------------------------------------------ control
def test_control_round_trip_and_errors(server: Any) -> None:
    srv, backend = server
    backend.states["acquisition"] = "unconfigured"
    with _client(srv) as c:
        assert c.start().state == "active"
        assert c.start().message == "already active"
        assert c.stop().state == "inactive"
        assert c.state().state == "inactive"
        code, details = _code(lambda: c.change_state("acquisition", "deactivate"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "inactive" in details
        code, _ = _code(lambda: c.change_state("acquisition", "explode"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        r = c.configure(parameters={"fps": 60.0, "width": 320}, activate=True)
        assert r.state == "active" and backend.params == {"fps": 60.0, "width": 320}
        code, details = _code(lambda: c.set_parameters("acquisition", {"fps": 5000.0}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "fps must be <= 2000" in details
        code, details = _code(lambda: c.state("segmentation"))
        assert code == grpc.StatusCode.UNAVAILABLE
        code, _ = _code(lambda: c.record(True))
        assert code == grpc.StatusCode.UNAVAILABLE
        backend.recorder_up = True
        assert c.record(False).frames_written == 42
        assert c.reset_volume().message == "volume cleared"
        assert list(c.save_volume("/tmp/x", "vol", ["nrrd"]).paths) == ["/tmp/x/vol.nrrd"]
        code, _ = _code(lambda: c.save_volume("/tmp/x", "vol", ["docx"]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        backend.slow = True
        code, _ = _code(lambda: c.stop())
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        backend.slow = False


def test_cli_commands(server: Any, capsys: Any) -> None:
    srv, backend = server
    target = ["--target", f"127.0.0.1:{srv.port}", "--json"]
    backend.states["acquisition"] = "active"
    assert cli.main([*target, "stop"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "inactive"
    assert cli.main([*target, "set-param", "acquisition", "fps", "[1, 2]"]) == 1
    err = json.loads(capsys.readouterr().out)
    assert err["error"] == "INVALID_ARGUMENT"
    assert cli.main([*target, "set-param", "acquisition", "spacing_mm", "[0.1, 0.2]"]) == 0
    assert backend.params["spacing_mm"] == [0.1, 0.2]
    assert cli.main([*target, "status"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["nodes"][0]["fps"] == 30.0
    assert cli.main(["--target", f"127.0.0.1:{srv.port}", "stop", "--node", "nope"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_cli_stream_to_mp4(server: Any, tmp_path: Path, capsys: Any) -> None:
    import av

    srv, _ = server
    out = tmp_path / "out.mp4"
    rc = cli.main(
        [
            "--target",
            f"127.0.0.1:{srv.port}",
            "--json",
            "stream",
            "--encoding",
            "jpeg",
            "--frames",
            "12",
            "--save",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == 12
    with av.open(str(out)) as f:
        frames = list(f.decode(video=0))
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (W, H)


# ------------------------------------------------------------------- health, reflection
def test_health_and_reflection(server: Any) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    srv, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for name in ("", SERVICE_NAME):
            r = h.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        (resp,) = list(refl.ServerReflectionInfo(iter([req]), timeout=5))
        names = {s.name for s in resp.list_services_response.service}
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names
        req = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
        (resp,) = list(refl.ServerReflectionInfo(iter([req]), timeout=5))
        assert resp.file_descriptor_response.file_descriptor_proto


def test_inactive_bridge(producer: Producer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    srv = make_server(producer, FakeBackend())
    try:
        srv.deactivate()
        with _client(srv) as c:
            code, _ = _code(lambda: list(c.stream("frames", max_messages=1, timeout_s=5)))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert c.state().state == "unconfigured"  # control still answers
            h = health_pb2_grpc.HealthStub(c.channel)
            r = h.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.NOT_SERVING
        srv.activate()
        with _client(srv) as c:
            assert len(list(c.stream("frames", max_messages=1, timeout_s=5))) == 1
    finally:
        srv.stop()


# ------------------------------------------------------------------------- auth, TLS
def _tokens() -> TokenStore:
    t = TokenStore()
    t.add(OPERATOR, "operator")
    t.add(VIEWER, "viewer")
    return t


def test_auth(producer: Producer, caplog: Any) -> None:
    srv = make_server(producer, FakeBackend(), tokens=_tokens())
    try:
        with _client(srv) as anon:
            code, _ = _code(lambda: anon.status())
            assert code == grpc.StatusCode.UNAUTHENTICATED
            code, _ = _code(lambda: list(anon.stream("frames", max_messages=1, timeout_s=5)))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        with _client(srv, token="wrong-token-" + "z" * 20) as bad:
            code, _ = _code(lambda: bad.start())
            assert code == grpc.StatusCode.UNAUTHENTICATED
        with _client(srv, token=VIEWER) as viewer:
            assert viewer.status().streaming
            assert len(list(viewer.stream("frames", max_messages=1, timeout_s=5))) == 1
            code, details = _code(lambda: viewer.start())
            assert code == grpc.StatusCode.PERMISSION_DENIED and "operator" in details
        with _client(srv, token=OPERATOR) as op:
            assert op.start().state == "active"
        assert srv.refusals == 4
        assert not any(OPERATOR in r.message or VIEWER in r.message for r in caplog.records)
        assert sum("refused" in r.message for r in caplog.records) == 4
    finally:
        srv.stop()


def test_remote_bind_needs_tokens() -> None:
    with pytest.raises(AuthConfigError, match="without tokens"):
        BridgeServer(BridgeConfig(host="0.0.0.0", port=0), FakeBackend(), TokenStore())
    srv = BridgeServer(
        BridgeConfig(host="0.0.0.0", port=0, allow_insecure_remote=True),
        FakeBackend(),
        TokenStore(),
    )
    assert not srv.interceptor.enabled
    srv2 = BridgeServer(BridgeConfig(host="0.0.0.0", port=0), FakeBackend(), _tokens())
    assert srv2.interceptor.enabled


@pytest.mark.parametrize("mutual", [False, True])
def test_tls(producer: Producer, certs: Any, mutual: bool) -> None:
    srv = make_server(producer, FakeBackend(), tokens=_tokens(), tls=certs.tls(mutual))
    target = f"localhost:{srv.port}"
    try:
        kw: dict[str, Any] = {"tls_ca": str(certs.ca), "token": VIEWER}
        if mutual:
            kw |= {"tls_cert": str(certs.client_cert), "tls_key": str(certs.client_key)}
        with UltrasoundClient(target, timeout_s=5, **kw) as c:
            assert c.status().streaming
            assert len(list(c.stream("frames", encoding="jpeg", max_messages=2))) == 2
        with UltrasoundClient(target, timeout_s=3, token=VIEWER) as plain:
            code, _ = _code(lambda: plain.status())
            assert code == grpc.StatusCode.UNAVAILABLE
        if mutual:  # TLS without a client certificate: the handshake fails
            with UltrasoundClient(target, timeout_s=3, tls_ca=str(certs.ca), token=VIEWER) as c:
                code, _ = _code(lambda: c.status())
                assert code == grpc.StatusCode.UNAVAILABLE
        rc = cli.main(
            ["--target", target, "--token", VIEWER, "--tls-ca", str(certs.ca)]
            + (
                ["--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
                if mutual
                else []
            )
            + ["--json", "status"]
        )
        assert rc == 0
    finally:
        srv.stop()


# ---------------------------------------------------------------------------- OpenIGTLink
def test_openigtlink_image(server: Any) -> None:
    import socket

    import pyigtl
    from us_grpc_bridge.igtl import IgtlStreamer

    srv, backend = server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    streamer = IgtlStreamer(
        srv.servicer.combined,
        backend.T_world_probe,
        srv.config.calibration,
        port=port,
        rate_hz=30.0,
    )
    client = pyigtl.OpenIGTLinkClient("127.0.0.1", port)
    try:
        img = client.wait_for_message("Image_Reference", timeout=10)
        assert img is not None and img.image.shape == (1, H, W)
        assert img.ijk_to_world_matrix[0, 3] == pytest.approx((0.5 - W / 2) * 0.2 + 100, abs=1e-3)
        tf = client.wait_for_message("ProbeToTracker", timeout=10)
        assert tf is not None and tf.matrix[0, 3] == pytest.approx(100.0)
        labels = client.wait_for_message("Image_Labels", timeout=10)
        assert labels is not None and labels.image.max() == 1
    finally:
        client.stop()
        streamer.close()
    threading.Event().wait(0)  # nothing left running
