"""Shared fixtures: a tiny TorchScript / ONNX model with a valid card in a temp dir."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from seg_test_utils import TINY_HW, write_tiny_card
from us_segmentation.model import UNet


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with a randomly initialised tiny U-Net as TorchScript + ONNX + card."""
    d = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    m = UNet(1, 2, base=4, depth=2).eval()
    x = torch.zeros(1, 1, *TINY_HW)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(m, x).save(str(d / "model.pt"))
        torch.onnx.export(
            m,
            (x,),
            str(d / "model.onnx"),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
        )
    write_tiny_card(d)
    return d
