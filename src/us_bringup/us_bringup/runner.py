"""``us-run``: start the graph's nodes from config/*.yaml without ``ros2 launch``.

Each node runs in its own process (its console script, as ``ros2 run`` would start it),
with its YAML from ``config/``; the runner drives lifecycle nodes to active through their
``change_state`` services, prefixes and forwards their output, and on Ctrl-C (or SIGTERM)
takes them down cleanly: deactivate, cleanup, shutdown, then SIGINT, then SIGTERM after a
timeout. With ``--respawn`` a node that dies is started again and brought back to active.

    us-run                                  # every node, config from the workspace
    us-run --nodes acquisition --set acquisition.source=synthetic --set acquisition.fps=60
    us-run --duration 20                    # stop by itself after 20 s (demos, tests)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import standby
from .graph import DEFAULT_NAMESPACE, GRAPH, NODES, NodeEntry


def _config_dir() -> Path:
    root = os.environ.get("US_WS_ROOT")
    if root and (Path(root) / "config").is_dir():
        return Path(root) / "config"
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("us_bringup")) / "config"
    except Exception:  # noqa: BLE001
        return Path.cwd() / "config"


def dds_profile_path(name: str) -> Path | None:
    """A Fast DDS profile file: ``name`` itself, or ``config/fastdds/<name>.xml``."""
    direct = Path(name)
    if direct.is_file():
        return direct.resolve()
    shipped = _config_dir() / "fastdds" / f"{name}.xml"
    return shipped if shipped.is_file() else None


def finishes(fn: Any, timeout_s: float) -> bool:
    """Run ``fn`` in a daemon thread; True if it returned within ``timeout_s``."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(timeout_s)
    return not t.is_alive()


def _executable(entry: NodeEntry) -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix(entry.package)
    except PackageNotFoundError:
        raise SystemExit(
            f"us-run: package {entry.package} is not built (run `make setup`)"
        ) from None
    exe = Path(prefix) / "lib" / entry.package / entry.executable
    if not exe.exists():
        raise SystemExit(f"us-run: {exe} missing (run `make setup`)")
    return str(exe)


#: lifecycle_msgs/State ids a bring-up transition starts from and ends in
_START_STATE = {"configure": 1, "activate": 2}
_END_STATE = {"configure": 2, "activate": 3}
#: s without an answer to a transition before the node is asked whether it got it
_RESEND_CHECK_S = 1.0
#: lifecycle state id of ACTIVE (lifecycle_msgs/State, us_interfaces/NodeStatus)
_STATE_ACTIVE = 3
#: node arguments of a respawned process (after --ros-args): it activates by itself
AUTOSTART = ("-p", "autostart:=true")
#: warm spares of a node that die unused before the runner stops making them
_MAX_SPARE_FAILURES = 3


def _ros_value(entry: NodeEntry, name: str, text: str) -> str:
    """``text`` for ``-p name:=text`` (ROS parses it as YAML). A whole number given for a
    float parameter (``acquisition.fps=15``) is written ``15.0``: ROS would otherwise
    type it as an integer and the node would refuse it."""
    spec = None
    if entry.params_module:
        try:
            import importlib

            specs = importlib.import_module(entry.params_module).PARAMETERS
            spec = next((s for s in specs if s.name == name), None)
        except ImportError:
            spec = None
    if spec is not None and isinstance(spec.default, float) and not isinstance(spec.default, bool):
        try:
            int(text.strip())
        except ValueError:
            return text
        return f"{text.strip()}.0"
    return text


