"""Export a trained model to ONNX or TorchScript for use outside PyTorch.

The exported graph is the model as predict runs it: image [B, C, S, S] -> points [B, K, 2]
as shares of the crop (and face_prob [B] for a model with a face branch), flip averaging
included when the model uses it. Its preprocessing travels beside it in ``FILE.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError, require_extra
from ..files import Outputs, PartFile
from ..net.layers import is_2x2_average_pool
from ..spec import ModelSpec

FORMATS = ("onnx", "torchscript")


class PReLUForRuntime(nn.Module):
    """PReLU written as ``w * x + (1 - w) * relu(x)``: the same values, in ops that ONNX Runtime
    fuses into the convolution before it (its PRelu kernel broadcasts the per-channel slope in
    a scalar loop and took a quarter of stage 2's time a face)."""

    def __init__(self, prelu: nn.PReLU):
        super().__init__()
        self.weight = nn.Parameter(prelu.weight.detach().clone(), requires_grad=False)

    def forward(self, x):
        w = self.weight.reshape(1, -1, *[1] * (x.dim() - 2))
        return x * w + F.relu(x) * (1 - w)


class EdgePaddedAvgPool(nn.Module):
    """2x2 average pooling with ``ceil_mode`` as an edge pad (odd sides only) and a plain pooling:
    the same values (a window cut by the border averages what it covers), without the
    ceil-mode kernel that ONNX Runtime runs outside its fast blocked layout."""

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        return F.avg_pool2d(x, 2)


def for_runtime(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with PReLU and ceil-mode 2x2 average pooling in the equivalent forms
    above; ``model`` itself is left as it is."""
    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.PReLU):
                setattr(parent, name, PReLUForRuntime(child))
            elif is_2x2_average_pool(child) and child.ceil_mode:
                setattr(parent, name, EdgePaddedAvgPool())
    return model


def export_model(model: torch.nn.Module, spec: ModelSpec, fmt: str, out: Path, files: Outputs | None = None) -> Path:
    """Write ``model`` (an InferenceModel; batch size free) as ``fmt`` to ``out``, and its spec
    to ``out.json``; both are checked against the command's inputs (``files``) first and written
    whole, under a temporary name renamed when complete."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    files = files or Outputs()
    out = files.check("--out", out)
    spec_file = files.check("--out", Path(str(out) + ".json"))
    config = spec.config
    model = model.eval()
    example = torch.zeros(1, config.channels, config.input_size, config.input_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    outputs = ["points", "face_prob"] if config.classify else ["points"]
    part = PartFile(out)
    try:
        write_format(model, fmt, example, outputs, part.part)
    except BaseException:
        part.discard()
        raise
    part.finish()
    files.write_text("--out", spec_file, json.dumps({**spec.to_dict(), "outputs": outputs}, indent=2) + "\n")
    return out


def write_format(model: torch.nn.Module, fmt: str, example: torch.Tensor, outputs: list[str], out: Path) -> None:
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        traced.save(str(out))
    else:
        for module in ("onnx", "onnxscript"):  # the exporter needs both; say so before tracing
            require_extra(module, "--format onnx")
        # The torch.export-based exporter; the TorchScript-based one is deprecated. The runtime
        # forms are for ONNX Runtime only: TorchScript runs them slower than the modules they replace.
        # The weights stay inside the one file (a few MB): kept apart, they went to a file named
        # after the temporary name the model is written under, which a user would not carry along.
        torch.onnx.export(for_runtime(model), (example,), str(out), input_names=["image"], output_names=outputs,
                          dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), opset_version=18,
                          dynamo=True, external_data=False, verbose=False)
