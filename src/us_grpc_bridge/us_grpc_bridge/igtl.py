"""OpenIGTLink server for 3D Slicer (SlicerIGT's OpenIGTLinkIF), on pyigtl (no rclpy).

Sends, at most ``rate_hz``: an IMAGE of the newest frame (its image matrix is
T_world_image, so Slicer places the slice in tracker space, mm), a TRANSFORM of the probe
pose (``ProbeToTracker``) and the mask as a second IMAGE (``Image_Labels``) when
segmentation runs. Frames come from the bridge's combined hub through a latest-value
mailbox like any other client: a slow Slicer never slows anything else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from us_frame_channel import PixelFormat

from .fanout import CombinedItem, Hub, MailboxClosed, iterate
from .pose import ImageCalibration, T_world_image

log = logging.getLogger("us_grpc_bridge.igtl")


def _make_server(host: str, port: int) -> Any:
    """A pyigtl ``OpenIGTLinkServer`` bound to ``host:port`` without its signal handlers.

    pyigtl's constructor installs SIGINT/SIGTERM handlers (only possible in the main thread
    and not wanted in a ROS node); the subclass sets up the same state without them.
    """
    import socketserver

    import pyigtl
    from pyigtl.comm import OpenIGTLinkBase, TCPRequestHandler

    class _Server(pyigtl.OpenIGTLinkServer):
        def __init__(self) -> None:
            OpenIGTLinkBase.__init__(self)
            self.port = port
            self.host = host
            socketserver.TCPServer.allow_reuse_address = True
            socketserver.TCPServer.__init__(self, (host, port), TCPRequestHandler)
            self._previous_signal_handlers: dict[Any, Any] = {}

        def _print_host_and_port_thread(self) -> None:  # pyigtl's 5 s poller: not needed
            return

    srv = _Server()
    srv.start()
    return srv


def _image_for_igtl(pixels: Any, fmt: PixelFormat) -> Any:
    """(1, H, W) or (1, H, W, C) array as pyigtl wants it ((k, j, i, components))."""
    if fmt is PixelFormat.UYVY:
        pixels = pixels[..., 1]
    elif fmt in (PixelFormat.BGR8, PixelFormat.BGRA8):
        pixels = pixels[..., 2::-1]  # RGB
    return np.ascontiguousarray(pixels)[np.newaxis, ...]


class IgtlStreamer:
    """Serves the newest frame/mask/pose to one OpenIGTLink client (Slicer)."""

    def __init__(
        self,
        hub: Hub[CombinedItem],
        pose_of: Callable[[int], tuple[Any | None, str]],
        calibration: ImageCalibration,
        *,
        host: str = "127.0.0.1",
        port: int = 18944,
        rate_hz: float = 15.0,
        image_name: str = "Image_Reference",
        labels_name: str = "Image_Labels",
        transform_name: str = "ProbeToTracker",
    ) -> None:
        self._hub = hub
        self._pose_of = pose_of
        self._cal = calibration
        self._names = (image_name, labels_name, transform_name)
        self._period = 1.0 / rate_hz
        self.server = _make_server(host, port)
        self.port = int(self.server.server_address[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="igtl", daemon=True)
        self.sent = 0
        self._thread.start()

    def _run(self) -> None:
        box = self._hub.subscribe()
        try:
            for item in iterate(box, self._period, lambda: not self._stop.is_set()):
                if not self.server.is_connected():
                    continue
                try:
                    self._send(item)
                except Exception as exc:  # noqa: BLE001 - a Slicer hiccup never stops us
                    log.warning("OpenIGTLink send failed: %s", exc)
        except MailboxClosed:
            pass
        finally:
            self._hub.unsubscribe(box)

    def _send(self, item: CombinedItem) -> None:
        import pyigtl

        image_name, labels_name, transform_name = self._names
        info = item.frame.info
        stamp_s = info.host_timestamp_ns / 1e9
        T_wp, _ = item.cached("pose", lambda: self._pose_of(info.host_timestamp_ns))
        spacing = (info.spacing_x_mm, info.spacing_y_mm)
        if T_wp is not None:
            matrix = T_world_image(T_wp, self._cal, info.width, spacing)
        else:  # no pose: the image in its own plane, mm
            matrix = self._cal.T_probe_image(info.width, spacing)
        # pyigtl's matrix maps (i, j, k) voxel indices: i = column u, j = row v
        msgs = [
            pyigtl.ImageMessage(
                _image_for_igtl(item.frame.pixels, item.frame.pixel_format),
                ijk_to_world_matrix=matrix,
                world_coordinate_system="ras",  # as-is, like the TRANSFORM: tracker mm
                timestamp=stamp_s,
                device_name=image_name,
            )
        ]
        if T_wp is not None:
            msgs.append(
                pyigtl.TransformMessage(
                    np.asarray(T_wp, dtype=np.float64),
                    timestamp=stamp_s,
                    device_name=transform_name,
                )
            )
        if item.mask is not None:
            msgs.append(
                pyigtl.ImageMessage(
                    _image_for_igtl(item.mask.pixels, PixelFormat.LABEL8),
                    ijk_to_world_matrix=matrix,
                    world_coordinate_system="ras",
                    timestamp=stamp_s,
                    device_name=labels_name,
                )
            )
        for m in msgs:
            self.server.send_message(m, wait=False)
        self.sent += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.server.communication_thread_stop_requested = True
            self.server.shutdown()
            self.server.server_close()
        except Exception as exc:  # noqa: BLE001
            log.debug("OpenIGTLink close: %s", exc)
