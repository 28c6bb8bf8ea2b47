"""The reconstruction lifecycle node: a thin ROS wrapper around :class:`LiveReconstructor`.

configure: calibration (PLUS XML or parameters), grid, compounder (FAILURE + reason if bad)
activate:  compound frames (+ masks) placed by TF    deactivate: pause, keep the volume
cleanup / shutdown: release

Subscriptions: /tf, /tf_static (tf2_msgs/TFMessage) into an interpolating pose buffer
  (served by the helper node ~_tf in a thread of its own).
Topics (relative to the node's namespace; RViz units: metres, in ``world_frame``):
  ~/info          us_interfaces/ReconstructionInfo  latched: volume mL, ellipsoid, skips
  ~/volume_cloud  sensor_msgs/PointCloud2           latched: voxels >= cloud_min_intensity
  ~/thyroid_mesh  visualization_msgs/Marker         latched: TRIANGLE_LIST
  ~/image_plane   sensor_msgs/PointCloud2           sensor QoS: the current frame in 3D
  ~/status        us_interfaces/NodeStatus          latched
  mask_topic      us_interfaces/Frame (subscribed)  with mask_transport topic: label8 masks of
                  a segmentation node on another host (helper node ~_rx, own thread)
Services: ~/reset (Trigger), ~/save (SaveVolume), ~/get_volume (GetVolume),
  ~/get_mesh (GetMesh), ~/set_roi (SetRoi).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import Point
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from tf2_msgs.msg import TFMessage
from us_acquisition.frame_topic import FrameTopicError, frame_from_msg
from us_acquisition.node_common import (
    LATCHED,
    STATE_IDS,
    StatusPublisher,
    TopicReceiver,
    UsLifecycleNode,
    declare_parameters,
    refuse_change,
    spin_node,
    stamp,
)
from us_acquisition.poses import PoseBuffer, transform_from_ros
from us_frame_channel.paramspec import plain
from visualization_msgs.msg import Marker

from us_interfaces.msg import Frame, Mesh, NodeStatus, ReconstructionInfo, Volume
from us_interfaces.srv import GetMesh, GetVolume, SaveVolume, SetRoi, Trigger

from .calibration import ImageCalibration
from .compounding import Compounder, FanGeometry, warmup
from .export import write_mesh, write_volume
from .grid import VolumeGrid
from .live import (
    ImagePlacement,
    LiveReconstructor,
    PlacedFrame,
    SurfaceResult,
    percentile,
)
from .params import PARAMETERS, SPECS, validate
from .plus_config import PlusConfigError, load_plus_device_set

TF_STATIC_QOS = LATCHED
VOLUME_FORMATS = ("nrrd", "nii", "nii.gz", "mha", "ply", "stl")


def _rpy_matrix(rpy_deg: list[float], t_mm: list[float]) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", rpy_deg, degrees=True).as_matrix()
    T[:3, 3] = t_mm
    return T


def _cloud(points_m: np.ndarray, values: np.ndarray, frame_id: str, stamp_msg: Any) -> Any:
    """PointCloud2 with float32 x, y, z (m) and intensity."""
    msg = PointCloud2()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp_msg
    n = int(points_m.shape[0])
    msg.height, msg.width = 1, n
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate(("x", "y", "z", "intensity"))
    ]
    msg.is_bigendian = False
    msg.point_step = 16
    msg.row_step = 16 * n
    msg.is_dense = True
    arr = np.empty((n, 4), dtype="<f4")
    arr[:, :3] = points_m
    arr[:, 3] = values
    msg.data.frombytes(arr.tobytes())
    return msg


class ReconstructionNode(UsLifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("reconstruction", **kwargs)
        self._bad_start_params = declare_parameters(self, PARAMETERS, validate)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._state_label = "unconfigured"
        self._last_error = ""
        self._live: LiveReconstructor | None = None
        self._poses = PoseBuffer()
        self._pubs: dict[str, Any] = {}
        self._mask_rx: TopicReceiver | None = None
        self._last_plane = 0.0
        self._last_cloud = 0.0
        self._surface: SurfaceResult | None = None  # latest, from the surface thread
        self._mesh_sent: SurfaceResult | None = None  # last one published as a Marker
        self._mesh_lock = threading.Lock()
        self._srv_group = ReentrantCallbackGroup()
        # /tf and /tf_static in a thread of their own (node_common.TopicReceiver)
        self._tf_rx = TopicReceiver(self, TFMessage, "/tf", self._on_tf, 200, suffix="tf")
        self._tf_rx.subscribe(
            TFMessage, "/tf_static", lambda m: self._on_tf(m, static=True), TF_STATIC_QOS
        )
        self._status_pub = StatusPublisher(self)
        self._info_pub = self.create_publisher(ReconstructionInfo, "~/info", LATCHED)
        self._status_timer = self.create_timer(
            1.0 / self._p("status_rate_hz"), self._publish_status
        )
        for name, srv, cb in (
            ("~/reset", Trigger, self._srv_reset),
            ("~/save", SaveVolume, self._srv_save),
            ("~/get_volume", GetVolume, self._srv_get_volume),
            ("~/get_mesh", GetMesh, self._srv_get_mesh),
            ("~/set_roi", SetRoi, self._srv_set_roi),
        ):
            self.create_service(srv, name, cb, callback_group=self._srv_group)
        self._publish_status()

    # -- parameters ------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = refuse_change(SPECS, validate, params, self._state_label)
        if refused is not None:
            return refused
        live = self._live
        if live is not None:
            for p in params:
                v = plain(p.value)
                if p.name == "time_offset_ms":
                    live.time_offset_ns = int(float(v) * 1e6)
                elif p.name == "fill_holes_radius_vox":
                    live.fill_holes_radius_vox = int(v)
                elif p.name == "surface_level":
                    live.surface_level = float(v)
        return SetParametersResult(successful=True)

    def _compounder(
        self, grid: VolumeGrid | None = None, spacing: float | None = None
    ) -> Compounder:
        sp = float(spacing or self._p("spacing_mm"))
        if grid is None and not self._p("auto_grow"):
            lo, hi = np.asarray(self._p("roi_min_mm")), np.asarray(self._p("roi_max_mm"))
            if not np.all(hi > lo):
                raise ValueError(
                    f"auto_grow is false: roi_max_mm {hi.tolist()} must exceed roi_min_mm "
                    f"{lo.tolist()} on every axis"
                )
            grid = VolumeGrid.from_bounds(lo, hi, sp)
        rect = [int(v) for v in self._p("clip_rectangle_px")]
        radius = self._p("fan_radius_px")
        fan = None
        if radius[1] > 0:
            apex, angles = self._p("fan_apex_px"), self._p("fan_angles_deg")
            fan = FanGeometry(apex[0], apex[1], radius[0], radius[1], angles[0], angles[1])
        return Compounder(
            grid=grid,
            spacing_mm=sp,
            roi=(rect[0], rect[1], rect[2], rect[3]) if rect[2] > 0 and rect[3] > 0 else None,
            fan=fan,
            interpolation=self._p("interpolation"),
            compounding=self._p("compounding"),
            num_classes=2,
            auto_grow=bool(self._p("auto_grow")) and grid is None,
            max_voxels=int(self._p("max_voxels")),
            grow_margin_mm=float(self._p("grow_margin_mm")),
        )

    def _placement(self) -> ImagePlacement:
        offset = tuple(float(v) for v in self._p("pixel_offset_px"))
        path = self._p("calibration_file")
        if path:
            ds = load_plus_device_set(path)
            cal = ImageCalibration.from_plus(
                ds, self._p("calibration_image_frame"), self._p("calibration_probe_frame")
            )
            return ImagePlacement(cal, (offset[0], offset[1]))
        rpy, t = self._p("image_to_probe_rpy_deg"), self._p("image_to_probe_translation_mm")
        spacing = self._p("image_spacing_mm")
        if spacing[0] > 0 and spacing[1] > 0:
            cal = ImageCalibration.from_params(spacing, rpy, t)
            return ImagePlacement(cal, (offset[0], offset[1]))
        mount = None if not any(rpy) and not any(t) else _rpy_matrix(rpy, t)
        return ImagePlacement(None, mount=mount)

    # -- TF --------------------------------------------------------------------------------
    def _on_tf(self, msg: Any, static: bool = False) -> None:
        for ts in msg.transforms:
            tr, q = ts.transform.translation, ts.transform.rotation
            try:
                T = transform_from_ros((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
            except ValueError:
                continue  # a malformed quaternion: not a pose (counted as missing later)
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
            return self._failed("invalid parameters: " + "; ".join(self._bad_start_params))
        try:
            placement = self._placement()
            comp = self._compounder()
            t0 = time.monotonic()
            warmup()  # compile / load the compounding kernels now, not on the first frame
            warm_s = time.monotonic() - t0
            mount_parent = self._p("probe_mount_parent")
            if mount_parent:
                self._poses.add(
                    mount_parent,
                    self._p("probe_frame"),
                    _rpy_matrix(
                        self._p("probe_mount_rpy_deg"), self._p("probe_mount_translation_mm")
                    ),
                    0,
                    static=True,
                )
            live = LiveReconstructor(
                comp,
                self._poses,
                placement,
                frames_channel=self._p("frames_channel"),
                mask_channel=self._p("mask_channel"),
                mask_feed=self._p("mask_transport") == "topic",
                world_frame=self._p("world_frame"),
                probe_frame=self._p("probe_frame"),
                time_offset_ms=self._p("time_offset_ms"),
                max_pose_gap_ms=self._p("max_pose_gap_ms"),
                max_pose_age_ms=self._p("max_pose_age_ms"),
                pose_wait_ms=self._p("pose_wait_ms"),
                mask_wait_ms=self._p("mask_wait_ms"),
                surface_period_s=self._p("surface_period_s"),
                surface_nice=self._p("surface_nice"),
                surface_level=self._p("surface_level"),
                fill_holes_radius_vox=self._p("fill_holes_radius_vox"),
                on_placed=self._on_placed,
                on_surface=self._on_surface,
            )
        except (PlusConfigError, ValueError, OSError) as exc:
            return self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed configure
            return self._failed(f"{type(exc).__name__}: {exc}")
        self._live = live
        if live.uses_masks and self._p("mask_transport") == "topic":
            self._mask_rx = TopicReceiver(
                self,
                Frame,
                self._p("mask_topic"),
                self._on_mask_msg,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
            )
        self._pubs = {
            "cloud": self.create_lifecycle_publisher(PointCloud2, "~/volume_cloud", LATCHED),
            "mesh": self.create_lifecycle_publisher(Marker, "~/thyroid_mesh", LATCHED),
            "plane": self.create_lifecycle_publisher(
                PointCloud2, "~/image_plane", qos_profile_sensor_data
            ),
        }
        self._mount_static_tf()
        self._last_error = ""
        self._state_label = "inactive"
        self.get_logger().info(
            f"configured: '{self._p('frames_channel')}' + "
            f"'{self._mask_rx.topic if self._mask_rx else self._p('mask_channel')}' -> "
            f"{self._p('spacing_mm')} mm grid in '{self._p('world_frame')}', "
            f"{self._p('interpolation')}/{self._p('compounding')} (kernels ready in {warm_s:.1f} s)"
        )
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _mount_static_tf(self) -> None:
        parent = self._p("probe_mount_parent")
        if not parent:
            return
        from geometry_msgs.msg import TransformStamped
        from us_acquisition.poses import transform_to_ros

        T = _rpy_matrix(self._p("probe_mount_rpy_deg"), self._p("probe_mount_translation_mm"))
        t_m, q = transform_to_ros(T)
        ts = TransformStamped()
        ts.header.stamp = self.get_clock().now().to_msg()
        ts.header.frame_id, ts.child_frame_id = parent, self._p("probe_frame")
        ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = (
            float(v) for v in t_m
        )
        r = ts.transform.rotation
        r.x, r.y, r.z, r.w = (float(v) for v in q)
        if "static" not in self._pubs:
            self._pubs["static"] = self.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self._pubs["static"].publish(TFMessage(transforms=[ts]))

    def start_work(self) -> None:
        assert self._live is not None
        self._live.start()

    def pause_work(self) -> None:
        if self._live is not None:
            self._live.pause()

    def destroy_node(self) -> None:
        self._tf_rx.close()
        super().destroy_node()

    def release(self) -> None:
        if self._mask_rx is not None:
            self._mask_rx.close()
            self._mask_rx = None
        live, self._live = self._live, None
        if live is not None:
            live.close()
        with self._mesh_lock:
            for key, pub in list(self._pubs.items()):
                if key == "static":
                    self.destroy_publisher(pub)
                else:
                    self.destroy_lifecycle_publisher(pub)
            self._pubs = {}
            self._surface = self._mesh_sent = None

    # -- mask_transport topic (receiver thread) ---------------------------------------------
    def _on_mask_msg(self, msg: Frame) -> None:
        live = self._live
        if live is None:
            return
        try:
            array, info = frame_from_msg(msg)
        except FrameTopicError as exc:
            live.stats.last_error = f"mask topic: {exc}"
            return
        live.put_mask(info, array)

    # -- outputs (worker threads) ----------------------------------------------------------
    def _on_placed(self, f: PlacedFrame) -> None:
        rate = float(self._p("image_plane_rate_hz"))
        pub = self._pubs.get("plane")
        now = time.monotonic()
        if pub is None or rate <= 0 or now - self._last_plane < 1.0 / rate:
            return
        self._last_plane = now
        h, w = f.grey.shape
        step = max(1, -(-w // int(self._p("image_plane_max_width"))))
        vs, us = np.mgrid[0:h:step, 0:w:step]
        pix = np.stack([us.ravel(), vs.ravel(), np.zeros(us.size), np.ones(us.size)])
        pts = (f.T_world_image @ pix)[:3].T / 1000.0
        vals = f.grey[::step, ::step].ravel().astype(np.float32)
        pub.publish(_cloud(pts, vals, self._p("world_frame"), stamp(f.host_timestamp_ns)))

    def _on_surface(self, s: SurfaceResult) -> None:
        now_msg = self.get_clock().now().to_msg()
        self._surface = s
        self._publish_mesh()
        period = float(self._p("cloud_period_s"))
        cloud_pub = self._pubs.get("cloud")
        now = time.monotonic()
        if cloud_pub is not None and period > 0 and now - self._last_cloud >= period:
            self._last_cloud = now
            self._publish_cloud(cloud_pub, now_msg)
        self._publish_info()

    def _publish_mesh(self) -> None:
        """The latest thyroid mesh as a Marker, built only while someone subscribes (RViz):
        its list of Point messages costs ~1 us per vertex in Python, every surface update.
        A subscriber that joins later gets the latest mesh from the status timer."""
        with self._mesh_lock:  # the surface thread, the status timer and the teardown
            pub, s = self._pubs.get("mesh"), self._surface
            if pub is None or s is None or s is self._mesh_sent:
                return
            if pub.get_subscription_count() == 0:
                return
            self._mesh_sent = s
            m = Marker()
            m.header.frame_id = self._p("world_frame")
            m.header.stamp = self.get_clock().now().to_msg()
            m.ns, m.id = "thyroid", 0
            m.type, m.action = Marker.TRIANGLE_LIST, Marker.ADD
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 1.0
            m.color = ColorRGBA(r=0.9, g=0.45, b=0.3, a=0.8)
            v: Any = s.vertices_mm[s.triangles.ravel()] / 1000.0 if len(s.triangles) else []
            m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in v]
            pub.publish(m)

    def _publish_cloud(self, pub: Any, now_msg: Any) -> None:
        live = self._live
        if live is None:
            return
        snap = live.snapshot(1, labels=False)
        if snap is None:
            return
        vol, _, grid = snap
        keep = vol >= float(self._p("cloud_min_intensity"))
        idx = np.argwhere(keep)
        limit = int(self._p("cloud_max_points"))
        if len(idx) > limit:
            idx = idx[:: -(-len(idx) // limit)]
        pts = grid.index_to_world(idx.astype(np.float64)) / 1000.0
        pub.publish(_cloud(pts, vol[tuple(idx.T)], self._p("world_frame"), now_msg))

    # -- services --------------------------------------------------------------------------
    def _srv_reset(self, req: Any, res: Any) -> Any:
        if self._live is None:
            res.success, res.message = False, f"not configured (state {self._state_label})"
            return res
        self._live.reset()
        res.success, res.message = True, "volume reset"
        self._publish_info()
        return res

    def _srv_save(self, req: Any, res: Any) -> Any:
        live = self._live
        if live is None:
            res.success, res.message = False, f"not configured (state {self._state_label})"
            return res
        formats = list(req.formats) or ["nrrd", "ply"]
        bad = [f for f in formats if f not in VOLUME_FORMATS]
        if bad:
            res.success = False
            res.message = f"unknown formats {bad}; use any of {', '.join(VOLUME_FORMATS)}"
            return res
        base = req.basename or "us_volume"
        if "/" in base or base.startswith("."):
            res.success, res.message = False, f"basename {base!r} must be a plain file name"
            return res
        out = Path(req.directory or self._p("output_dir") or "us_volumes")
        snap = live.snapshot(1, labels=True, fill_holes=True)
        if snap is None:
            res.success, res.message = False, "the volume is empty (no frame compounded yet)"
            return res
        vol, frac, grid = snap
        try:
            out.mkdir(parents=True, exist_ok=True)
            paths: list[str] = []
            surface = live.update_surface() if {"ply", "stl"} & set(formats) else None
            for fmt in formats:
                if fmt in ("ply", "stl"):
                    if surface is None or not len(surface.triangles):
                        continue
                    p = out / f"{base}_thyroid.{fmt}"
                    write_mesh(p, surface.vertices_mm, surface.triangles)
                    paths.append(str(p))
                    continue
                p = out / f"{base}.{fmt}"
                write_volume(p, np.clip(vol + 0.5, 0, 255).astype(np.uint8), grid)
                paths.append(str(p))
                if frac is not None:
                    lp = out / f"{base}_labels.{fmt}"
                    write_volume(lp, (frac >= live.surface_level).astype(np.uint8), grid)
                    paths.append(str(lp))
        except (OSError, ValueError) as exc:
            res.success, res.message = False, f"saving to {out}: {exc}"
            return res
        res.success, res.paths = True, paths
        res.message = f"wrote {len(paths)} files to {out}"
        return res

    def _srv_get_volume(self, req: Any, res: Any) -> Any:
        live = self._live
        if live is None:
            res.success, res.message = False, f"not configured (state {self._state_label})"
            return res
        ds = max(1, int(req.downsample))
        snap = live.snapshot(ds, labels=bool(req.labels))
        if snap is None:
            res.success, res.message = False, "the volume is empty (no frame compounded yet)"
            return res
        vol, frac, grid = snap
        v = Volume()
        v.header.frame_id = self._p("world_frame")
        v.header.stamp = self.get_clock().now().to_msg()
        v.dims = [int(n) for n in vol.shape]
        v.spacing_mm = [float(x) for x in grid.spacing_mm]
        v.origin_mm = [float(x) for x in grid.origin_mm]
        v.direction = [float(x) for x in np.asarray(grid.direction).ravel()]
        order = "F"  # x fastest
        if req.intensity:
            v.intensity.frombytes(np.clip(vol + 0.5, 0, 255).astype(np.uint8).tobytes(order))
        if frac is not None:
            v.labels.frombytes(np.clip(frac * 255 + 0.5, 0, 255).astype(np.uint8).tobytes(order))
        s = live.surface
        v.thyroid_volume_ml = s.volume_ml if s is not None else 0.0
        res.success, res.message, res.volume = True, "", v
        return res

    def _srv_get_mesh(self, req: Any, res: Any) -> Any:
        live = self._live
        if live is None:
            res.success, res.message = False, f"not configured (state {self._state_label})"
            return res
        s = live.update_surface()
        if s is None:
            res.success, res.message = False, "the volume is empty (no frame compounded yet)"
            return res
        m = Mesh()
        m.header.frame_id = self._p("world_frame")
        m.header.stamp = self.get_clock().now().to_msg()
        m.vertices_mm.frombytes(s.vertices_mm.astype("<f4").tobytes())
        m.triangles.frombytes(s.triangles.astype("<u4").tobytes())
        m.volume_ml = s.volume_ml
        res.success, res.mesh = True, m
        res.message = "" if len(s.triangles) else "no thyroid in the volume yet"
        return res

    def _srv_set_roi(self, req: Any, res: Any) -> Any:
        live = self._live
        if live is None:
            res.success, res.message = False, f"not configured (state {self._state_label})"
            return res
        sp = float(req.spacing_mm) if req.spacing_mm > 0 else float(self._p("spacing_mm"))
        try:
            if req.auto_grow:
                comp = self._compounder(None, sp)
                comp.auto_grow = True
            else:
                lo, hi = np.asarray(req.min_mm, float), np.asarray(req.max_mm, float)
                if not np.all(hi > lo):
                    raise ValueError(f"max_mm {hi.tolist()} must exceed min_mm {lo.tolist()}")
                comp = self._compounder(VolumeGrid.from_bounds(lo, hi, sp), sp)
        except ValueError as exc:
            res.success, res.message = False, str(exc)
            return res
        live.replace_compounder(comp)
        res.success = True
        res.message = (
            "auto-grow" if req.auto_grow else f"grid {comp.grid.dims if comp.grid else ''}"
        )
        self._publish_info()
        return res

    # -- status ----------------------------------------------------------------------------
    def _publish_info(self) -> None:
        live = self._live
        if live is None:
            return
        i = ReconstructionInfo()
        i.header.frame_id = self._p("world_frame")
        i.header.stamp = self.get_clock().now().to_msg()
        st = live.stats
        i.frames_used, i.frames_skipped = st.frames_used, st.frames_skipped
        i.skip_reasons = [KeyValue(key=k, value=str(v)) for k, v in sorted(st.skipped.items())]
        i.compound_p50_ms = percentile(st.compound_ms, 50)
        i.latency_p95_ms = percentile(st.latency_ms, 95)
        s = live.surface
        grid = live.compounder.grid
        if grid is not None:
            i.dims = [int(n) for n in grid.dims]
            i.spacing_mm = [float(x) for x in grid.spacing_mm]
            i.origin_mm = [float(x) for x in grid.origin_mm]
        if s is not None:
            i.thyroid_volume_ml, i.ellipsoid_volume_ml = s.volume_ml, s.ellipsoid_ml
            if s.lobes:
                big = max(s.lobes, key=lambda r: r[0])
                i.length_mm, i.width_mm, i.depth_mm = (float(x) for x in big[1:4])
            i.voxels_filled, i.voxels_total = s.voxels_filled, s.voxels_total
        self._info_pub.publish(i)

    def _publish_status(self) -> None:
        s = NodeStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.node_name = self.get_fully_qualified_name()
        s.state = STATE_IDS.get(self._state_label, NodeStatus.STATE_UNKNOWN)
        s.state_label = self._state_label
        s.last_error = self._last_error
        live = self._live
        if live is not None:
            st = live.stats
            s.frames_in = st.frames_seen
            s.frames_out = st.frames_used
            s.frames_dropped = st.frames_skipped
            s.latency_p50_ms = percentile(st.latency_ms, 50)
            s.latency_p95_ms = percentile(st.latency_ms, 95)
            s.last_error = st.last_error or self._last_error
            s.values.append(KeyValue(key="worker_state", value=st.state))
            s.values.append(KeyValue(key="frames_without_mask", value=str(st.unlabelled)))
            s.values.append(
                KeyValue(key="compound_p50_ms", value=f"{percentile(st.compound_ms, 50):.2f}")
            )
            for k, v in sorted(st.skipped.items()):
                s.values.append(KeyValue(key=f"skipped_{k}", value=str(v)))
            self._publish_info()
        self._status_pub.publish(s)
        self._publish_mesh()  # to a subscriber that joined since the last surface


def main(args: list[str] | None = None) -> int:
    return spin_node(ReconstructionNode, threads=3, args=args)


if __name__ == "__main__":
    sys.exit(main())
