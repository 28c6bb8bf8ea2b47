"""Model card validation: clear ModelCardError messages for the usual mistakes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from seg_test_utils import write_tiny_card
from us_segmentation.inference import load_model
from us_segmentation.model_card import ModelCardError, load_card


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_valid_card_loads(tiny_model_dir: Path) -> None:
    card = load_card(tiny_model_dir)
    assert card.backend == "torchscript"
    assert card.input_hw == (32, 48)
    assert card.classes == ("background", "thyroid")
    assert card.thyroid_index == 1
    assert card.model_file.is_file()
    # the card file itself also works
    assert load_card(tiny_model_dir / "model_card.yaml").name == "tiny"


def test_card_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match="model card not found"):
        load_card(tmp_path)


def test_missing_model_file(tmp_path: Path) -> None:
    write_tiny_card(tmp_path, file="nope.pt")
    with pytest.raises(ModelCardError, match=r"model file 'nope.pt' .*does not exist"):
        load_card(tmp_path)


@pytest.mark.parametrize("height", [0, 8, 100000, "256", 12.5, None])
def test_bad_input_size(tiny_model_dir: Path, tmp_path: Path, height: object) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, input={"height": height, "width": 48})
    with pytest.raises(ModelCardError, match=r"'input.height' must be an integer in \[16, 4096\]"):
        load_card(d)


def test_missing_input_width(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, input={"height": 32})
    with pytest.raises(ModelCardError, match=r"missing required field 'input.width'"):
        load_card(d)


def test_classes_without_thyroid(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, output={"type": "logits", "classes": ["background", "carotid"]})
    with pytest.raises(ModelCardError, match="must include 'thyroid'"):
        load_card(d)


def test_output_not_logits(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, output={"type": "probabilities", "classes": ["background", "thyroid"]})
    with pytest.raises(ModelCardError, match=r"'output.type' must be 'logits'"):
        load_card(d)


def test_unknown_extension(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "model.h5").write_bytes(b"x")
    write_tiny_card(d, file="model.h5")
    with pytest.raises(ModelCardError, match=r"unknown model file extension '.h5'"):
        load_card(d)


def test_backend_mismatch(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, backend="onnx")
    with pytest.raises(ModelCardError, match="does not match the file extension"):
        load_card(d)


def test_missing_normalisation_and_bad_std(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, normalization={"std": 0.2})
    with pytest.raises(ModelCardError, match=r"missing required field 'normalization.mean'"):
        load_card(d)
    write_tiny_card(d, normalization={"mean": 0.2, "std": 0})
    with pytest.raises(ModelCardError, match=r"'normalization.std' must be > 0"):
        load_card(d)


def test_not_yaml_mapping(tmp_path: Path) -> None:
    (tmp_path / "model_card.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ModelCardError, match="top level must be a mapping"):
        load_card(tmp_path)


def test_output_shape_mismatch_detected_at_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, output={"type": "logits", "classes": ["background", "thyroid", "x"]})
    with pytest.raises(ModelCardError, match=r"output shape \(1, 2, 32, 48\) != \(1, 3, 32, 48\)"):
        load_model(d, device="cpu")


def test_onnx_backend_selection(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    d = _copy(tiny_model_dir, tmp_path / "m")
    write_tiny_card(d, onnx_file="model.onnx")
    m = load_model(d, backend="onnx", device="cpu", threads=1)
    assert m.backend == "onnx"
    write_tiny_card(d, file="model.onnx")
    assert load_model(d, device="cpu").backend == "onnx"
    write_tiny_card(d)
    with pytest.raises(ModelCardError, match="no 'onnx' model file"):
        load_model(d, backend="onnx", device="cpu")
