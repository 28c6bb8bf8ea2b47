"""``us-channel``: produce, consume or inspect a frame channel from the shell.

us-channel produce --name us/frames --size 1920x1080 --format uyvy --fps 60
us-channel consume --name us/frames --mode latest --count 300
us-channel demo            # a producer and two consumer processes for a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np

from .config import ChannelConfig
from .errors import ChannelError
from .layout import PixelFormat
from .reader import FrameReader, ReadMode
from .testing import pattern_frame
from .writer import FrameWriter


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None


def _produce(args: argparse.Namespace) -> int:
    fmt = PixelFormat.parse(args.format)
    width, height = args.size
    cfg = ChannelConfig.for_frames(
        args.name, width, height, fmt, max_consumers=args.consumers, buffer_frames=args.buffer
    )
    frames = [pattern_frame(fmt, width, height, i) for i in range(args.patterns)]
    period = 1.0 / args.fps if args.fps > 0 else 0.0
    with FrameWriter(cfg) as writer:
        writer.set_metadata({"device": "us-channel produce", "pattern_count": args.patterns})
        print(json.dumps({"event": "ready", "epoch": writer.epoch}), flush=True)
        deadline = time.monotonic() + 30.0
        while writer.consumer_count() < args.wait_consumers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{args.wait_consumers} consumers did not connect in 30 s")
            time.sleep(0.01)  # start-up only: wait for consumers to subscribe
        t0 = time.monotonic()
        seq = 0
        while args.count <= 0 or seq < args.count:
            if period:
                delay = t0 + seq * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            seq = (
                writer.publish(
                    frames[seq % len(frames)],
                    fmt,
                    spacing_mm=(args.spacing_mm, args.spacing_mm),
                    device_timestamp_ns=seq * 1000,
                )
                + 1
            )
        print(json.dumps({"event": "done", "published": seq}), flush=True)
        if args.linger > 0:
            time.sleep(args.linger)
    return 0


def _consume(args: argparse.Namespace) -> int:
    with FrameReader(args.name, mode=ReadMode(args.mode), wait_s=args.wait) as reader:
        print(json.dumps({"event": "ready"}), flush=True)
        lat: list[int] = []
        deadline = time.monotonic() + args.timeout
        n = 0
        bad = 0
        while n < args.count and time.monotonic() < deadline:
            frame = reader.read(timeout_s=0.5)
            if frame is None:
                continue
            with frame:
                lat.append(frame.latency_ns())
                if args.verify:
                    want = pattern_frame(
                        frame.info.pixel_format,
                        frame.info.width,
                        frame.info.height,
                        frame.info.seq % args.patterns,
                    )
                    bad += int(not np.array_equal(frame.array, want))
                if args.hold_s > 0:
                    time.sleep(args.hold_s)
            n += 1
        arr = np.array(lat or [0], dtype=np.float64) / 1000.0
        print(
            json.dumps(
                {
                    "event": "done",
                    "received": reader.stats.received,
                    "dropped": reader.stats.dropped,
                    "skipped": reader.stats.skipped,
                    "restarts": reader.stats.producer_restarts,
                    "mismatched": bad,
                    "lat_p50_us": float(np.percentile(arr, 50)),
                    "lat_p99_us": float(np.percentile(arr, 99)),
                    "metadata": reader.metadata(),
                }
            ),
            flush=True,
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    """A producer and two consumers (one every-frame, one latest-frame) as processes."""
    name = f"demo/frames-{os.getpid()}"
    exe = [sys.executable, "-m", "us_frame_channel.cli"]
    w, h = args.size
    n = int(args.seconds * args.fps)
    print(
        f"frame channel demo: {w}x{h} {args.format} at {args.fps} fps for {args.seconds} s, "
        "1 producer + 2 consumer processes"
    )
    producer = subprocess.Popen(
        [
            *exe,
            "produce",
            "--name",
            name,
            "--size",
            f"{w}x{h}",
            "--format",
            args.format,
            "--fps",
            str(args.fps),
            "--count",
            str(n),
            "--linger",
            "1.0",
            "--wait-consumers",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    consumers = [
        subprocess.Popen(
            [
                *exe,
                "consume",
                "--name",
                name,
                "--mode",
                mode,
                "--count",
                str(n),
                "--timeout",
                str(args.seconds + 10),
                "--verify",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("every", "latest")
    ]
    results: list[dict[str, Any]] = []
    for mode, proc in zip(("every", "latest"), consumers, strict=True):
        out, _ = proc.communicate(timeout=args.seconds + 30)
        done = [json.loads(line) for line in out.splitlines() if '"done"' in line]
        if proc.returncode != 0 or not done:
            print(f"consumer ({mode}) failed, exit code {proc.returncode}")
            producer.send_signal(signal.SIGINT)
            return 1
        done[-1]["mode"] = mode
        results.append(done[-1])
    producer.communicate(timeout=30)
    print(
        f"{'consumer':<10}{'received':>10}{'dropped':>9}{'skipped':>9}{'bad':>6}"
        f"{'p50 us':>9}{'p99 us':>9}"
    )
    for r in results:
        print(
            f"{r['mode']:<10}{r['received']:>10}{r['dropped']:>9}{r['skipped']:>9}"
            f"{r['mismatched']:>6}{r['lat_p50_us']:>9.0f}{r['lat_p99_us']:>9.0f}"
        )
    ok = all(r["mismatched"] == 0 for r in results)
    print("every byte verified in both consumers" if ok else "MISMATCHED FRAMES")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="us-channel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("produce", help="publish pattern frames")
    pp.add_argument("--name", required=True)
    pp.add_argument("--size", type=_size, default=(640, 480))
    pp.add_argument("--format", default="mono8")
    pp.add_argument("--fps", type=float, default=60.0, help="0 = as fast as possible")
    pp.add_argument("--count", type=int, default=0, help="0 = until interrupted")
    pp.add_argument("--consumers", type=int, default=4)
    pp.add_argument("--buffer", type=int, default=4)
    pp.add_argument("--patterns", type=int, default=8)
    pp.add_argument("--spacing-mm", type=float, default=0.1)
    pp.add_argument(
        "--wait-consumers",
        type=int,
        default=0,
        help="start publishing once this many consumers are connected",
    )
    pp.add_argument("--linger", type=float, default=0.0, help="stay up this long after, s")
    pc = sub.add_parser("consume", help="read frames and report")
    pc.add_argument("--name", required=True)
    pc.add_argument("--mode", choices=[m.value for m in ReadMode], default="every")
    pc.add_argument("--count", type=int, default=100)
    pc.add_argument("--timeout", type=float, default=30.0)
    pc.add_argument("--wait", type=float, default=10.0)
    pc.add_argument("--verify", action="store_true", help="check pattern frames byte by byte")
    pc.add_argument("--patterns", type=int, default=8)
    pc.add_argument("--hold-s", type=float, default=0.0, help="hold each frame this long")
    pd = sub.add_parser("demo", help="producer + 2 consumers, verified")
    pd.add_argument("--size", type=_size, default=(1920, 1080))
    pd.add_argument("--format", default="uyvy")
    pd.add_argument("--fps", type=float, default=60.0)
    pd.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args(argv)
    try:
        handler = {"produce": _produce, "consume": _consume, "demo": _demo}[args.cmd]
        return handler(args)
    except (ChannelError, ValueError, TimeoutError) as exc:
        print(f"us-channel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
