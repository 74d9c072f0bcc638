"""Fused C kernels for CPU training, built with the system's C compiler on first use.

Two pieces of stage-1 training are bound by memory traffic rather than
arithmetic, and PyTorch's separate tensor ops pass over the data many times:

* the first layer (5x5 convolution -> PReLU -> 2x2 average pooling) writes and
  re-reads a full-resolution activation that is 6 MB at batch 64; the fused
  kernel never stores it (backward recomputes it a row at a time);
* PReLU's backward takes five passes as tensor ops; the kernel takes one, and
  one more kernel each way does PReLU and the 2x2 pooling after it together.

``landmarks/net/native.c`` is compiled once per machine with ``cc -O3 -march=native
-fopenmp`` (under a second) into the user's cache folder and loaded with ctypes;
it needs no PyTorch headers. Where no compiler works, or ``LANDMARKS_NATIVE=0``
is set, :func:`kernels` says why and every caller takes the PyTorch path, which
gives the same values to float rounding.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import default_cache_dir, temporary_path

SOURCE = Path(__file__).with_name("native.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
# Below this many elements a second thread costs more than it saves.
PARALLEL_MIN_ELEMENTS = 32_768


@dataclass(frozen=True)
class Kernels:
    """The loaded library (None when unavailable) and a line saying which, or why not."""

    lib: ctypes.CDLL | None
    note: str


def _cpu_fingerprint() -> str:
    """What -march=native compiled for: a cached library must not move to another CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def build(cache_dir: Path, compiler: str = "cc") -> Kernels:
    """Compile (unless already cached) and load the kernels; never raises."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, compiler.encode(), " ".join(FLAGS).encode(),
                                     _cpu_fingerprint().encode()])).hexdigest()[:16]
    library = Path(cache_dir) / f"native-{key}.so"
    if not library.exists():
        try:
            library.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return Kernels(None, f"native kernels off: cannot create {library.parent} ({error.strerror})")
        # Compile to a name of our own, then rename: processes started together do not collide.
        partial = temporary_path(library)
        try:
            result = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(partial)],
                                    capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as error:
            return Kernels(None, f"native kernels off: cannot run C compiler {compiler!r} ({error})")
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            first = (result.stderr.strip().splitlines() or ["no message"])[0]
            return Kernels(None, f"native kernels off: {compiler} failed on {SOURCE.name}: {first}")
        os.replace(partial, library)
    try:
        lib = ctypes.CDLL(str(library))
    except OSError as error:
        return Kernels(None, f"native kernels off: cannot load {library} ({error})")
    pointer, int64 = ctypes.c_void_p, ctypes.c_int64
    lib.prelu_backward.argtypes = [pointer] * 5 + [int64] * 2 + [ctypes.c_int]
    lib.conv_prelu_pool_forward.argtypes = [pointer] * 5 + [int64] * 6 + [ctypes.c_int]
    lib.conv_prelu_pool_backward.argtypes = [pointer] * 8 + [int64] * 6 + [ctypes.c_int]
    lib.prelu_pool_forward.argtypes = [pointer] * 3 + [int64] * 4 + [ctypes.c_int]
    lib.prelu_pool_backward.argtypes = [pointer] * 5 + [int64] * 4 + [ctypes.c_int]
    for function in (lib.prelu_backward, lib.conv_prelu_pool_forward, lib.conv_prelu_pool_backward,
                     lib.prelu_pool_forward, lib.prelu_pool_backward):
        function.restype = ctypes.c_int
    return Kernels(lib, f"native kernels on: {library}")


@functools.cache
def kernels() -> Kernels:
    """The kernels for this process, built once; ``LANDMARKS_NATIVE=0`` turns them off."""
    if os.environ.get("LANDMARKS_NATIVE", "1") == "0":
        return Kernels(None, "native kernels off: LANDMARKS_NATIVE=0")
    cache = default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        writable = os.access(cache, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        cache = Path(tempfile.gettempdir()) / f"landmarks-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return build(cache, os.environ.get("CC", "cc"))


def _per_channel(slope: torch.Tensor, channels: int) -> torch.Tensor:
    """PReLU's one or ``channels`` slopes as ``channels`` contiguous floats, as the kernels take them."""
    return slope.detach().float().expand(channels).contiguous()


def _slope_grad(per_channel: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The kernels' per-channel slope gradient, summed back when PReLU has a single slope."""
    return (per_channel.sum() if shape.numel() == 1 else per_channel).reshape(shape)


def _threads(elements: int) -> int:
    return torch.get_num_threads() if elements >= PARALLEL_MIN_ELEMENTS else 1


def _channels_innermost(t: torch.Tensor) -> bool:
    return t.is_contiguous() if t.dim() == 2 else t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)


