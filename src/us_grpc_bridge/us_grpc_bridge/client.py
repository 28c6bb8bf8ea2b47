"""Python client of the bridge and the ``us-client`` command line (no rclpy).

    us-client --target host:50051 --token $T status --json
    us-client stream --encoding jpeg --frames 300 --save out.mp4
    us-client volume --downsample 2 --save vol.nrrd
    us-client mesh --save thyroid.ply
    us-client start | stop | configure --set fps=60 --activate
    us-client set-param acquisition spacing_mm "[0.1, 0.1]"
    us-client record start --path scan.igs.mha ; us-client record stop

The token comes from ``--token`` or ``US_GRPC_TOKEN``. Failures print the gRPC status
code and the server's message and exit with 1 (2 for bad command lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from us_frame_channel import PixelFormat

from . import codecs, convert
from ._generated import SERVICE_NAME, pb2, pb2_grpc
from .auth import channel_credentials
from .files import write_nrrd, write_ply

STREAMS = {
    "frames": pb2.STREAM_KIND_FRAMES,
    "masks": pb2.STREAM_KIND_MASKS,
    "combined": pb2.STREAM_KIND_COMBINED,
}
ENCODINGS = {
    "raw": pb2.ENCODING_RAW,
    "jpeg": pb2.ENCODING_JPEG,
    "png": pb2.ENCODING_PNG,
    "zstd": pb2.ENCODING_ZSTD,
    "lz4": pb2.ENCODING_LZ4,
}
ENCODING_NAMES = {v: k for k, v in ENCODINGS.items()}
#: Largest message the client accepts, bytes (a raw 4K BGRA frame is 33 MB).
MAX_RECEIVE_BYTES = 64 * 1024 * 1024


class _TokenAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self._md = (("authorization", f"Bearer {token}"),)

    def __call__(self, context: Any, callback: Any) -> None:
        callback(self._md, None)


class UltrasoundClient:
    """A connection to the bridge. Every call raises ``grpc.RpcError`` on failure.

    With TLS the token travels as call credentials; without TLS as plain metadata (only
    sensible on loopback or a trusted network).
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        tls_ca: str = "",
        tls_cert: str = "",
        tls_key: str = "",
        tls: bool | None = None,
        timeout_s: float = 10.0,
        server_name: str = "",
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._metadata: tuple[tuple[str, str], ...] = ()
        opts: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # large frames: fewer HTTP/2 frames per message, a window that fits a 1080p frame
            ("grpc.http2.max_frame_size", 4 * 1024 * 1024),
            ("grpc.http2.lookahead_bytes", 8 * 1024 * 1024),
        ]
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        use_tls = bool(tls_ca or tls_cert) if tls is None else tls
        if use_tls:
            creds = channel_credentials(tls_ca, tls_cert, tls_key)
            if token:
                creds = grpc.composite_channel_credentials(
                    creds, grpc.metadata_call_credentials(_TokenAuth(token))
                )
            self.channel = grpc.secure_channel(target, creds, options=opts)
        else:
            if token:
                self._metadata = (("authorization", f"Bearer {token}"),)
            self.channel = grpc.insecure_channel(target, options=opts)
        self.stub = pb2_grpc.UltrasoundStub(self.channel)

    def _kw(self, timeout_s: float | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"timeout": self.timeout_s if timeout_s is None else timeout_s}
        if self._metadata:
            kw["metadata"] = self._metadata
        return kw

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> UltrasoundClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- streaming -----------------------------------------------------------------------
    def stream(
        self,
        kind: str = "frames",
        *,
        encoding: str = "raw",
        jpeg_quality: int = 0,
        downscale: int = 1,
        max_rate_hz: float = 0.0,
        mask_encoding: str = "raw",
        max_messages: int = 0,
        timeout_s: float | None = None,
    ) -> Any:
        """A server stream of ``StreamMessage`` s (iterate it; ``.cancel()`` ends it).

        ``kind``/``encoding`` names outside the known ones are sent as code -1 so that the
        server's refusal (INVALID_ARGUMENT) is what the caller sees.
        """
        req = pb2.StreamRequest(
            stream=STREAMS.get(kind, 99),
            encoding=ENCODINGS.get(encoding, 99),
            jpeg_quality=jpeg_quality,
            downscale=downscale,
            max_rate_hz=max_rate_hz,
            mask_encoding=ENCODINGS.get(mask_encoding, 99),
            max_messages=max_messages,
        )
        kw = self._kw(timeout_s)
        if timeout_s is None:
            kw.pop("timeout")
        return self.stub.Stream(req, **kw)

    def updates(
        self, *, reconstruction: bool = True, segmentation: bool = True, max_messages: int = 0
    ) -> Any:
        req = pb2.StreamUpdatesRequest(
            reconstruction=reconstruction, segmentation=segmentation, max_messages=max_messages
        )
        kw = self._kw()
        kw.pop("timeout")
        return self.stub.StreamUpdates(req, **kw)

    # -- status, volume, mesh ---------------------------------------------------------------
    def status(self) -> Any:
        return self.stub.GetStatus(pb2.GetStatusRequest(), **self._kw())

    def volume(self, downsample: int = 1, *, intensity: bool = True, labels: bool = True) -> Any:
        req = pb2.GetVolumeRequest(
            downsample=downsample, skip_intensity=not intensity, skip_labels=not labels
        )
        return self.stub.GetVolume(req, **self._kw(max(self.timeout_s, 30.0)))

    def mesh(self) -> Any:
        return self.stub.GetMesh(pb2.GetMeshRequest(), **self._kw())

    # -- control ---------------------------------------------------------------------------
    def state(self, node: str = "acquisition") -> Any:
        return self.stub.GetNodeState(pb2.NodeRequest(node=node), **self._kw())

    def change_state(self, node: str, transition: str) -> Any:
        req = pb2.ChangeStateRequest(node=node, transition=transition)
        return self.stub.ChangeNodeState(req, **self._kw())

    def start(self, node: str = "acquisition") -> Any:
        return self.stub.StartAcquisition(pb2.NodeRequest(node=node), **self._kw())

    def stop(self, node: str = "acquisition") -> Any:
        return self.stub.StopAcquisition(pb2.NodeRequest(node=node), **self._kw())

    def configure(
        self,
        node: str = "acquisition",
        parameters: dict[str, Any] | None = None,
        activate: bool = False,
    ) -> Any:
        req = pb2.ConfigureRequest(node=node, activate=activate)
        for k, v in (parameters or {}).items():
            req.parameters[k].CopyFrom(convert.to_parameter_value(v))
        return self.stub.ConfigureAcquisition(req, **self._kw(max(self.timeout_s, 30.0)))

    def set_parameters(self, node: str, values: dict[str, Any]) -> Any:
        req = pb2.SetParametersRequest(node=node)
        for k, v in values.items():
            req.parameters[k].CopyFrom(convert.to_parameter_value(v))
        return self.stub.SetParameters(req, **self._kw())

    def reset_volume(self) -> Any:
        return self.stub.ResetVolume(pb2.ResetVolumeRequest(), **self._kw())

    def save_volume(self, directory: str, basename: str = "", formats: Sequence[str] = ()) -> Any:
        req = pb2.SaveVolumeRequest(directory=directory, basename=basename, formats=formats)
        return self.stub.SaveVolume(req, **self._kw(max(self.timeout_s, 60.0)))

    def record(self, start: bool, path: str = "") -> Any:
        req = pb2.RecordingRequest(path=path)
        fn = self.stub.StartRecording if start else self.stub.StopRecording
        return fn(req, **self._kw())


