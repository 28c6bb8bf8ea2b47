"""Pure unit tests of the bridge's algorithms (no rclpy, no server)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from us_frame_channel.testing import pattern_frame
from us_grpc_bridge.auth import (
    AuthConfigError,
    TokenStore,
    is_loopback,
    load_tokens,
    required_role,
)
from us_grpc_bridge.fanout import Hub, LatestMailbox, MailboxClosed, iterate
from us_grpc_bridge.files import read_nrrd, write_nrrd, write_ply
from us_grpc_bridge.params import PARAMETERS, validate
from us_grpc_bridge.pose import ImageCalibration, T_world_image

from us_frame_channel import PixelFormat
from us_grpc_bridge import codecs

OP = "op-" + "o" * 20
VI = "vi-" + "v" * 20


@pytest.mark.parametrize("fmt", ["mono8", "mono16", "uyvy", "bgr8", "bgra8", "label8", "float32"])
@pytest.mark.parametrize("enc", ["raw", "zstd", "lz4"])
def test_lossless_roundtrip(fmt: str, enc: str) -> None:
    f = PixelFormat.parse(fmt)
    img = pattern_frame(f, 64, 48, 3)
    e = codecs.encode(img, f, codecs.EncodeSpec(enc))
    out = codecs.decode(e.data, enc, e.width, e.height, e.pixel_format)
    assert np.array_equal(out, img)
    assert e.raw_bytes == img.nbytes


@pytest.mark.parametrize("fmt", ["mono8", "mono16", "bgr8", "bgra8", "label8"])
def test_png_lossless(fmt: str) -> None:
    f = PixelFormat.parse(fmt)
    img = pattern_frame(f, 40, 30, 1)
    e = codecs.encode(img, f, codecs.EncodeSpec("png"))
    assert np.array_equal(codecs.decode(e.data, "png", e.width, e.height, e.pixel_format), img)


def test_jpeg_is_smaller_and_close() -> None:
    y, x = np.mgrid[0:240, 0:320]
    img = ((x + y) % 256).astype(np.uint8)
    raw = codecs.encode(img, PixelFormat.MONO8, codecs.EncodeSpec("raw"))
    jpg = codecs.encode(img, PixelFormat.MONO8, codecs.EncodeSpec("jpeg", 90))
    assert len(jpg.data) * 5 < len(raw.data)
    back = codecs.decode(jpg.data, "jpeg", jpg.width, jpg.height, jpg.pixel_format)
    assert np.abs(back.astype(int) - img).mean() < 4
    uyvy = pattern_frame(PixelFormat.UYVY, 64, 32, 0)
    e = codecs.encode(uyvy, PixelFormat.UYVY, codecs.EncodeSpec("jpeg"))
    assert e.pixel_format is PixelFormat.MONO8 and (e.width, e.height) == (64, 32)


def test_downscale_block_mean_and_labels() -> None:
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    small = codecs.downscale(img, 2)
    assert small.tolist() == [[2, 4], [10, 12]]  # rint of the 2x2 means 2.5, 4.5 ...
    labels = np.array([[0, 1, 2, 2], [1, 1, 2, 2]], dtype=np.uint8)
    assert codecs.downscale(labels, 2, labels=True).tolist() == [[0, 2]]
    e = codecs.encode(
        pattern_frame(PixelFormat.BGR8, 30, 20, 0),
        PixelFormat.BGR8,
        codecs.EncodeSpec("raw", downscale=3),
    )
    assert (e.width, e.height) == (10, 6)
    with pytest.raises(codecs.CodecError):
        codecs.downscale(img, 8)


@pytest.mark.parametrize(
    "kw", [{"encoding": "gif"}, {"jpeg_quality": 0}, {"jpeg_quality": 101}, {"downscale": 0}]
)
def test_encode_spec_refuses(kw: dict[str, object]) -> None:
    with pytest.raises(codecs.CodecError):
        codecs.EncodeSpec(**kw)  # type: ignore[arg-type]


def test_volume_compression_and_downsample() -> None:
    vol = np.zeros((4, 6, 8), dtype=np.uint8)  # nz, ny, nx
    vol[1:3, 2:4, 3:6] = 200
    data = codecs.compress_volume(vol)
    assert len(data) < vol.nbytes
    assert codecs.decompress_volume(data, vol.nbytes) == vol.tobytes()
    small, dims = codecs.downsample_volume(vol.ravel(), (8, 6, 4), 2)
    assert dims == (4, 3, 2) and small.shape == (2, 3, 4)


def test_token_file_formats(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"# tokens\n{OP}: operator\n{VI}: viewer\n")
    (tmp_path / "b.json").write_text(f'{{"{OP}": "operator"}}')
    (tmp_path / "c.txt").write_text(f"operator:{OP}\n# c\nviewer:{VI}\n")
    for name in ("a.yaml", "c.txt"):
        store = load_tokens(str(tmp_path / name), None)
        assert store.role_of(OP) == "operator" and store.role_of(VI) == "viewer"
        assert store.role_of("nope" * 5) is None and store.role_of("") is None
    assert load_tokens(str(tmp_path / "b.json"), None).role_of(OP) == "operator"
    env = load_tokens("", f"viewer:{VI}, operator:{OP}")
    assert env.role_of(VI) == "viewer" and len(env) == 2
    with pytest.raises(AuthConfigError, match="role"):
        TokenStore().add(OP, "admin")
    with pytest.raises(AuthConfigError, match="shorter"):
        TokenStore().add("short", "viewer")
    with pytest.raises(AuthConfigError, match="cannot read"):
        load_tokens(str(tmp_path / "missing"), None)


def test_roles_and_loopback() -> None:
    svc = "ultrasound.v1.Ultrasound"
    assert required_role(f"/{svc}/Stream", svc) == "viewer"
    assert required_role(f"/{svc}/StartAcquisition", svc) == "operator"
    assert required_role("/grpc.health.v1.Health/Check", svc) is None
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/Info", svc) == "viewer"
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_mailbox_keeps_newest_and_counts() -> None:
    box: LatestMailbox[int] = LatestMailbox()
    for i in range(5):
        box.put(i)
    assert box.get(0.1) == 4 and box.dropped == 4
    assert box.get(0.01) is None
    # while waiting for its rate limit, overwrites are 'skipped', not 'dropped'
    t = threading.Thread(target=lambda: [box.put(i) or time.sleep(0.01) for i in range(5)])
    start = time.monotonic()
    t.start()
    assert box.get(2.0, not_before=start + 0.2) == 4
    t.join()
    assert box.skipped == 4 and box.dropped == 4
    box.close()
    with pytest.raises(MailboxClosed):
        box.get(0.1)


def test_hub_fanout_and_pacing() -> None:
    hub: Hub[int] = Hub("t")
    a, b = hub.subscribe(), hub.subscribe()
    hub.publish(1)
    assert a.get(0.1) == 1 and b.get(0.1) == 1
    got: list[int] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            hub.publish(i)
            i += 1
            time.sleep(0.002)

    threading.Thread(target=produce, daemon=True).start()
    t0 = time.monotonic()
    for item in iterate(a, 1 / 20, lambda: time.monotonic() - t0 < 0.5):
        got.append(item)
    stop.set()
    assert 7 <= len(got) <= 12  # ~20 Hz of a ~400 Hz source
    assert a.skipped > 50
    hub.unsubscribe(b)
    assert hub.subscribers == 1


def test_pose_matches_simulator_convention() -> None:
    from us_acquisition.sim.bmode import BModeSimulator  # noqa: F401 - convention source

    cal = ImageCalibration()
    T = cal.T_probe_image(100, (0.2, 0.3))
    # pixel (u, v) centre -> x = (u + 0.5 - w/2) sx, y = (v + 0.5) sy
    assert T @ np.array([0, 0, 0, 1.0]) == pytest.approx([(0.5 - 50) * 0.2, 0.15, 0, 1])
    # downscaled by 2: pixel 0 covers source pixels 0..1, centre at source 0.5
    T2 = cal.T_probe_image(100, (0.2, 0.3), 2)
    assert T2 @ np.array([1, 1, 0, 1.0]) == pytest.approx(T @ np.array([2.5, 2.5, 0, 1.0]))
    wp = np.eye(4)
    wp[:3, 3] = [10, 20, 30]
    rot = ImageCalibration(rotation_deg=(0, 0, 90))
    m = T_world_image(wp, rot, 100, (0.2, 0.3))
    assert m @ np.array([50 - 0.5, 0, 0, 1.0]) == pytest.approx([10 - 0.15, 20, 30, 1])


def test_nrrd_and_ply(tmp_path: Path) -> None:
    vol = np.arange(24, dtype=np.uint8)
    p = write_nrrd(tmp_path / "v.nrrd", vol, (4, 3, 2), (0.5, 0.5, 1.0), (1, 2, 3))
    fields, data = read_nrrd(p)
    assert fields["sizes"] == "4 3 2" and data == vol.tobytes()
    assert fields["space directions"] == "(0.5,0,0) (0,0.5,0) (0,0,1)"
    assert fields["space origin"] == "(1,2,3)"
    ply = write_ply(tmp_path / "m.ply", [0, 0, 0, 1, 0, 0, 0, 1, 0], [0, 1, 2])
    raw = ply.read_bytes()
    assert b"element vertex 3" in raw and b"element face 1" in raw
    assert len(raw.split(b"end_header\n")[1]) == 3 * 12 + 13


def test_params_validate() -> None:
    names = {p.name for p in PARAMETERS}
    assert {"host", "port", "max_clients", "igtl_port", "token_file"} <= names
    for p in PARAMETERS:
        assert validate(p.name, p.default) is None, p.name
    assert "<=" in (validate("port", 70000) or "")
    assert "one of" in (validate("image_origin", "middle") or "")
    assert "3 values" in (validate("probe_image_translation_mm", [1.0]) or "")
    assert validate("max_rate_hz", 30) is None  # ints are fine for doubles


def test_config_yaml_matches_parameters() -> None:
    import yaml

    cfg = Path(__file__).resolve().parents[3] / "config" / "grpc_bridge.yaml"
    values = yaml.safe_load(cfg.read_text())["/**/grpc_bridge"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMETERS}
    for name, value in values.items():
        assert validate(name, value) is None, name
        assert value == next(p.default for p in PARAMETERS if p.name == name), name
