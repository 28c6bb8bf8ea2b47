"""Thin helpers around the iceoryx2 Python binding (node creation, names, cleanup)."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

import iceoryx2 as iox2

from .layout import (
    ATTR_KIND,
    ATTR_LAYOUT_VERSION,
    ATTR_MAX_FRAME_BYTES,
    EVENT_ID_MAX,
    PAYLOAD_ALIGNMENT,
    FrameHeader,
)

_LOG_READY = False
_LOCK = threading.Lock()

#: Limits of the small event and metadata services (same for every participant).
EVENT_MAX_LISTENERS = 128
EVENT_MAX_NOTIFIERS = 8
EVENT_MAX_NODES = 160


def _init_logging() -> None:
    global _LOG_READY
    with _LOCK:
        if not _LOG_READY:
            # iceoryx2 logs "No config file was loaded" at warn level on every start;
            # IOX2_LOG_LEVEL overrides this default.
            level = os.environ.get("IOX2_LOG_LEVEL")
            if level is None:
                iox2.set_log_level(iox2.LogLevel.Error)
            else:
                iox2.set_log_level_from_env_or(iox2.LogLevel.Error)
            _LOG_READY = True


def create_node(role: str) -> Any:
    """An iceoryx2 node that leaves signal handling to the host program (rclpy, Ctrl-C)."""
    _init_logging()
    name = f"{role}-{os.getpid()}"[: iox2.NodeName.max_len()]
    return (
        iox2.NodeBuilder.new()
        .name(iox2.NodeName.new(name))
        .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
        .create(iox2.ServiceType.Ipc)
    )


def cleanup_dead_nodes(node: Any) -> None:
    """Remove shared-memory resources of crashed processes (best effort, never raises)."""
    try:
        node.try_cleanup_dead_nodes()
    except Exception:  # noqa: BLE001 - cleanup is opportunistic
        pass


def service_name(name: str) -> Any:
    return iox2.ServiceName.new(name)


def frame_service_builder(node: Any, name: str) -> Any:
    """The publish-subscribe builder with the channel's type identity (layout v1)."""
    return (
        node.service_builder(service_name(name))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .user_header(FrameHeader)
        .payload_alignment(iox2.Alignment.new(PAYLOAD_ALIGNMENT))
    )


def event_service(node: Any, name: str) -> Any:
    """Open or create the channel's event service (wake-ups, producer online)."""
    return (
        node.service_builder(service_name(name))
        .event()
        .max_listeners(EVENT_MAX_LISTENERS)
        .max_notifiers(EVENT_MAX_NOTIFIERS)
        .max_nodes(EVENT_MAX_NODES)
        .event_id_max_value(EVENT_ID_MAX)
        .open_or_create()
    )


def attribute_specifier(layout_version: int, max_frame_bytes: int, kind: str) -> Any:
    spec = iox2.AttributeSpecifier.new()
    for key, value in (
        (ATTR_LAYOUT_VERSION, str(layout_version)),
        (ATTR_MAX_FRAME_BYTES, str(max_frame_bytes)),
        (ATTR_KIND, kind),
    ):
        spec = spec.define(iox2.AttributeKey.new(key), iox2.AttributeValue.new(value))
    return spec


def attribute_verifier(requirements: dict[str, str]) -> Any:
    ver = iox2.AttributeVerifier.new()
    for key, value in requirements.items():
        ver = ver.require(iox2.AttributeKey.new(key), iox2.AttributeValue.new(value))
    return ver


def service_attributes(name: str) -> dict[str, str] | None:
    """The attributes of an existing publish-subscribe service, or None if none exists."""
    _init_logging()
    try:
        details = iox2.Service.details(
            service_name(name),
            iox2.config.global_config(),
            iox2.MessagingPattern.PublishSubscribe,
            iox2.ServiceType.Ipc,
        )
    except Exception:  # noqa: BLE001
        return None
    if details is None:
        return None
    out: dict[str, str] = {}
    for attr in details.attributes().values:
        out[attr.key.to_string()] = attr.value.to_string()
    return out


def error_kind(exc: BaseException) -> str:
    """The iceoryx2 error variant name, e.g. 'DoesNotExist'."""
    return str(exc.args[0]) if exc.args else type(exc).__name__
