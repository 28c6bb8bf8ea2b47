"""The warm spare of ``us-run --respawn`` (``us_bringup.standby``): it imports the node's
code, says it is ready, runs the console script on ``go`` with the node's arguments, and
exits quietly when its runner goes away."""

from __future__ import annotations

import subprocess
import sys

from us_bringup import standby


def _spare(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "us_bringup.standby", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_spare_runs_the_console_script_on_go() -> None:
    p = _spare("us-channel", "--help")
    assert p.stdout is not None and p.stdin is not None
    assert p.stdout.readline().strip() == standby.READY
    p.stdin.write(standby.GO + "\n")
    p.stdin.flush()
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert "usage: us-channel" in out  # argv[0] is the console script's name


def test_spare_exits_quietly_when_its_input_ends() -> None:
    p = _spare("us-channel", "--help")
    assert p.stdout is not None
    assert p.stdout.readline().strip() == standby.READY
    out, _ = p.communicate(input="", timeout=60)  # the runner is gone: end of input
    assert p.returncode == 0 and out == "", out


def test_unknown_console_script_is_a_clear_error() -> None:
    p = _spare("no-such-node")
    out, _ = p.communicate(input="", timeout=60)
    assert p.returncode != 0 and "no console script named 'no-such-node'" in out
