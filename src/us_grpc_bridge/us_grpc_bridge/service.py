"""The gRPC server of the bridge (no rclpy): streaming, status, volume, control.

ROS access goes through a :class:`Backend` (implemented by the node with rclpy service
clients and subscriptions, and by a fake in the tests). Backend failures are
:class:`BackendError` s carrying the gRPC status code the client gets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import numpy as np

from . import codecs, convert
from ._generated import SERVICE_NAME, pb2
from .auth import (
    AuthConfigError,
    AuthInterceptor,
    TlsSettings,
    TokenStore,
    is_loopback,
    server_credentials,
)
from .fanout import (
    ChannelPump,
    CombinedItem,
    FramePairer,
    Hub,
    ImageItem,
    LatestMailbox,
    UpdateHub,
    iterate,
)
from .pose import ImageCalibration, T_world_image

log = logging.getLogger("us_grpc_bridge")

_ENCODING_NAMES = {
    pb2.ENCODING_RAW: "raw",
    pb2.ENCODING_JPEG: "jpeg",
    pb2.ENCODING_PNG: "png",
    pb2.ENCODING_ZSTD: "zstd",
    pb2.ENCODING_LZ4: "lz4",
}
_STREAMS = {pb2.STREAM_KIND_FRAMES, pb2.STREAM_KIND_MASKS, pb2.STREAM_KIND_COMBINED}
TRANSITIONS = ("configure", "activate", "deactivate", "cleanup", "shutdown")
#: Limits of a stream request beyond the configured ones.
MAX_DOWNSCALE = 16


class BackendError(Exception):
    """A failed backend call and the gRPC status code that reports it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Backend(Protocol):
    """What the servicer needs from ROS. Every method may raise :class:`BackendError`
    (UNAVAILABLE: no such node/service; DEADLINE_EXCEEDED: no answer in time;
    FAILED_PRECONDITION: transition refused; INVALID_ARGUMENT: parameter refused)."""

    def node_statuses(self) -> list[tuple[Any, float]]:
        """Latest ``NodeStatus`` messages with their age in s."""
        ...

    def get_state(self, node: str) -> str:
        """Lifecycle state label of ``node`` (unconfigured, inactive, active, finalized)."""
        ...

    def change_state(self, node: str, transition: str) -> str:
        """Run a lifecycle transition; the state label after it."""
        ...

    def set_parameters(self, node: str, values: dict[str, Any]) -> None: ...

    def get_volume(self, downsample: int, intensity: bool, labels: bool) -> Any:
        """A ``us_interfaces/Volume``-like object."""
        ...

    def get_mesh(self) -> Any:
        """A ``us_interfaces/Mesh``-like object."""
        ...

    def reset_volume(self) -> str: ...

    def save_volume(self, directory: str, basename: str, formats: list[str]) -> list[str]: ...

    def recording(self, start: bool, path: str) -> Any:
        """A ``Recording.Response``-like object (path, frames_written, frames_lost, message)."""
        ...

    def T_world_probe(self, stamp_ns: int) -> tuple[Any | None, str]:
        """4x4 world <- probe (mm) at ``stamp_ns`` or (None, reason)."""
        ...


@dataclass(frozen=True)
class BridgeConfig:
    """Server settings (see the node's parameters for their meaning and defaults)."""

    host: str = "127.0.0.1"
    port: int = 50051
    max_clients: int = 16
    max_message_bytes: int = 16 * 1024 * 1024
    max_rate_hz: float = 120.0
    frames_channel: str = "us/frames"
    masks_channel: str = "us/masks"
    world_frame: str = "tracker"
    allow_insecure_remote: bool = False
    tls: TlsSettings = field(default_factory=TlsSettings)
    calibration: ImageCalibration = field(default_factory=ImageCalibration)
    service_timeout_s: float = 5.0
    combined_keep_frames: int = 16


