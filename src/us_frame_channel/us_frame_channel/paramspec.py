"""Node parameters as data (no rclpy): name, type (from the default), range, choices, text.

Every node of the workspace declares its ROS parameters from a tuple of :class:`ParamSpec`
and validates values with :func:`validate_value`, so that parameter rules are tested
without ROS. ``live`` parameters may change while a node is configured or active; the
others apply at the next ``configure``.
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any  # its Python type is the parameter's type (bool, int, float, str, list)
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    live: bool = False  # may change while configured/active
    length: int | None = None  # lists: required number of items


def spec_table(specs: Iterable[ParamSpec]) -> dict[str, ParamSpec]:
    """``{name: spec}``; raises ``ValueError`` on a duplicate name."""
    out: dict[str, ParamSpec] = {}
    for s in specs:
        if s.name in out:
            raise ValueError(f"parameter {s.name!r} declared twice")
        out[s.name] = s
    return out


def plain(value: Any) -> Any:
    """rclpy hands array parameters over as ``array.array``: make them lists."""
    return value.tolist() if isinstance(value, array.array) else value


def validate_value(specs: Mapping[str, ParamSpec], name: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason.
    Names not in ``specs`` (e.g. ``use_sim_time``) are not ours: None."""
    spec = specs.get(name)
    if spec is None:
        return None
    want = type(spec.default)
    value = plain(value)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is list:
        if not isinstance(value, list | tuple):
            return f"{name} must be a list, got {value!r}"
        items = list(value)
        if spec.length is not None and len(items) != spec.length:
            return f"{name} needs {spec.length} values, got {items}"
    else:
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            return f"{name} must be {want.__name__}, got {value!r}"
        items = [value]
    for v in items:
        if spec.choices and v not in spec.choices:
            return f"{name} must be one of {', '.join(spec.choices)}; got {v!r}"
        if isinstance(v, int | float) and not isinstance(v, bool):
            if v != v:  # NaN
                return f"{name} must be a number, got NaN"
            if spec.min is not None and v < spec.min:
                return f"{name} must be >= {spec.min:g}, got {v!r}"
            if spec.max is not None and v > spec.max:
                return f"{name} must be <= {spec.max:g}, got {v!r}"
    return None