@dataclass
class Child:
    entry: NodeEntry
    args: list[str]
    proc: subprocess.Popen[str] | None = None
    restarts: int = 0
    threads: list[threading.Thread] = field(default_factory=list)
    #: warm spare (``us_bringup.standby``) that takes over when ``proc`` dies
    spare: subprocess.Popen[str] | None = None
    spare_ready: threading.Event = field(default_factory=threading.Event)
    spare_failures: int = 0


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ns = "/" + args.namespace.strip("/") if args.namespace.strip("/") else ""
        self.stopping = threading.Event()
        self.teardown_hung = False  # the DDS teardown did not finish (see shut_down)
        #: warm spares: with --respawn unless --no-standby
        self.standby = bool(getattr(args, "respawn", False)) and not getattr(
            args, "no_standby", False
        )
        self._status_subs: dict[str, tuple[Any, list[tuple[int, int]]]] = {}
        self.children: list[Child] = []
        self.lock = threading.Lock()
        self._rclpy: Any = None
        self._node: Any = None

    # -- output ------------------------------------------------------------------------
    def say(self, text: str) -> None:
        with self.lock:
            print(f"[us-run] {text}", flush=True)

    def _pump(self, child: Child, stream: Any, spare: bool = False) -> None:
        for line in stream:
            if spare and not child.spare_ready.is_set() and line.strip() == standby.READY:
                child.spare_ready.set()
                self.say(f"{child.entry.name}: warm spare ready")
                continue
            with self.lock:
                sys.stdout.write(f"[{child.entry.name}] {line}")
                sys.stdout.flush()

    # -- processes -----------------------------------------------------------------------
    def _command(self, entry: NodeEntry) -> list[str]:
        cfg = _config_dir() / entry.params_file
        cmd = [_executable(entry), "--ros-args", "-r", f"__node:={entry.name}"]
        if self.ns:
            cmd += ["-r", f"__ns:={self.ns}"]
        if cfg.exists():
            cmd += ["--params-file", str(cfg)]
        cmd += ["--log-level", self.args.log_level]
        for item in self.args.set or []:
            target, _, assignment = item.partition(".")
            if target == entry.name:
                key, _, value = assignment.partition("=")
                cmd += ["-p", f"{key}:={_ros_value(entry, key, value)}"]
        return cmd

    def start(self, child: Child, extra: tuple[str, ...] = ()) -> None:
        child.proc = subprocess.Popen(
            [*child.args, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            start_new_session=True,
        )
        t = threading.Thread(target=self._pump, args=(child, child.proc.stdout), daemon=True)
        t.start()
        child.threads.append(t)
        self.say(f"started {child.entry.name} (pid {child.proc.pid})")

    # -- warm spares (--respawn) ---------------------------------------------------------------
    def start_spare(self, child: Child) -> None:
        """A process that has imported the node's code and waits (``us_bringup.standby``)."""
        child.spare_ready.clear()
        child.spare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "us_bringup.standby",
                child.entry.executable,
                *child.args[1:],
                *AUTOSTART,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            start_new_session=True,
        )
        t = threading.Thread(target=self._pump, args=(child, child.spare.stdout, True), daemon=True)
        t.start()
        child.threads.append(t)

    def tend_spares(self) -> None:
        """Keep a warm spare per node, warming one at a time: each is seconds of CPU
        (imports) that the running graph would otherwise feel all at once."""
        if not self.standby:
            return
        for c in self.children:
            if c.spare is not None and c.spare.poll() is None and not c.spare_ready.is_set():
                return  # one is warming up
        for c in self.children:
            if c.spare is not None and c.spare.poll() is None:
                continue
            if c.spare is not None:  # died before it was needed
                c.spare_failures += 1
                c.spare = None
                if c.spare_failures == _MAX_SPARE_FAILURES:
                    self.say(f"{c.entry.name}: its warm spare keeps failing; respawns start fresh")
            if c.spare_failures >= _MAX_SPARE_FAILURES:
                continue
            self.start_spare(c)
            return

    def promote_spare(self, child: Child) -> bool:
        """Make a ready spare the node's process; False (and no spare) if there is none."""
        spare, child.spare = child.spare, None
        if spare is None or spare.poll() is not None or not child.spare_ready.is_set():
            if spare is not None and spare.poll() is None:
                self._drop_spare(spare)
            return False
        try:
            assert spare.stdin is not None
            spare.stdin.write(standby.GO + "\n")
            spare.stdin.flush()
        except OSError:
            self._drop_spare(spare)
            return False
        child.proc = spare
        self.say(f"started {child.entry.name} (pid {spare.pid}) from its warm spare")
        return True

    @staticmethod
    def _drop_spare(spare: subprocess.Popen[str]) -> None:
        try:
            if spare.stdin is not None:
                spare.stdin.close()  # end of input: a waiting spare exits by itself
            spare.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            spare.kill()
            spare.wait()

    # -- lifecycle -----------------------------------------------------------------------
    def _ros(self) -> Any:
        if self._node is None:
            import rclpy

            rclpy.init(args=None, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
            self._rclpy = rclpy
            self._node = rclpy.create_node(f"us_run_{os.getpid()}")
        return self._node

    def transition(self, entry: NodeEntry, label: str, timeout_s: float) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState

        ids = {
            "configure": Transition.TRANSITION_CONFIGURE,
            "activate": Transition.TRANSITION_ACTIVATE,
            "deactivate": Transition.TRANSITION_DEACTIVATE,
            "cleanup": Transition.TRANSITION_CLEANUP,
            "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
        }
        node = self._ros()
        client = node.create_client(ChangeState, f"{self.ns}/{entry.name}/change_state")
        try:
            deadline = time.monotonic() + timeout_s
            while not client.wait_for_service(timeout_sec=0.2):
                if self.stopping.is_set() and label in ("configure", "activate"):
                    self.say(f"{entry.name}: {label} skipped, the graph is stopping")
                    return False
                if time.monotonic() > deadline:
                    self.say(f"{entry.name}: no lifecycle service within {timeout_s:.0f} s")
                    return False
            req = ChangeState.Request()
            req.transition.id = ids[label]
            futs = [client.call_async(req)]
            # A request can be lost: after a respawn the dead process's service stays in
            # the ROS graph for a while, so the service looks ready and the request goes
            # out before the new process serves it. So can a response ("failed to send
            # response (timeout)" in the node's log). While no answer comes, ask the node
            # its state: if it answers from the state this transition starts from, the
            # request never arrived: send it again; if from the state it ends in, the
            # transition happened and only the response was lost.
            start_state = _START_STATE.get(label)
            state_client = (
                node.create_client(GetState, f"{self.ns}/{entry.name}/get_state")
                if start_state is not None
                else None
            )
            state_futs: list[Any] = []
            next_check = time.monotonic() + _RESEND_CHECK_S
            lost = False  # the node made the transition but its answer was lost
            try:
                while not any(f.done() for f in futs):
                    self._rclpy.spin_once(node, timeout_sec=0.05)
                    now = time.monotonic()
                    if now > deadline:
                        self.say(f"{entry.name}: {label} timed out after {timeout_s:.0f} s")
                        return False
                    if state_client is None or now < next_check:
                        continue
                    next_check = now + _RESEND_CHECK_S
                    answered = [f.result() for f in state_futs if f.done()]
                    state_futs = [f for f in state_futs if not f.done()]
                    state = answered[-1].current_state.id if answered else None
                    if state == _END_STATE[label]:
                        self.say(f"{entry.name}: {label} answer lost; the node is {label}d")
                        lost = True
                        break
                    if state == start_state:
                        futs.append(client.call_async(req))
                        self.say(f"{entry.name}: no answer to {label}; sent again")
                    state_futs.append(state_client.call_async(GetState.Request()))
            finally:
                if state_client is not None:
                    node.destroy_client(state_client)
            ok = any(f.done() and f.result().success for f in futs) or lost
            self.say(f"{entry.name}: {label} {'ok' if ok else 'FAILED (see its log above)'}")
            return ok
        finally:
            node.destroy_client(client)

    def watch_status(self, child: Child) -> list[tuple[int, int]]:
        """``(stamp ns, state)`` of the node's latest ``~/status`` messages, from a
        subscription made once (at bring-up, so that it is matched before a respawn)."""
        from us_acquisition.node_common import LATCHED

        from us_interfaces.msg import NodeStatus

        name = child.entry.name
        if name not in self._status_subs:
            stamps: list[tuple[int, int]] = []

            def on_status(m: Any) -> None:
                stamps.append((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m.state))
                del stamps[:-8]

            sub = self._ros().create_subscription(
                NodeStatus, f"{self.ns}/{name}/status", on_status, LATCHED
            )
            self._status_subs[name] = (sub, stamps)
        return self._status_subs[name][1]

    def wait_active(self, child: Child, since_ns: int) -> bool:
        """Wait until the node's new process reports itself active (a ``~/status`` stamped
        after ``since_ns`` with state ACTIVE): respawned processes configure and activate
        by themselves (``autostart``), so that they work as soon as they are constructed
        instead of when DDS discovery lets the runner's lifecycle requests reach them
        (1-3 s on a busy machine). Bounded by ``--transition-timeout``."""
        node = self._ros()
        stamps = self.watch_status(child)
        deadline = time.monotonic() + self.args.transition_timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            if any(t >= since_ns and st == _STATE_ACTIVE for t, st in stamps):
                return True
            if child.proc is not None and child.proc.poll() is not None:
                return False
            self._rclpy.spin_once(node, timeout_sec=0.05)
        return False

    def bring_up(self, child: Child) -> bool:
        if not child.entry.lifecycle:
            return True
        t = self.args.transition_timeout
        return self.transition(child.entry, "configure", t) and self.transition(
            child.entry, "activate", t
        )

    def shut_down(self) -> None:
        self.stopping.set()
        for child in self.children:
            spare, child.spare = child.spare, None
            if spare is not None:
                self._drop_spare(spare)
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            if child.entry.lifecycle:
                for label in ("deactivate", "cleanup", "shutdown"):
                    self.transition(child.entry, label, 5.0)
            proc.send_signal(signal.SIGINT)
        for child in self.children:
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.say(f"{child.entry.name} did not stop in 10 s: SIGTERM")
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.say(f"{child.entry.name} exited with code {proc.returncode}")
        if self._node is not None:
            node, rclpy_mod = self._node, self._rclpy

            def teardown() -> None:
                node.destroy_node()
                rclpy_mod.shutdown()

            if not finishes(teardown, 5.0):
                # Fast DDS's TCP transport (LARGE_DATA, --dds-profile large_frames) can hang
                # while its participant is destroyed (eProsima/Fast-DDS#2010)
                self.say("DDS teardown did not finish in 5 s; exiting without it")
                self.teardown_hung = True

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> int:
        names = (
            [n for n in self.args.nodes.split(",") if n]
            if self.args.nodes
            else [g.name for g in GRAPH]
        )
        unknown = [n for n in names if n not in NODES]
        if unknown:
            self.say(f"unknown nodes {unknown}; known: {', '.join(NODES)}")
            return 2
        for name in names:
            entry = NODES[name]
            self.children.append(Child(entry, self._command(entry)))
        rc = 0
        try:
            for child in self.children:
                self.start(child)
            for child in self.children:
                if not self.bring_up(child):
                    if self.stopping.is_set():
                        return rc  # Ctrl-C during bring-up: not a failure
                    rc = 1
                    if not self.args.keep_going:
                        self.say(
                            "a node failed to come up; stopping (use --keep-going to continue)"
                        )
                        return rc
            if self.standby:
                for child in self.children:
                    if child.entry.lifecycle:
                        self.watch_status(child)
            self.say(
                "graph is up; Ctrl-C stops it"
                + (
                    f" (stops by itself after {self.args.duration:g} s)"
                    if self.args.duration
                    else ""
                )
            )
            t_end = time.monotonic() + self.args.duration if self.args.duration else None
            while not self.stopping.is_set():
                if t_end is not None and time.monotonic() >= t_end:
                    break
                for child in self.children:
                    if child.proc is not None and child.proc.poll() is not None:
                        code = child.proc.returncode
                        if self.args.respawn and child.restarts < self.args.max_restarts:
                            child.restarts += 1
                            self.say(
                                f"{child.entry.name} died (exit {code}); respawn #{child.restarts}"
                            )
                            since = time.time_ns()
                            if not self.promote_spare(child):
                                self.start(child, AUTOSTART)
                            if child.entry.lifecycle:
                                if self.wait_active(child, since):
                                    self.say(f"{child.entry.name}: activate ok (autostart)")
                                elif child.proc is not None and child.proc.poll() is None:
                                    self.bring_up(child)  # not active by itself: drive it
                        else:
                            self.say(f"{child.entry.name} exited (code {code}); stopping the graph")
                            rc = rc or 1
                            self.stopping.set()
                self.tend_spares()
                self.stopping.wait(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.say("stopping")
            self.shut_down()
        return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="us-run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", default="", help=f"comma-separated subset of: {', '.join(NODES)}")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="ROS namespace of the nodes")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument(
        "--set",
        action="append",
        metavar="NODE.PARAM=VALUE",
        help="override a parameter, e.g. acquisition.source=synthetic (repeatable)",
    )
    p.add_argument(
        "--dds-profile",
        default="",
        metavar="NAME|PATH",
        help="Fast DDS XML profile for this runner and its nodes: a file, or the name of one "
        "in config/fastdds/ (large_frames: whole frames between hosts, docs/cross-host.md)",
    )
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many s (0 = never)")
    p.add_argument("--respawn", action="store_true", help="restart nodes that die")
    p.add_argument(
        "--no-standby",
        action="store_true",
        help="with --respawn: no warm spare per node (saves its memory; a respawn then "
        "starts a fresh process, seconds slower)",
    )
    p.add_argument("--max-restarts", type=int, default=5)
    p.add_argument(
        "--keep-going", action="store_true", help="keep running if a node fails to come up"
    )
    p.add_argument(
        "--transition-timeout", type=float, default=30.0, help="s per lifecycle transition"
    )
    args = p.parse_args(argv)
    if args.dds_profile:
        profile = dds_profile_path(args.dds_profile)
        if profile is None:
            p.error(f"--dds-profile {args.dds_profile}: no such file or config/fastdds/ profile")
        # before rclpy starts here; the nodes inherit it
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    runner = Runner(args)

    def _term(signum: int, frame: Any) -> None:
        runner.stopping.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    rc = runner.run()
    if runner.teardown_hung:  # a stuck DDS thread must not keep the process alive
        sys.stdout.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
