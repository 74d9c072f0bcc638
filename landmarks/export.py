"""Export a trained model to ONNX or TorchScript for use outside PyTorch."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Config
from .errors import UsageError

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
        dynamic = {"image": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
        torch.onnx.export(model, (example,), str(out), input_names=["image"], output_names=outputs,
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    return out