def prelu_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                   lib: ctypes.CDLL) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(grad_x, grad_weight) of PReLU for [B, C] or channels-last [B, C, H, W] float32 ``x``
    on the CPU; None for anything else."""
    if (x.dtype != torch.float32 or x.device.type != "cpu" or not _channels_innermost(x)
            or weight.numel() not in (1, x.shape[1])):
        return None
    channels = x.shape[1]
    memory_format = torch.channels_last if x.dim() == 4 else torch.contiguous_format
    grad = grad.float().contiguous(memory_format=memory_format)
    slope = _per_channel(weight, channels)
    grad_x = torch.empty_like(x, memory_format=memory_format)
    grad_slope = torch.empty(channels)
    if lib.prelu_backward(grad.data_ptr(), x.data_ptr(), slope.data_ptr(), grad_x.data_ptr(), grad_slope.data_ptr(),
                          x.numel() // channels, channels, _threads(x.numel())):
        return None
    return grad_x, _slope_grad(grad_slope, weight.shape)


def conv_prelu_pool_supported(x: torch.Tensor, weight: torch.Tensor, stride: int) -> bool:
    """Whether :class:`ConvPReLUPool` takes this input: a float32 CPU image batch that needs no
    gradient, square, no padding, an even conv output, output channels a multiple of 8."""
    if x.dim() != 4 or x.dtype != torch.float32 or x.device.type != "cpu" or x.requires_grad:
        return False
    out_channels, _, k, k2 = weight.shape
    size = x.shape[2]
    conv = (size - k) // stride + 1 if size >= k else 0
    return (k == k2 and x.shape[3] == size and out_channels % 8 == 0 and conv > 0 and conv % 2 == 0
            and conv * out_channels <= 4096)


class ConvPReLUPool(torch.autograd.Function):
    """avg_pool2d(prelu(conv2d(x, weight, bias, stride), slope), 2) in one kernel each way.

    For a first layer: no gradient flows to ``x``. Check :func:`conv_prelu_pool_supported` first.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, slope, stride: int, lib):
        out_channels, in_channels, k, _ = weight.shape
        batch, _, size, _ = x.shape
        pooled = ((size - k) // stride + 1) // 2
        image = x.contiguous(memory_format=torch.channels_last)  # memory [B, H, W, C]
        weight_t = weight.detach().permute(2, 3, 1, 0).contiguous()  # [k, k, Cin, Cout]
        bias = bias.detach().contiguous()
        slopes = _per_channel(slope, out_channels)
        out = torch.empty((batch, out_channels, pooled, pooled), memory_format=torch.channels_last)
        shape = (batch, size, in_channels, out_channels, k, stride)
        threads = _threads(out.numel() * k * k * in_channels)
        if lib.conv_prelu_pool_forward(image.data_ptr(), weight_t.data_ptr(), bias.data_ptr(), slopes.data_ptr(),
                                       out.data_ptr(), *shape, threads):
            raise ValueError(f"ConvPReLUPool: unsupported shape {tuple(x.shape)} with weight {tuple(weight.shape)}")
        ctx.save_for_backward(image, weight_t, bias, slopes)
        ctx.shape, ctx.threads, ctx.lib, ctx.slope_shape = shape, threads, lib, slope.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        image, weight_t, bias, slopes = ctx.saved_tensors
        grad = grad.float().contiguous(memory_format=torch.channels_last)
        grad_weight_t = torch.empty_like(weight_t)
        grad_bias, grad_slopes = torch.empty_like(bias), torch.empty_like(slopes)
        ctx.lib.conv_prelu_pool_backward(image.data_ptr(), weight_t.data_ptr(), bias.data_ptr(), slopes.data_ptr(),
                                         grad.data_ptr(), grad_weight_t.data_ptr(), grad_bias.data_ptr(),
                                         grad_slopes.data_ptr(), *ctx.shape, ctx.threads)
        grad_weight = grad_weight_t.permute(3, 2, 0, 1)  # autograd lays it out like the weight
        return None, grad_weight, grad_bias, _slope_grad(grad_slopes, ctx.slope_shape), None, None


def prelu_pool_supported(x: torch.Tensor, slope: torch.Tensor) -> bool:
    """Whether :class:`PReLUPool` takes ``x``: float32 channels-last on the CPU, channels a multiple of 8."""
    return (x.dim() == 4 and x.dtype == torch.float32 and x.device.type == "cpu" and x.shape[1] % 8 == 0
            and x.shape[1] <= 1024 and slope.numel() in (1, x.shape[1])
            and x.is_contiguous(memory_format=torch.channels_last))


class PReLUPool(torch.autograd.Function):
    """avg_pool2d(prelu(x, slope), 2, ceil_mode=True) in one kernel each way.
    Check :func:`prelu_pool_supported` first."""

    @staticmethod
    def forward(ctx, x, slope, lib):
        batch, channels, h, w = x.shape
        slopes = _per_channel(slope, channels)
        out = torch.empty((batch, channels, (h + 1) // 2, (w + 1) // 2), memory_format=torch.channels_last)
        threads = _threads(x.numel())
        if lib.prelu_pool_forward(x.data_ptr(), slopes.data_ptr(), out.data_ptr(), batch, h, w, channels, threads):
            raise ValueError(f"PReLUPool: unsupported shape {tuple(x.shape)}")
        ctx.save_for_backward(x, slopes)
        ctx.threads, ctx.lib, ctx.slope_shape = threads, lib, slope.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, slopes = ctx.saved_tensors
        grad = grad.float().contiguous(memory_format=torch.channels_last)
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        grad_slopes = torch.empty_like(slopes)
        batch, channels, h, w = x.shape
        ctx.lib.prelu_pool_backward(x.data_ptr(), slopes.data_ptr(), grad.data_ptr(), grad_x.data_ptr(),
                                    grad_slopes.data_ptr(), batch, h, w, channels, ctx.threads)
        return grad_x, _slope_grad(grad_slopes, ctx.slope_shape), None
