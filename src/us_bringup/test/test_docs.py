"""Every node parameter is documented in its package README (tools/param_table.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NODES = [
    ("us_acquisition.params", "src/us_acquisition/README.md"),
    ("us_acquisition.recorder_params", "src/us_acquisition/README.md"),
    ("us_segmentation.params", "src/us_segmentation/README.md"),
    ("us_reconstruction.params", "src/us_reconstruction/README.md"),
    ("us_grpc_bridge.params", "src/us_grpc_bridge/README.md"),
]


@pytest.mark.parametrize(("module", "readme"), NODES)
def test_every_parameter_is_in_the_readme(module: str, readme: str) -> None:
    specs = importlib.import_module(module).PARAMETERS
    text = (ROOT / readme).read_text()
    missing = [s.name for s in specs if f"| `{s.name}` |" not in text]
    assert not missing, f"{readme} lacks parameters {missing} (python tools/param_table.py)"


def test_rviz_config_shows_topics_the_nodes_publish() -> None:
    import yaml

    cfg = yaml.safe_load((ROOT / "rviz" / "us_system.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    topics = [d["Topic"]["Value"] for d in displays if "Topic" in d]
    assert len(topics) >= 4
    for t in topics:
        _, ns, node, name = t.split("/")
        assert ns == "us"
        src = (ROOT / f"src/us_{node}/us_{node}/node.py").read_text()
        assert f'"~/{name}"' in src, f"{t}: no node publishes ~/{name}"
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == "tracker"
