"""Fixtures for frame-channel tests: unique channel names, producer processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def channel_name() -> str:
    return f"test/{uuid.uuid4().hex[:12]}"


class Proc:
    """A child process speaking JSON lines on stdout."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "us_frame_channel.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def wait_event(self, event: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """Block until the child prints {"event": event}; fail with its stderr if it dies."""
        import selectors
        import time

        assert self.popen.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.popen.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = self.popen.stdout.readline()
            if not line:
                err = self.popen.stderr.read() if self.popen.stderr else ""
                raise AssertionError(f"child exited before '{event}': {err}")
            msg = json.loads(line)
            if msg.get("event") == event:
                return msg
        raise AssertionError(f"no '{event}' from child within {timeout_s} s")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)

    def finish(self, timeout_s: float = 30.0) -> int:
        return self.popen.wait(timeout=timeout_s)


@pytest.fixture
def spawn() -> Iterator[Any]:
    procs: list[Proc] = []

    def _spawn(*args: str) -> Proc:
        p = Proc(list(args))
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        p.kill()