@dataclass
class ClientRecord:
    """Figures of one streaming client (shown by GetStatus and the node's status)."""

    peer: str
    role: str
    stream: int
    encoding: int
    max_rate_hz: float
    box: LatestMailbox[Any] | None = None
    messages_sent: int = 0
    bytes_sent: int = 0
    started: float = field(default_factory=time.monotonic)
    recent: list[float] = field(default_factory=list)

    def fps(self) -> float:
        now = time.monotonic()
        self.recent = [t for t in self.recent if now - t < 2.0]
        return len(self.recent) / min(2.0, max(1e-3, now - self.started))


def _abort_backend(context: grpc.ServicerContext, exc: BackendError) -> None:
    context.abort(exc.code, exc.message)


def _serialize(message: Any) -> bytes:
    """Response serializer that passes pre-serialized bytes through."""
    if isinstance(message, bytes | bytearray):
        return bytes(message)
    return bytes(message.SerializeToString())


class UltrasoundServicer:
    """Implements ``ultrasound.v1.Ultrasound``."""

    def __init__(
        self,
        config: BridgeConfig,
        backend: Backend,
        *,
        role_of: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self._role_of = role_of or (lambda md: "operator")
        self.frames: Hub[ImageItem] = Hub("frames")
        self.masks: Hub[ImageItem] = Hub("masks")
        self.combined: Hub[CombinedItem] = Hub("combined")
        self.pairer = FramePairer(self.combined, keep=config.combined_keep_frames)
        self.updates: UpdateHub[Any] = UpdateHub()
        self._clients: dict[int, ClientRecord] = {}
        self._clients_lock = threading.Lock()
        self._next_id = 0
        self.streaming = False
        self.frame_pump: ChannelPump | None = None
        self.mask_pump: ChannelPump | None = None
        self.refusals = 0

    # -- hubs -----------------------------------------------------------------------
    def on_frame(self, item: ImageItem) -> None:
        self.frames.publish(item)
        self.pairer.on_frame(item)

    def on_mask(self, item: ImageItem) -> None:
        self.masks.publish(item)
        self.pairer.on_mask(item)

    def start_streaming(self, reader_factory: Callable[[str], Any] | None = None) -> None:
        if self.streaming:
            return
        self.frame_pump = ChannelPump(
            self.config.frames_channel, self.on_frame, reader_factory=reader_factory
        )
        self.mask_pump = ChannelPump(
            self.config.masks_channel, self.on_mask, reader_factory=reader_factory
        )
        self.frame_pump.start()
        self.mask_pump.start()
        self.streaming = True

    def stop_streaming(self) -> None:
        self.streaming = False
        for pump in (self.frame_pump, self.mask_pump):
            if pump is not None:
                pump.stop()
        self.frames.close_all()
        self.masks.close_all()
        self.combined.close_all()
        self.updates.close_all()

    def source_dropped(self) -> int:
        return self.frame_pump.source_dropped if self.frame_pump is not None else 0

    # -- clients --------------------------------------------------------------------
    def clients(self) -> list[ClientRecord]:
        with self._clients_lock:
            return list(self._clients.values())

    def _admit(self, context: grpc.ServicerContext, record: ClientRecord) -> int:
        with self._clients_lock:
            if len(self._clients) >= self.config.max_clients:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the bridge serves at most {self.config.max_clients} streams at once",
                )
            self._next_id += 1
            self._clients[self._next_id] = record
            return self._next_id

    def _leave(self, cid: int) -> None:
        with self._clients_lock:
            self._clients.pop(cid, None)

    def _role(self, context: grpc.ServicerContext) -> str:
        return self._role_of(context.invocation_metadata()) or "?"

    # -- streaming ------------------------------------------------------------------
    def _stream_spec(
        self, request: Any, context: grpc.ServicerContext
    ) -> tuple[codecs.EncodeSpec, codecs.EncodeSpec, float]:
        def bad(text: str) -> None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, text)

        if request.stream not in _STREAMS:
            bad(f"unknown stream {request.stream}; use FRAMES, MASKS or COMBINED")
        enc = _ENCODING_NAMES.get(request.encoding)
        if enc is None:
            bad(f"unknown encoding {request.encoding}")
        menc = _ENCODING_NAMES.get(request.mask_encoding)
        if menc is None or menc not in codecs.MASK_ENCODINGS:
            bad(f"mask_encoding must be one of {', '.join(codecs.MASK_ENCODINGS)}")
        q = request.jpeg_quality or codecs.DEFAULT_JPEG_QUALITY
        if not 1 <= q <= 100:
            bad(f"jpeg_quality must be in 1..100, got {request.jpeg_quality}")
        f = request.downscale or 1
        if not 1 <= f <= MAX_DOWNSCALE:
            bad(f"downscale must be in 1..{MAX_DOWNSCALE}, got {request.downscale}")
        rate = float(request.max_rate_hz) or self.config.max_rate_hz
        if not rate > 0 or rate > self.config.max_rate_hz or rate != rate:
            bad(f"max_rate_hz must be in (0, {self.config.max_rate_hz:g}], got {rate:g}")
        assert enc is not None and menc is not None
        return (
            codecs.EncodeSpec(enc, q, f),
            codecs.EncodeSpec(menc, codecs.DEFAULT_JPEG_QUALITY, f),
            rate,
        )

    def _image(self, item: ImageItem, spec: codecs.EncodeSpec) -> tuple[bytes, bytes]:
        """An ``Image`` as (serialized fields without ``data``, data), memoized per item.

        Raw frames at full size are sent from the item's bytes without another copy.
        """

        def make() -> tuple[bytes, bytes]:
            info = item.info
            if spec.encoding == "raw" and spec.downscale == 1:
                data = item.raw
                h, w = int(item.pixels.shape[0]), int(item.pixels.shape[1])
                fmt, stride, raw_bytes = item.pixel_format, len(data) // max(h, 1), len(data)
            else:
                e = codecs.encode(item.pixels, item.pixel_format, spec)
                data, w, h, fmt = e.data, e.width, e.height, e.pixel_format
                stride, raw_bytes = e.stride_bytes, e.raw_bytes
            meta = pb2.Image(
                width=w,
                height=h,
                pixel_format=int(fmt),
                encoding=_encoding_code(spec.encoding),
                stride_bytes=stride,
                spacing_x_mm=info.spacing_x_mm * spec.downscale,
                spacing_y_mm=info.spacing_y_mm * spec.downscale,
                downscale=spec.downscale,
                raw_bytes=raw_bytes,
            ).SerializeToString()
            return bytes(meta), data

        result: tuple[bytes, bytes] = item.cached(("img", spec), make)
        return result

    def _pose(self, item: ImageItem, downscale: int) -> tuple[list[float], str]:
        def make() -> tuple[Any, str]:
            try:
                return self.backend.T_world_probe(item.info.host_timestamp_ns)
            except Exception as exc:  # noqa: BLE001 - a pose problem never ends a stream
                return None, f"error: {exc}"

        T_wp, status = item.cached("pose", make)
        if T_wp is None:
            return [], status
        info = item.info
        m = T_world_image(
            T_wp,
            self.config.calibration,
            info.width,
            (info.spacing_x_mm, info.spacing_y_mm),
            downscale,
        )
        return [float(x) for x in np.asarray(m).ravel()], "ok"

    def _shared(self, kind: int, item: Any, fspec: Any, mspec: Any) -> bytes:
        """The serialized part of a message every client with these settings shares."""

        def make() -> bytes:
            msg = pb2.StreamMessage(world_frame=self.config.world_frame)
            frame: ImageItem = item.frame if isinstance(item, CombinedItem) else item
            info = frame.info
            msg.seq, msg.producer_epoch, msg.source_seq = (
                info.seq,
                info.producer_epoch,
                info.source_seq,
            )
            msg.device_timestamp_ns = info.device_timestamp_ns
            msg.host_timestamp_ns = info.host_timestamp_ns
            x, y, w, h = info.roi
            msg.roi.x, msg.roi.y, msg.roi.width, msg.roi.height = x, y, w, h
            parts: list[bytes] = []
            if kind == pb2.STREAM_KIND_MASKS:
                parts += _field(_MASK_FIELD, *self._image(frame, mspec))
            else:
                parts += _field(_IMAGE_FIELD, *self._image(frame, fspec))
            if kind == pb2.STREAM_KIND_COMBINED:
                assert isinstance(item, CombinedItem)
                if item.mask is not None:
                    parts += _field(_MASK_FIELD, *self._image(item.mask, mspec))
                pose, status = self._pose(frame, fspec.downscale)
                msg.T_world_image.extend(pose)
                msg.pose_status = status
            # one copy of the pixels: fields of a protobuf message may come in any order
            return b"".join([msg.SerializeToString(), *parts])

        return bytes(item.cached(("msg", kind, fspec, mspec), make))

    def Stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        fspec, mspec, rate = self._stream_spec(request, context)
        if not self.streaming:
            context.abort(
                grpc.StatusCode.UNAVAILABLE, "the bridge is not active (no frame readers)"
            )
        hubs: dict[int, Hub[Any]] = {
            pb2.STREAM_KIND_FRAMES: self.frames,
            pb2.STREAM_KIND_MASKS: self.masks,
            pb2.STREAM_KIND_COMBINED: self.combined,
        }
        hub = hubs[request.stream]
        record = ClientRecord(
            context.peer(), self._role(context), request.stream, request.encoding, rate
        )
        cid = self._admit(context, record)
        box = hub.subscribe()
        record.box = box
        context.add_callback(lambda: hub.unsubscribe(box))
        period = 1.0 / rate
        limit = request.max_messages
        try:
            for item in iterate(box, period, context.is_active):
                try:
                    shared = self._shared(request.stream, item, fspec, mspec)
                except codecs.CodecError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                record.messages_sent += 1
                tail = pb2.StreamMessage(
                    server_send_ns=time.time_ns(),
                    frames_dropped=box.dropped,
                    frames_skipped=box.skipped,
                    messages_sent=record.messages_sent,
                    source_dropped=self.source_dropped(),
                ).SerializeToString()
                data = shared + tail
                if len(data) > self.config.max_message_bytes:
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"a message would be {len(data)} bytes, over max_message_bytes="
                        f"{self.config.max_message_bytes}; ask for jpeg/zstd or a downscale",
                    )
                record.bytes_sent += len(data)
                record.recent.append(time.monotonic())
                yield data
                if limit and record.messages_sent >= limit:
                    return
        finally:
            hub.unsubscribe(box)
            self._leave(cid)

    def StreamUpdates(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        want_r = request.reconstruction or not (request.reconstruction or request.segmentation)
        want_s = request.segmentation or not (request.reconstruction or request.segmentation)
        record = ClientRecord(context.peer(), self._role(context), 0, 0, 0.0)
        cid = self._admit(context, record)
        q = self.updates.subscribe()
        context.add_callback(q.close)
        sent = 0
        try:
            while context.is_active():
                try:
                    upd = q.get(0.25)
                except Exception:  # noqa: BLE001 - MailboxClosed: bridge stopping
                    return
                if upd is None:
                    continue
                kind = upd.WhichOneof("kind")
                if (kind == "reconstruction" and not want_r) or (
                    kind == "segmentation" and not want_s
                ):
                    continue
                out = pb2.Update()
                out.CopyFrom(upd)
                out.updates_dropped = q.dropped
                sent += 1
                record.messages_sent = sent
                yield out
                if request.max_messages and sent >= request.max_messages:
                    return
        finally:
            self.updates.unsubscribe(q)
            self._leave(cid)

    def publish_update(self, update: Any) -> None:
        """Broadcast a ``ultrasound.v1.Update`` to StreamUpdates clients."""
        self.updates.publish(update)

    # -- status ---------------------------------------------------------------------
    def GetStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        out = pb2.SystemStatus(
            max_clients=self.config.max_clients,
            streaming=self.streaming,
            server_time_ns=time.time_ns(),
        )
        for msg, age in self.backend.node_statuses():
            out.nodes.append(convert.node_status(msg, age))
        for c in self.clients():
            box = c.box
            out.clients.add(
                peer=c.peer,
                role=c.role,
                stream=c.stream,
                encoding=c.encoding,
                max_rate_hz=c.max_rate_hz,
                messages_sent=c.messages_sent,
                frames_dropped=box.dropped if box else 0,
                frames_skipped=box.skipped if box else 0,
                bytes_sent=c.bytes_sent,
                fps=c.fps(),
            )
        return out

    # -- volume, mesh ---------------------------------------------------------------
    def GetVolume(self, request: Any, context: grpc.ServicerContext) -> Any:
        factor = request.downsample or 1
        if not 1 <= factor <= 64:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "downsample must be in 1..64")
        try:
            v = self.backend.get_volume(factor, not request.skip_intensity, not request.skip_labels)
        except BackendError as exc:
            _abort_backend(context, exc)
        dims = [int(d) for d in v.dims]
        out = pb2.VolumeSnapshot(
            dims=dims,
            spacing_mm=[float(s) for s in v.spacing_mm],
            origin_mm=[float(o) for o in v.origin_mm],
            direction=[float(d) for d in v.direction],
            compression="zstd",
            raw_bytes=int(np.prod(dims)) if dims else 0,
            thyroid_volume_ml=float(v.thyroid_volume_ml),
            frame_id=v.header.frame_id,
            stamp_ns=convert.stamp_ns(v.header),
        )
        if len(v.intensity):
            out.intensity = codecs.compress_volume(bytes(v.intensity))
        if len(v.labels):
            out.labels = codecs.compress_volume(bytes(v.labels))
        if out.ByteSize() > self.config.max_message_bytes:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"volume is {out.ByteSize()} bytes compressed, over max_message_bytes; "
                "ask for a larger downsample",
            )
        return out

    def GetMesh(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            m = self.backend.get_mesh()
        except BackendError as exc:
            _abort_backend(context, exc)
        return pb2.MeshReply(
            vertices_mm=list(m.vertices_mm),
            triangles=list(m.triangles),
            volume_ml=float(m.volume_ml),
            frame_id=m.header.frame_id,
            stamp_ns=convert.stamp_ns(m.header),
        )

    # -- control --------------------------------------------------------------------
    @staticmethod
    def _node(name: str) -> str:
        return name.strip().strip("/") or "acquisition"

    def _reply(self, node: str, state: str, message: str = "") -> Any:
        return pb2.NodeStateReply(node=node, state=state, message=message)

    def GetNodeState(self, request: Any, context: grpc.ServicerContext) -> Any:
        node = self._node(request.node)
        try:
            return self._reply(node, self.backend.get_state(node))
        except BackendError as exc:
            _abort_backend(context, exc)

    def ChangeNodeState(self, request: Any, context: grpc.ServicerContext) -> Any:
        node = self._node(request.node)
        if request.transition not in TRANSITIONS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown transition {request.transition!r}; one of {', '.join(TRANSITIONS)}",
            )
        try:
            return self._reply(node, self.backend.change_state(node, request.transition))
        except BackendError as exc:
            _abort_backend(context, exc)

    def _drive(self, node: str, target: str) -> tuple[str, list[str]]:
        """Transitions from the current state to ``target`` (active, inactive or
        unconfigured); returns the final state and the transitions done."""
        paths = {
            ("unconfigured", "active"): ["configure", "activate"],
            ("inactive", "active"): ["activate"],
            ("active", "inactive"): ["deactivate"],
            ("unconfigured", "inactive"): ["configure"],
            ("active", "unconfigured"): ["deactivate", "cleanup"],
            ("inactive", "unconfigured"): ["cleanup"],
        }
        state = self.backend.get_state(node)
        if state == target:
            return state, []
        steps = paths.get((state, target))
        if steps is None:
            raise BackendError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{node} is {state}; cannot go to {target} from there",
            )
        for t in steps:
            state = self.backend.change_state(node, t)
        return state, steps

    def StartAcquisition(self, request: Any, context: grpc.ServicerContext) -> Any:
        node = self._node(request.node)
        try:
            state, steps = self._drive(node, "active")
        except BackendError as exc:
            _abort_backend(context, exc)
        return self._reply(node, state, ", ".join(steps) or "already active")

    def StopAcquisition(self, request: Any, context: grpc.ServicerContext) -> Any:
        node = self._node(request.node)
        try:
            state = self.backend.get_state(node)
            if state == "active":
                state, _ = self._drive(node, "inactive")
                return self._reply(node, state, "deactivate")
        except BackendError as exc:
            _abort_backend(context, exc)
        return self._reply(node, state, f"already {state}")

    def ConfigureAcquisition(self, request: Any, context: grpc.ServicerContext) -> Any:
        node = self._node(request.node)
        try:
            values = {k: convert.parameter_value(v) for k, v in request.parameters.items()}
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            self._drive(node, "unconfigured")
            if values:
                self.backend.set_parameters(node, values)
            state, _ = self._drive(node, "active" if request.activate else "inactive")
        except BackendError as exc:
            _abort_backend(context, exc)
        return self._reply(node, state, "configured" + (" and activated" * request.activate))

    def SetParameters(self, request: Any, context: grpc.ServicerContext) -> Any:
        node = request.node.strip().strip("/")
        if not node:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node is required")
        if not request.parameters:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no parameters given")
        try:
            values = {k: convert.parameter_value(v) for k, v in request.parameters.items()}
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            self.backend.set_parameters(node, values)
        except BackendError as exc:
            _abort_backend(context, exc)
        return pb2.SetParametersReply(node=node, names=sorted(values))

    def ResetVolume(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return pb2.ResetVolumeReply(message=self.backend.reset_volume())
        except BackendError as exc:
            _abort_backend(context, exc)

    def SaveVolume(self, request: Any, context: grpc.ServicerContext) -> Any:
        bad = [f for f in request.formats if f not in ("nrrd", "nii", "mha", "ply", "stl")]
        if bad:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown formats {bad}")
        try:
            paths = self.backend.save_volume(
                request.directory, request.basename or "us_volume", list(request.formats)
            )
        except BackendError as exc:
            _abort_backend(context, exc)
        return pb2.SaveVolumeReply(paths=paths, message=f"{len(paths)} files written")

    def _recording(self, start: bool, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            r = self.backend.recording(start, request.path)
        except BackendError as exc:
            _abort_backend(context, exc)
        return pb2.RecordingReply(
            path=r.path,
            frames_written=int(r.frames_written),
            frames_lost=int(r.frames_lost),
            message=r.message,
        )

    def StartRecording(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._recording(True, request, context)

    def StopRecording(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._recording(False, request, context)


_IMAGE_FIELD = pb2.StreamMessage.DESCRIPTOR.fields_by_name["image"].number
_MASK_FIELD = pb2.StreamMessage.DESCRIPTOR.fields_by_name["mask"].number
_DATA_FIELD = pb2.Image.DESCRIPTOR.fields_by_name["data"].number


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, meta: bytes, data: bytes) -> list[bytes]:
    """Wire-format pieces of a length-delimited ``Image`` field whose ``data`` is appended
    to the other serialized fields (``meta``) without copying it here."""
    data_head = _varint(_DATA_FIELD << 3 | 2) + _varint(len(data))
    body_len = len(meta) + len(data_head) + len(data)
    return [_varint(number << 3 | 2), _varint(body_len), meta, data_head, data]


def _encoding_code(name: str) -> int:
    return {v: k for k, v in _ENCODING_NAMES.items()}[name]


def generic_handler(servicer: UltrasoundServicer) -> grpc.GenericRpcHandler:
    """Method handlers from the service descriptor; responses may be pre-serialized bytes."""
    service = pb2.DESCRIPTOR.services_by_name["Ultrasound"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_cls = getattr(pb2, method.input_type.name)
        fn = getattr(servicer, method.name)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                fn, request_deserializer=request_cls.FromString, response_serializer=_serialize
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request_cls.FromString, response_serializer=_serialize
            )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


class BridgeServer:
    """The gRPC server: service, health, reflection, auth interceptor, TLS.

    ``start()`` binds the port (raises :class:`AuthConfigError` for unsafe settings or
    :class:`OSError` if the port is taken); ``set_serving`` flips health and streaming.
    """

    def __init__(self, config: BridgeConfig, backend: Backend, tokens: TokenStore) -> None:
        self.config = config
        remote = not is_loopback(config.host)
        if remote and len(tokens) == 0:
            if not config.allow_insecure_remote:
                raise AuthConfigError(
                    f"refusing to listen on {config.host} (beyond loopback) without tokens: "
                    "set token_file or the token environment variable, or "
                    "allow_insecure_remote: true (not recommended)"
                )
            log.warning(
                "listening on %s WITHOUT authentication (allow_insecure_remote)", config.host
            )
        if remote and not config.tls.enabled:
            log.warning("listening on %s without TLS: tokens travel in clear text", config.host)
        self.credentials = server_credentials(config.tls)
        self.refusals = 0
        self.interceptor = AuthInterceptor(
            tokens,
            SERVICE_NAME,
            required=remote and not config.allow_insecure_remote,
            on_refusal=self._count_refusal,
        )
        self.servicer = UltrasoundServicer(config, backend, role_of=self.interceptor.role_for)
        self._server: grpc.Server | None = None
        self._health: Any = None
        self.port = 0

    def _count_refusal(self, code: str, method: str) -> None:
        self.refusals += 1

    def start(self) -> int:
        """Bind and start; returns the port (useful with ``port=0``)."""
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        c = self.config
        opts = [
            ("grpc.max_send_message_length", c.max_message_bytes),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_time_ms", 20000),
            ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_frame_size", 4 * 1024 * 1024),
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=2 * c.max_clients + 8, thread_name_prefix="grpc"
            ),
            interceptors=[self.interceptor],
            options=opts,
        )
        server.add_generic_rpc_handlers((generic_handler(self.servicer),))
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        address = f"{c.host}:{c.port}" if ":" not in c.host else f"[{c.host}]:{c.port}"
        if self.credentials is not None:
            port = server.add_secure_port(address, self.credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind {address} (in use or not a local address)")
        server.start()
        self._server, self.port = server, port
        self.set_serving(False)
        log.info(
            "gRPC on %s:%d (%s, auth %s)",
            c.host,
            port,
            "TLS" + (" + client certs" if c.tls.client_ca else "")
            if self.credentials
            else "plaintext",
            "on" if self.interceptor.enabled else "off (loopback)",
        )
        return port

    def set_serving(self, serving: bool) -> None:
        from grpc_health.v1 import health_pb2

        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if self._health is not None:
            self._health.set("", status)
            self._health.set(SERVICE_NAME, status)

    def activate(self, reader_factory: Callable[[str], Any] | None = None) -> None:
        """Start the channel readers and report SERVING."""
        self.servicer.start_streaming(reader_factory)
        self.set_serving(True)

    def deactivate(self) -> None:
        """Stop the readers, end the streams, report NOT_SERVING (control keeps working)."""
        self.set_serving(False)
        self.servicer.stop_streaming()

    def stop(self, grace_s: float = 1.0) -> None:
        self.deactivate()
        if self._server is not None:
            self._server.stop(grace_s).wait(grace_s + 1.0)
            self._server = None