def decode_image(img: Any) -> npt.NDArray[Any]:
    """The pixels of an ``ultrasound.v1.Image``: ``(H, W[, C])`` numpy array."""
    return codecs.decode(
        img.data,
        ENCODING_NAMES.get(img.encoding, "raw"),
        img.width,
        img.height,
        PixelFormat(img.pixel_format),
    )


def volume_array(snapshot: Any, which: str = "intensity") -> npt.NDArray[np.uint8]:
    """``(nz, ny, nx) uint8`` voxels of a ``VolumeSnapshot`` (``intensity`` or ``labels``)."""
    nx, ny, nz = (int(d) for d in snapshot.dims)
    data = codecs.decompress_volume(getattr(snapshot, which), nx * ny * nz)
    return np.frombuffer(data, dtype=np.uint8).reshape(nz, ny, nx)


# ---------------------------------------------------------------------------------- CLI
class _Mp4Writer:
    """Frames to an H.264 (or MPEG-4 part 2) mp4 with PyAV."""

    def __init__(self, path: str, fps: float) -> None:
        import av

        self._av = av
        self.container = av.open(path, mode="w")
        self.stream: Any = None
        self.fps = max(1, round(fps))

    def add(self, image: npt.NDArray[Any]) -> None:
        av = self._av
        if image.ndim == 2:
            if image.dtype != np.uint8:
                image = (image >> 8).astype(np.uint8)
            fmt = "gray"
        elif image.shape[2] == 4:
            image, fmt = np.ascontiguousarray(image[..., :3]), "bgr24"
        elif image.shape[2] == 2:  # UYVY: keep the luma
            image, fmt = np.ascontiguousarray(image[..., 1]), "gray"
        else:
            fmt = "bgr24"
        h, w = image.shape[0] & ~1, image.shape[1] & ~1
        image = np.ascontiguousarray(image[:h, :w])
        if self.stream is None:
            for codec in ("libx264", "h264", "mpeg4"):
                try:
                    self.stream = self.container.add_stream(codec, rate=self.fps)
                    break
                except Exception:  # noqa: BLE001 - codec not in this PyAV build
                    continue
            if self.stream is None:
                raise RuntimeError("PyAV has no H.264/MPEG-4 encoder")
            self.stream.width, self.stream.height = w, h
            self.stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(image, format=fmt)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


