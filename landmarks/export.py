"""Export a trained model to ONNX or TorchScript for use outside PyTorch."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Config
from .errors import UsageError, require_extra

FORMATS = ("onnx", "torchscript")


def export_model(model: torch.nn.Module, config: Config, fmt: str, out: Path) -> Path:
    """Write ``model`` (eval mode, batch size free) as ``fmt`` to ``out``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    model = model.eval()
    example = torch.zeros(1, config.channels, config.input_size, config.input_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    outputs = ["points", "face_logits"] if config.classify else ["points"]
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
    return out
