"""Channel configuration: sizes are fixed when the producer creates the channel."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ChannelConfigError
from .layout import PixelFormat, frame_bytes

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/.-]{0,200}$")

#: Upper bound on a slot, bytes (8K BGRA is 132 MB; larger is a configuration mistake).
MAX_SLOT_BYTES = 256 * 1024 * 1024
MAX_CONSUMERS_LIMIT = 64


@dataclass(frozen=True)
class ChannelConfig:
    """Settings of one frame channel.

    Shared memory used by the producer is about
    ``max_frame_bytes x (max_consumers x (buffer_frames + max_borrowed) + 2)``.
    """

    name: str
    #: Payload capacity of one slot, bytes. Frames larger than this are refused.
    max_frame_bytes: int
    #: Consumers that may connect at once (iceoryx2 subscribers). More get ChannelFullError.
    max_consumers: int = 4
    #: Frames queued per consumer; a consumer further behind loses its oldest frames.
    buffer_frames: int = 4
    #: Frames one consumer may hold (borrow) at the same time.
    max_borrowed: int = 2
    #: Kind written to the service attributes: "frames" or "masks".
    kind: str = "frames"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ChannelConfigError(
                f"channel name {self.name!r} is invalid: use letters, digits, '_', '-', '.', '/'"
                " (at most 200 characters, not starting with '/')"
            )
        _check_int("max_frame_bytes", self.max_frame_bytes, 1, MAX_SLOT_BYTES)
        _check_int("max_consumers", self.max_consumers, 1, MAX_CONSUMERS_LIMIT)
        _check_int("buffer_frames", self.buffer_frames, 1, 64)
        _check_int("max_borrowed", self.max_borrowed, 1, 16)
        if self.kind not in ("frames", "masks"):
            raise ChannelConfigError(f"kind must be 'frames' or 'masks', got {self.kind!r}")

    @classmethod
    def for_frames(
        cls, name: str, width: int, height: int, pixel_format: str | PixelFormat, **kwargs: Any
    ) -> ChannelConfig:
        """A channel sized for frames of ``width`` x ``height`` px of ``pixel_format``."""
        fmt = PixelFormat.parse(pixel_format)
        _check_int("width", width, 1, 16384)
        _check_int("height", height, 1, 16384)
        return cls(name=name, max_frame_bytes=frame_bytes(fmt, width, height), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelConfig:
        """Build from a config mapping; unknown keys are an error, not ignored.

        Either ``max_frame_bytes`` or all of ``width``, ``height``, ``pixel_format``.
        """
        if not isinstance(data, dict):
            raise ChannelConfigError(f"channel config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)} | {"width", "height", "pixel_format"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ChannelConfigError(
                f"unknown channel config keys {unknown}; known: {sorted(known)}"
            )
        d = dict(data)
        if "max_frame_bytes" not in d:
            missing = [k for k in ("width", "height", "pixel_format") if k not in d]
            if missing:
                raise ChannelConfigError(
                    "channel config needs max_frame_bytes or width/height/pixel_format; "
                    f"missing {missing}"
                )
            try:
                fmt = PixelFormat.parse(d.pop("pixel_format"))
            except ValueError as exc:
                raise ChannelConfigError(str(exc)) from None
            return cls.for_frames(
                width=d.pop("width"), height=d.pop("height"), pixel_format=fmt, **d
            )
        for k in ("width", "height", "pixel_format"):
            d.pop(k, None)
        return cls(**d)

    def shared_memory_bytes(self) -> int:
        """Approximate shared memory the channel's data segment occupies, bytes."""
        slots = self.max_consumers * (self.buffer_frames + self.max_borrowed) + 2
        return slots * self.max_frame_bytes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(key: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelConfigError(f"{key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ChannelConfigError(f"{key} must be in [{lo}, {hi}], got {value}")