def _parse_value(text: str) -> Any:
    """A parameter value from the command line: YAML scalar or list (``[0.1, 0.1]``)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None else value


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, indent=None if args.json else 1) if args.json else text)


def _message_dict(msg: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return dict(MessageToDict(msg, preserving_proto_field_name=True))


def _cmd_stream(c: UltrasoundClient, a: argparse.Namespace) -> int:
    call = c.stream(
        a.stream,
        encoding=a.encoding,
        jpeg_quality=a.quality,
        downscale=a.downscale,
        max_rate_hz=a.rate,
        mask_encoding=a.mask_encoding,
        max_messages=a.frames,
    )
    writer = _Mp4Writer(a.save, a.rate or 30.0) if a.save else None
    n, nbytes, t0, lat = 0, 0, time.monotonic(), []
    last: Any = None
    try:
        for msg in call:
            n += 1
            nbytes += msg.ByteSize()
            lat.append((time.time_ns() - msg.host_timestamp_ns) / 1e6)
            last = msg
            img = msg.image if msg.HasField("image") else msg.mask
            if writer is not None:
                writer.add(decode_image(img))
            if not a.json and not a.quiet:
                print(
                    f"seq {msg.seq} {img.width}x{img.height} {ENCODING_NAMES[img.encoding]} "
                    f"{len(img.data)} B  dropped {msg.frames_dropped} skipped "
                    f"{msg.frames_skipped}  pose {msg.pose_status or '-'}"
                )
    finally:
        if writer is not None:
            writer.close()
    dt = max(time.monotonic() - t0, 1e-9)
    summary = {
        "messages": n,
        "fps": n / dt,
        "bytes_per_message": nbytes / max(n, 1),
        "latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "frames_dropped": last.frames_dropped if last else 0,
        "frames_skipped": last.frames_skipped if last else 0,
        "saved": a.save or None,
    }
    _print(a, summary, f"{n} messages, {summary['fps']:.1f} /s" + (f" -> {a.save}" * bool(a.save)))
    return 0


def _cmd_status(c: UltrasoundClient, a: argparse.Namespace) -> int:
    st = c.status()
    if a.json:
        print(json.dumps(_message_dict(st)))
        return 0
    print(f"bridge: {'streaming' if st.streaming else 'inactive'}, clients {len(st.clients)}")
    for n in st.nodes:
        err = f"  error: {n.last_error}" if n.last_error else ""
        print(
            f"{n.node_name:<28} {n.state_label:<13} {n.fps:7.1f} fps  dropped "
            f"{n.frames_dropped:<6} p95 {n.latency_p95_ms:6.1f} ms{err}"
        )
        for ch in n.channels:
            print(f"  channel {ch.channel}: {ch.fps:.1f} fps, {ch.consumers} consumers")
    for cl in st.clients:
        print(
            f"client {cl.peer} ({cl.role}) {cl.fps:.1f} fps sent {cl.messages_sent} "
            f"dropped {cl.frames_dropped} skipped {cl.frames_skipped}"
        )
    return 0


def _cmd_volume(c: UltrasoundClient, a: argparse.Namespace) -> int:
    v = c.volume(a.downsample, labels=not a.no_labels)
    saved: list[str] = []
    if a.save:
        nx, ny, nz = (int(d) for d in v.dims)
        n = nx * ny * nz
        if v.intensity:
            raw = codecs.decompress_volume(v.intensity, n)
            saved.append(
                str(
                    write_nrrd(
                        a.save,
                        raw,
                        v.dims,
                        v.spacing_mm,
                        v.origin_mm,
                        v.direction or (1, 0, 0, 0, 1, 0, 0, 0, 1),
                    )
                )
            )
        if v.labels:
            p = Path(a.save)
            lp = p.with_name(p.name.replace(".nrrd", "") + "_labels.nrrd")
            raw = codecs.decompress_volume(v.labels, n)
            saved.append(
                str(
                    write_nrrd(
                        lp,
                        raw,
                        v.dims,
                        v.spacing_mm,
                        v.origin_mm,
                        v.direction or (1, 0, 0, 0, 1, 0, 0, 0, 1),
                    )
                )
            )
    info = {
        "dims": list(v.dims),
        "spacing_mm": list(v.spacing_mm),
        "origin_mm": list(v.origin_mm),
        "thyroid_volume_ml": v.thyroid_volume_ml,
        "compressed_bytes": len(v.intensity) + len(v.labels),
        "raw_bytes": v.raw_bytes * (bool(v.intensity) + bool(v.labels)),
        "saved": saved,
    }
    _print(a, info, f"volume {list(v.dims)} thyroid {v.thyroid_volume_ml:.2f} mL saved {saved}")
    return 0


def _cmd_mesh(c: UltrasoundClient, a: argparse.Namespace) -> int:
    m = c.mesh()
    if a.save:
        write_ply(a.save, m.vertices_mm, m.triangles)
    info = {
        "vertices": len(m.vertices_mm) // 3,
        "triangles": len(m.triangles) // 3,
        "volume_ml": m.volume_ml,
        "saved": a.save or None,
    }
    _print(
        a,
        info,
        f"mesh {info['vertices']} vertices {info['triangles']} triangles "
        f"{m.volume_ml:.2f} mL" + (f" -> {a.save}" * bool(a.save)),
    )
    return 0


def _state_out(a: argparse.Namespace, r: Any) -> int:
    _print(
        a,
        {"node": r.node, "state": r.state, "message": r.message},
        f"{r.node}: {r.state}" + (f" ({r.message})" if r.message else ""),
    )
    return 0


def _sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"us-client: --set wants name=value, got {item!r}")
        out[k] = _parse_value(v)
    return out


def _run(c: UltrasoundClient, a: argparse.Namespace) -> int:
    cmd = a.command
    if cmd == "stream":
        return _cmd_stream(c, a)
    if cmd == "status":
        return _cmd_status(c, a)
    if cmd == "volume":
        return _cmd_volume(c, a)
    if cmd == "mesh":
        return _cmd_mesh(c, a)
    if cmd == "start":
        return _state_out(a, c.start(a.node))
    if cmd == "stop":
        return _state_out(a, c.stop(a.node))
    if cmd == "state":
        return _state_out(a, c.state(a.node))
    if cmd == "transition":
        return _state_out(a, c.change_state(a.node, a.transition))
    if cmd == "configure":
        return _state_out(a, c.configure(a.node, _sets(a.set), a.activate))
    if cmd == "set-param":
        r = c.set_parameters(a.node, {a.name: _parse_value(a.value)})
        _print(a, {"node": r.node, "set": list(r.names)}, f"{r.node}: set {', '.join(r.names)}")
        return 0
    if cmd == "record":
        r = c.record(a.action == "start", a.path)
        _print(
            a,
            {
                "path": r.path,
                "frames_written": r.frames_written,
                "frames_lost": r.frames_lost,
                "message": r.message,
            },
            f"recording {a.action}: {r.path} ({r.frames_written} frames, {r.frames_lost} lost)",
        )
        return 0
    if cmd == "reset-volume":
        r = c.reset_volume()
        _print(a, {"message": r.message}, r.message or "volume reset")
        return 0
    if cmd == "save-volume":
        r = c.save_volume(a.directory, a.basename, a.formats or ())
        _print(a, {"paths": list(r.paths)}, "\n".join(r.paths))
        return 0
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="us-client", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--target",
        default=os.environ.get("US_GRPC_TARGET", "127.0.0.1:50051"),
        help="host:port of the bridge (env US_GRPC_TARGET)",
    )
    p.add_argument("--token", default=None, help="bearer token (default: env US_GRPC_TOKEN)")
    p.add_argument("--tls-ca", default="", help="CA certificate of the server (PEM); enables TLS")
    p.add_argument("--tls-cert", default="", help="client certificate for mutual TLS (PEM)")
    p.add_argument("--tls-key", default="", help="client key for mutual TLS (PEM)")
    p.add_argument("--tls", action="store_true", help="TLS with the system's CA roots")
    p.add_argument("--server-name", default="", help="TLS name to verify instead of the host")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline of unary calls, s")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stream", help="receive frames / masks / combined messages")
    s.add_argument("--stream", default="frames", help="frames | masks | combined")
    s.add_argument("--encoding", default="raw", help="raw | jpeg | png | zstd | lz4")
    s.add_argument("--quality", type=int, default=0, help="JPEG quality 1..100 (0 = 85)")
    s.add_argument("--downscale", type=int, default=1, help="integer factor")
    s.add_argument("--rate", type=float, default=0.0, help="max messages / s (0 = server max)")
    s.add_argument("--mask-encoding", default="raw", help="raw | png | zstd | lz4")
    s.add_argument("--frames", type=int, default=100, help="stop after N messages (0 = never)")
    s.add_argument("--save", default="", help="write the images to an mp4 (PyAV)")
    s.add_argument("--quiet", action="store_true", help="only the summary")

    sub.add_parser("status", help="status of every node, channel and client")
    v = sub.add_parser("volume", help="volume snapshot")
    v.add_argument("--downsample", type=int, default=1)
    v.add_argument("--no-labels", action="store_true")
    v.add_argument("--save", default="", help="NRRD file (labels go to <name>_labels.nrrd)")
    m = sub.add_parser("mesh", help="thyroid mesh")
    m.add_argument("--save", default="", help="PLY file")
    for name in ("start", "stop", "state"):
        x = sub.add_parser(name, help=f"{name} acquisition (lifecycle)")
        x.add_argument("--node", default="acquisition")
    tr = sub.add_parser("transition", help="one lifecycle transition of a node")
    tr.add_argument("node")
    tr.add_argument("transition", help="configure | activate | deactivate | cleanup | shutdown")
    cf = sub.add_parser("configure", help="(re)configure a node with parameters")
    cf.add_argument("--node", default="acquisition")
    cf.add_argument("--set", action="append", default=[], help="name=value (repeatable)")
    cf.add_argument("--activate", action="store_true", help="activate afterwards")
    sp = sub.add_parser("set-param", help="set one parameter of a node")
    sp.add_argument("node")
    sp.add_argument("name")
    sp.add_argument("value", help="YAML value: 60, 0.1, true, text, [0.1, 0.1]")
    r = sub.add_parser("record", help="recording on the recorder node")
    r.add_argument("action", choices=("start", "stop"))
    r.add_argument("--path", default="")
    sub.add_parser("reset-volume", help="clear the reconstruction")
    sv = sub.add_parser("save-volume", help="save the volume on the reconstruction's machine")
    sv.add_argument("directory")
    sv.add_argument("--basename", default="")
    sv.add_argument("--formats", nargs="*")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    token = a.token if a.token is not None else os.environ.get("US_GRPC_TOKEN")
    try:
        client = UltrasoundClient(
            a.target,
            token=token or None,
            tls_ca=a.tls_ca,
            tls_cert=a.tls_cert,
            tls_key=a.tls_key,
            tls=True if a.tls else None,
            timeout_s=a.timeout,
            server_name=a.server_name,
        )
    except ValueError as exc:
        print(f"us-client: {exc}", file=sys.stderr)
        return 2
    try:
        with client:
            return _run(client, a)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if a.json:
            print(json.dumps({"error": code.name, "message": details}))
        else:
            print(f"us-client: {code.name}: {details}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["SERVICE_NAME", "UltrasoundClient", "decode_image", "main", "volume_array"]

if __name__ == "__main__":
    sys.exit(main())
