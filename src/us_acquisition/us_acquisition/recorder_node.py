"""The recorder lifecycle node: a thin ROS wrapper around :class:`SequenceRecorder`.

configure: check the parameters (FAILURE + reason if bad)
activate:  recordings may be started           deactivate: a running recording is written
cleanup / shutdown: a running recording is written, then everything released

Subscriptions: /tf, /tf_static (tf2_msgs/TFMessage) into an interpolating pose buffer
  (served by the helper node ~_tf in a thread of its own).
Topics: ~/status (us_interfaces/NodeStatus, latched; also on /diagnostics).
Service: ~/recording (us_interfaces/Recording): start (path empty =
  ``<output_dir>/scan-<UTC time>.igs.mha``) / stop (path, frames written / lost).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from tf2_msgs.msg import TFMessage

from us_interfaces.msg import NodeStatus
from us_interfaces.srv import Recording

from .node_common import (
    LATCHED,
    STATE_IDS,
    StatusPublisher,
    TopicReceiver,
    UsLifecycleNode,
    declare_parameters,
    refuse_change,
    spin_node,
)
from .poses import PoseBuffer, transform_from_ros
from .recorder import RecordingResult, SequenceRecorder, check_output_path
from .recorder_params import PARAMETERS, SPECS, validate

DEFAULT_OUTPUT_DIR = "us_recordings"
#: A stop answers within this long (callers such as the gRPC bridge have a deadline of a
#: few seconds); a longer file write goes on in the background and ~/status tells the end.
STOP_ANSWER_WITHIN_S = 3.0


@dataclass
class _FileWrite:
    """A stopped recording whose file is being written by its own thread."""

    recorder: SequenceRecorder
    why: str
    thread: threading.Thread | None = None
    ok: bool = False
    message: str = ""


class RecorderNode(UsLifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        self._bad_start_params = declare_parameters(self, PARAMETERS, validate)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._state_label = "unconfigured"
        self._last_error = ""
        self._poses = PoseBuffer()
        self._rec: SequenceRecorder | None = None
        self._last_result: RecordingResult | None = None
        self._writing: _FileWrite | None = None
        self._lock = threading.Lock()  # start / stop / finish
        self._fps_window: tuple[float, int] = (time.monotonic(), 0)
        self._fps = 0.0
        # /tf and /tf_static in a thread of their own (node_common.TopicReceiver)
        self._tf_rx = TopicReceiver(self, TFMessage, "/tf", self._on_tf, 200, suffix="tf")
        self._tf_rx.subscribe(
            TFMessage, "/tf_static", lambda m: self._on_tf(m, static=True), LATCHED
        )
        self._status_pub = StatusPublisher(self)
        self._status_timer = self.create_timer(
            1.0 / self._p("status_rate_hz"),
            self._on_timer,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.create_service(
            Recording, "~/recording", self._srv_recording, callback_group=ReentrantCallbackGroup()
        )
        self._publish_status()

    # -- parameters ------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = refuse_change(SPECS, validate, params, self._state_label)
        if refused is not None:
            return refused
        return SetParametersResult(successful=True)

    # -- TF --------------------------------------------------------------------------------
    def _on_tf(self, msg: Any, static: bool = False) -> None:
        for ts in msg.transforms:
            tr, q = ts.transform.translation, ts.transform.rotation
            try:
                T = transform_from_ros((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
            except ValueError:
                continue  # malformed: the frame's pose is then recorded INVALID
            st = ts.header.stamp
            self._poses.add(
                ts.header.frame_id,
                ts.child_frame_id,
                T,
                int(st.sec) * 1_000_000_000 + int(st.nanosec),
                static=static,
            )

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._bad_start_params:
            self._last_error = "invalid parameters: " + "; ".join(self._bad_start_params)
            self.get_logger().error(f"configure failed: {self._last_error}")
            self._publish_status()
            return TransitionCallbackReturn.FAILURE
        self._last_error = ""
        self._state_label = "inactive"
        self.get_logger().info(
            f"configured: '{self._p('frames_channel')}' + '{self._p('mask_channel')}', "
            f"{self._p('transform_name')} = {self._p('world_frame')} <- {self._p('probe_frame')}"
        )
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def pause_work(self) -> None:
        self._finish("node deactivated", 0.0)  # the file is written in the background

    def destroy_node(self) -> None:
        self._tf_rx.close()
        super().destroy_node()

    def release(self) -> None:
        """Write a running recording and wait for every file write (never lose a scan)."""
        self._finish("node shutting down")
        job = self._writing
        if job is not None and job.thread is not None:
            job.thread.join()

    # -- recording -------------------------------------------------------------------------
    def _default_path(self) -> Path:
        folder = Path(self._p("output_dir") or DEFAULT_OUTPUT_DIR).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        stem = "scan-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = folder / f"{stem}.igs.mha"
        k = 1
        while path.exists():
            path = folder / f"{stem}-{k}.igs.mha"
            k += 1
        return path

    def _start(self, requested: str) -> tuple[bool, str, str]:
        """(success, message, path)."""
        with self._lock:
            if self._state_label != "active":
                return False, f"not active (state {self._state_label}); activate the node", ""
            if self._rec is not None:
                return False, f"already recording to {self._rec.path}; stop it first", ""
            if self._writing is not None:
                return (
                    False,
                    f"still writing {self._writing.recorder.path}; start again when ~/status "
                    "shows it written",
                    "",
                )
            try:
                path = check_output_path(requested) if requested else self._default_path()
                max_gb, max_min = float(self._p("max_gb")), float(self._p("max_minutes"))
                rec = SequenceRecorder(
                    path,
                    self._poses,
                    frames_channel=self._p("frames_channel"),
                    mask_channel=self._p("mask_channel"),
                    world_frame=self._p("world_frame"),
                    probe_frame=self._p("probe_frame"),
                    transform_name=self._p("transform_name"),
                    max_pose_gap_ms=self._p("max_pose_gap_ms"),
                    pose_wait_ms=self._p("pose_wait_ms"),
                    mask_wait_ms=self._p("mask_wait_ms"),
                    max_bytes=round(max_gb * 1e9),
                    max_duration_s=max_min * 60.0,
                    compress=bool(self._p("compress")),
                )
                rec.start()
            except (ValueError, OSError) as exc:
                return False, str(exc), requested
            self._rec = rec
            self._last_result = None
            self._fps_window = (time.monotonic(), 0)
        where = (
            "frames" if rec.stats.state == "recording" else f"waiting for '{rec.frames_channel}'"
        )
        self.get_logger().info(f"recording {where} to {rec.path}")
        note = "" if where == "frames" else f" ({where}: no producer yet)"
        return True, f"recording to {rec.path}{note}", str(rec.path)

    def _finish(self, why: str, wait_s: float | None = None) -> tuple[bool, str, str, int, int]:
        """Stop the running recording and write its file; wait at most ``wait_s`` (None =
        until written). Returns (success, message, path, frames_written, frames_lost)."""
        with self._lock:
            rec, self._rec = self._rec, None
            if rec is None:
                return False, "not recording", "", 0, 0
            rec.end_frames()  # counts are final from here on
            job = _FileWrite(rec, why)
            job.thread = threading.Thread(target=self._write, args=(job,), name="recorder-write")
            self._writing = job
            job.thread.start()
        job.thread.join(wait_s)
        n, lost = rec.stats.frames_written, rec.stats.frames_lost
        if job.thread.is_alive():
            msg = (
                f"{why}: {n} frames ({lost} lost); writing {rec.path} in the background, "
                "~/status shows when it is written"
            )
            return True, msg, str(rec.path), n, lost
        return job.ok, job.message, str(rec.path) if job.ok else "", n, lost

    def _write(self, job: _FileWrite) -> None:
        rec = job.recorder
        try:
            res = rec.stop()
        except (OSError, ValueError) as exc:
            job.message = f"writing {rec.path} failed: {exc} (raw data kept next to it)"
            self._last_error = job.message
            self.get_logger().error(job.message)
        else:
            self._last_result = res
            if res.path is None:
                job.message = (
                    f"no frame was recorded (is a producer writing '{rec.frames_channel}'?); "
                    "nothing written"
                )
                self.get_logger().warning(job.message)
            else:
                job.ok = True
                job.message = (
                    f"{job.why}: wrote {res.path} ({res.frames_written} frames, "
                    f"{res.frames_lost} lost, {res.poses_invalid} without pose, "
                    f"{res.masks_written} masks, {res.bytes_written / 1e6:.1f} MB, "
                    f"{res.duration_s:.1f} s)"
                )
                if res.limit_reason:
                    job.message += f"; stopped early: {res.limit_reason}"
                self.get_logger().info(job.message)
        finally:
            with self._lock:
                self._writing = None
            try:
                self._publish_status()
            except Exception:  # noqa: BLE001 - the context may be shutting down
                pass

    def _srv_recording(self, req: Any, res: Any) -> Any:
        if req.start:
            res.success, res.message, res.path = self._start(req.path)
            return res
        ok, msg, path, written, lost = self._finish("stopped", STOP_ANSWER_WITHIN_S)
        res.success, res.message, res.path = ok, msg, path
        res.frames_written, res.frames_lost = written, lost
        self._publish_status()
        return res

    # -- status ----------------------------------------------------------------------------
    def _on_timer(self) -> None:
        rec = self._rec
        if rec is not None and rec.limit_reached:
            self._finish("limit reached", 0.0)  # guard: write what was recorded
        self._publish_status()

    def _publish_status(self) -> None:
        s = NodeStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.node_name = self.get_fully_qualified_name()
        s.state = STATE_IDS.get(self._state_label, NodeStatus.STATE_UNKNOWN)
        s.state_label = self._state_label
        s.last_error = self._last_error
        rec = self._rec
        if rec is not None:
            st = rec.stats
            now = time.monotonic()
            t0, n0 = self._fps_window
            if now - t0 >= 1.0:
                self._fps = (st.frames_written - n0) / (now - t0)
                self._fps_window = (now, st.frames_written)
            s.fps = self._fps
            s.frames_in, s.frames_out = st.frames_received, st.frames_written
            s.frames_dropped = st.frames_lost
            s.last_error = st.last_error if st.state == "waiting" else self._last_error
            values = {
                "recording": "yes",
                "path": str(rec.path),
                "recorder_state": st.state,
                "frames_written": str(st.frames_written),
                "frames_lost": str(st.frames_lost),
                "mb_written": f"{st.bytes_written / 1e6:.1f}",
                "masks_written": str(st.masks_written),
                "poses_invalid": str(st.poses_invalid),
            }
        elif (job := self._writing) is not None:
            values = {"recording": "no", "writing": "yes", "path": str(job.recorder.path)}
        else:
            last = self._last_result
            values = {"recording": "no", "path": str(last.path or "") if last else ""}
            if last is not None:
                s.frames_out = last.frames_written
                s.frames_dropped = last.frames_lost
                values |= {
                    "frames_written": str(last.frames_written),
                    "frames_lost": str(last.frames_lost),
                    "mb_written": f"{last.bytes_written / 1e6:.1f}",
                    "masks_written": str(last.masks_written),
                    "poses_invalid": str(last.poses_invalid),
                }
        s.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self._status_pub.publish(s)


def main(args: list[str] | None = None) -> int:
    return spin_node(RecorderNode, threads=3, args=args)


if __name__ == "__main__":
    sys.exit(main())
