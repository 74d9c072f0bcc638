"""Export a trained model to ONNX or TorchScript for use outside PyTorch.

The exported graph is the model as predict runs it: image [B, C, S, S] -> points [B, K, 2]
as shares of the crop (and face_prob [B] for a model with a face branch), flip averaging
included when the model uses it. Its preprocessing travels beside it in ``FILE.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UsageError, require_extra
from ..spec import ModelSpec

FORMATS = ("onnx", "torchscript")


def export_model(model: torch.nn.Module, spec: ModelSpec, fmt: str, out: Path) -> Path:
    """Write ``model`` (an InferenceModel; batch size free) as ``fmt`` to ``out``, and its spec
    to ``out.json``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    config = spec.config
    model = model.eval()
    example = torch.zeros(1, config.channels, config.input_size, config.input_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    outputs = ["points", "face_prob"] if config.classify else ["points"]
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        traced.save(str(out))
    else:
        for module in ("onnx", "onnxscript"):  # the exporter needs both; say so before tracing
            require_extra(module, "--format onnx")
        # The torch.export-based exporter; the TorchScript-based one is deprecated.
        torch.onnx.export(model, (example,), str(out), input_names=["image"], output_names=outputs,
                          dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), opset_version=18,
                          dynamo=True, verbose=False)
    Path(str(out) + ".json").write_text(json.dumps({**spec.to_dict(), "outputs": outputs}, indent=2) + "\n")
    return out
