"""``us-run`` in a subprocess, watched from outside: used by the system test, the fault
tests and the system benchmark (no rclpy)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GraphProcess:
    """``us-run <args>`` in a subprocess; its output is kept with the (monotonic) time of
    each line, and copied to ``log`` when given. ``prefix`` runs it under another command
    (e.g. ``ip netns exec <ns>``); ``env`` replaces the environment."""

    def __init__(
        self,
        args: list[str],
        log: Path | None = None,
        *,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [*(prefix or []), "us-run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env if env is not None else os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: list[tuple[float, str]] = []
        self._log = log.open("w") if log is not None else None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))
            if self._log is not None:
                self._log.write(line)
        if self._log is not None:
            self._log.flush()

    @property
    def text(self) -> str:
        """Everything the graph printed so far."""
        return "".join(line for _, line in list(self.lines))

    def pids(self, node: str) -> list[int]:
        """Process ids the runner started ``node`` with, oldest first (respawns add more)."""
        pat = re.compile(rf"\[us-run\] started {node} \(pid (\d+)\)")
        return [int(m.group(1)) for _, line in list(self.lines) if (m := pat.search(line))]

    def when(self, text: str, after: float = 0.0) -> float | None:
        """Monotonic time of the first output line containing ``text`` after ``after``."""
        for t, line in list(self.lines):
            if t >= after and text in line:
                return t
        return None

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGINT (the runner's clean stop), kill after ``timeout_s``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=5)
        if self._log is not None:
            self._log.close()
        return int(self.proc.returncode)
