"""Two "hosts" on one machine: Linux network namespaces joined by a veth pair (no rclpy).

Used by the cross-host test and benchmark: a node started in host ``a`` and one in host
``b`` share nothing but a virtual Ethernet link, so DDS has to carry the frames over the
network (the veth byte counters prove it). Shared memory (``/dev/shm``) is *not*
separated by network namespaces: the cross-host consumer must use a topic input.

Needs root (CAP_NET_ADMIN) and ``ip`` (iproute2); :func:`unavailable` says why not.

    with HostPair() as hosts:
        subprocess.run(hosts.cmd("b", ["python", "-c", "..."]), env=hosts.env())
        print(hosts.rx_bytes("b"))
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from typing import Any

__all__ = ["HostPair", "unavailable"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (None if they can)."""
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_NET_ADMIN)"
    probe = f"usprobe{uuid.uuid4().hex[:6]}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "delete", probe, check=False)
    return None


class HostPair:
    """Namespaces ``<tag>a`` (10.<n>.<m>.1/24) and ``<tag>b`` (.2) linked by a veth pair,
    loopback up and a multicast route on the link (DDS discovery uses UDP multicast)."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"us{uuid.uuid4().hex[:6]}"
        self.ns = {"a": f"{self.tag}a", "b": f"{self.tag}b"}
        self.dev = {"a": f"{self.tag}va", "b": f"{self.tag}vb"}
        h = int(uuid.uuid4().hex[:4], 16)
        net = f"10.{200 + h % 50}.{h // 50 % 250}"
        self.addr = {"a": f"{net}.1", "b": f"{net}.2"}
        self._up = False

    def __enter__(self) -> HostPair:
        self.up()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def up(self) -> None:
        try:
            for host in ("a", "b"):
                _ip("netns", "add", self.ns[host])
            self._up = True
            _ip("link", "add", self.dev["a"], "type", "veth", "peer", "name", self.dev["b"])
            for host in ("a", "b"):
                ns, dev = self.ns[host], self.dev[host]
                _ip("link", "set", dev, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", dev)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
                _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
        except subprocess.CalledProcessError as exc:
            self.down()
            raise RuntimeError(f"cannot set up network namespaces: {exc.stderr.strip()}") from exc

    def down(self) -> None:
        """Delete both namespaces (the veth pair and every socket in them go with them)."""
        if self._up:
            for ns in self.ns.values():
                _ip("netns", "delete", ns, check=False)
            self._up = False

    def limit_rate(self, rate: str, burst: str = "1mb", latency: str = "20ms") -> None:
        """Shape both directions of the link to ``rate`` (tc token bucket, e.g. "1gbit": a
        Gigabit Ethernet link between a scanner PC and a workstation). ``burst`` must hold
        a whole frame: a NIC sends one at line rate (a 256 KB bucket made 307 KB frames
        wait for tokens: capture -> frame taken p95 44 ms instead of 3.4 ms)."""
        for host in ("a", "b"):
            r = subprocess.run(
                self.cmd(
                    host,
                    [
                        "tc",
                        "qdisc",
                        "replace",
                        "dev",
                        self.dev[host],
                        "root",
                        "tbf",
                        "rate",
                        rate,
                        "burst",
                        burst,
                        "latency",
                        latency,
                    ],
                ),
                capture_output=True,
                text=True,
                timeout=20,
            )
            if r.returncode != 0:
                raise RuntimeError(f"cannot shape the link to {rate}: {r.stderr.strip()}")

    def cmd(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` run inside ``host`` ("a" or "b")."""
        return ["ip", "netns", "exec", self.ns[host], *argv]

    @staticmethod
    def env(**extra: str) -> dict[str, str]:
        """The environment for DDS across the link: discovery beyond localhost."""
        e = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", PYTHONUNBUFFERED="1")
        e.pop("ROS_LOCALHOST_ONLY", None)
        e.update(extra)
        return e

    def us_top(self, host: str, env: dict[str, str], wait_s: float = 3.0) -> dict[str, Any]:
        """``us-top --once --json`` inside ``host``: node name -> its status row; ``{}``
        when it saw nothing or did not finish within 30 s (callers retry to a deadline)."""
        try:
            r = subprocess.run(
                self.cmd(host, ["us-top", "--once", "--json", "--wait", f"{wait_s:g}"]),
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
            )
            rows = json.loads(r.stdout or "[]")
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return {}
        return {row["node"]: row for row in rows}

    def counters(self, host: str) -> dict[str, int]:
        """Bytes and packets ``host``'s end of the link received / sent so far."""
        r = _ip("-n", self.ns[host], "-j", "-s", "link", "show", "dev", self.dev[host])
        stats = json.loads(r.stdout)[0]["stats64"]
        return {
            "rx_bytes": int(stats["rx"]["bytes"]),
            "tx_bytes": int(stats["tx"]["bytes"]),
            "rx_packets": int(stats["rx"]["packets"]),
            "tx_packets": int(stats["tx"]["packets"]),
        }

    def rx_bytes(self, host: str) -> int:
        return self.counters(host)["rx_bytes"]
