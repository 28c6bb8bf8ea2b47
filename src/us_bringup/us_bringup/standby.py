"""A warm spare of a node process, for ``us-run --respawn``.

    python -m us_bringup.standby <console_script> [node arguments ...]

The spare imports the console script's module (rclpy, torch, numba, the model code: the
seconds a fresh process spends before it can serve), prints ``standby ready``, then waits
on stdin without creating a ROS node. (It imports at normal priority: threads that the
imports start, e.g. torch's, keep the priority of the thread that started them, and an
unprivileged process cannot raise it back; the runner warms one spare at a time.) A line
``go`` makes it run the node exactly as the console script would (``sys.argv =
[<console_script>, *arguments]``). End of input (the runner has gone)
makes it exit quietly, so spares never outlive their runner.

What a respawn costs then is ``rclpy.init``, the node's constructor and its lifecycle
transitions, not the interpreter start and the imports (docs/reliability.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

READY = "standby ready"
GO = "go"


def _load(script: str) -> Callable[[], Any]:
    eps = entry_points(group="console_scripts", name=script)
    if not eps:
        raise SystemExit(f"us_bringup.standby: no console script named {script!r}")
    fn: Callable[[], Any] = next(iter(eps)).load()
    return fn


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(
            "usage: python -m us_bringup.standby <console_script> [arguments ...]", file=sys.stderr
        )
        return 2
    script, rest = args[0], args[1:]
    fn = _load(script)
    print(READY, flush=True)
    for line in sys.stdin:
        if line.strip() == GO:
            break
    else:
        return 0  # the runner closed our stdin: not needed any more
    sys.argv = [script, *rest]
    rc = fn()
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
