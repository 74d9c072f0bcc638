"""Nets run by ONNX Runtime, where it is installed, for whole pictures and video.

A net is written to ONNX in memory when a Landmarker or face finder is made (about 0.1 s,
by the TorchScript-based exporter: the torch.export-based one that ``--phase export`` uses
takes seconds) with PReLU and pooling in the forms of ``export.for_runtime``. ONNX Runtime
then runs it 2-3.5x faster than eager PyTorch at the batch sizes of a picture's faces, with
the same values to float rounding (docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import io
import statistics
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

from ..errors import UsageError, require_extra
from .export import for_runtime

BACKENDS = ("auto", "torch", "onnxruntime")


def median_seconds(call, repeats: int, warmup: int | None = None) -> float:
    """Median seconds of ``call()`` over ``repeats`` calls, after ``warmup`` untimed ones (by
    default a tenth of ``repeats``, at least 3): first calls pay for allocations and caches."""
    for _ in range(max(3, repeats // 10) if warmup is None else warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def has_onnxruntime() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def choose_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> onnxruntime on a CPU where it is installed, else torch; the others as named."""
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" and has_onnxruntime() else "torch"
    if backend == "onnxruntime" and device.type != "cpu":
        raise UsageError(f"backend onnxruntime runs on the CPU; --device {device} needs --backend torch")
    return backend


def runtime_session(model, threads: int | None = None, profile_prefix: str | None = None):
    """An ONNX Runtime CPU session for ``model`` (a file's path or the ONNX bytes) on ``threads``
    (default: PyTorch's), its threads kept from spinning: threads that spin after a run take the
    cores from the picture's next steps (on 2 cores the pipeline ran 2-3x slower)."""
    onnxruntime = require_extra("onnxruntime", "the onnxruntime backend")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:  # each node's time, written by end_profiling() (bench_predict.py --nodes)
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                        providers=["CPUExecutionProvider"])


class _Outputs(nn.Module):
    """A net whose output is a tensor, a tuple or a dict, as a tuple of tensors (ONNX outputs)."""

    def __init__(self, net: nn.Module, keys: tuple[str, ...] | None):
        super().__init__()
        self.net, self.keys = net, keys

    def forward(self, x):
        out = self.net(x)
        if self.keys is not None:
            return tuple(out[k] for k in self.keys)
        return out if isinstance(out, tuple) else (out,)


class RuntimeNet:
    """``net`` (in eval mode) as an ONNX Runtime session: called on a [B, C, H, W] tensor, it gives
    what the net gives (a tensor, a tuple, or a dict of the same keys), as CPU tensors.
    ``example``: an input of the shape it will see; ``dynamic``: its axes that vary."""

    def __init__(self, net: nn.Module, example: torch.Tensor, dynamic: dict[int, str], threads: int | None = None):
        require_extra("onnxruntime", "the onnxruntime backend")
        net = net.eval()
        with torch.no_grad():
            sample = net(example)
        self.keys = tuple(sample) if isinstance(sample, dict) else None
        self.single = torch.is_tensor(sample)
        names = list(self.keys) if self.keys else [f"out{i}" for i in range(1 if self.single else len(sample))]
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript-based exporter announces its deprecation
            warnings.simplefilter("ignore")
            torch.onnx.export(for_runtime(_Outputs(net, self.keys)).float(), (example.float(),), buffer,
                              input_names=["image"], output_names=names, dynamic_axes={"image": dynamic},
                              opset_version=17, dynamo=False)
        self.session = runtime_session(buffer.getvalue(), threads)

    def __call__(self, batch: torch.Tensor):
        image = np.ascontiguousarray(batch.detach().float().cpu().numpy())
        outputs = [torch.from_numpy(o) for o in self.session.run(None, {"image": image})]
        if self.keys:
            return dict(zip(self.keys, outputs))
        return outputs[0] if self.single else tuple(outputs)
