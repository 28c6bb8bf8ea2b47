"""Print the Markdown parameter table of a node from its ParamSpec tuple.

    python tools/param_table.py us_segmentation.params

Used to write the "Parameters" section of each package README; the tests check that every
parameter appears there.
"""

from __future__ import annotations

import importlib
import sys


def table(module: str) -> str:
    specs = importlib.import_module(module).PARAMETERS
    rows = [
        "| parameter | type | default | range / choices | live | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in specs:
        rng = ", ".join(s.choices) if s.choices else (
            f"{s.min:g} .. {s.max:g}" if s.min is not None and s.max is not None else ""
        )
        rows.append(
            f"| `{s.name}` | {type(s.default).__name__} | `{s.default!r}` | {rng} | "
            f"{'yes' if s.live else ''} | {s.description} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1]))
