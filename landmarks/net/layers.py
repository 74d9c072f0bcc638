"""Layers shared by the nets: PReLU with a fast backward, conv blocks, and the dispatch to
the fused native kernels (conv -> PReLU -> 2x2 average pooling) when training on a CPU."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import native


def prelu_backward_reference(grad, x, weight, needs_input_grad=(True, True)):
    """PReLU's (grad_x, grad_weight) from vectorised tensor ops (the path without native kernels)."""
    grad_positive = torch.ops.aten.threshold_backward(grad, x, 0.0)  # grad where x > 0, else 0
    grad_negative = grad - grad_positive
    per_channel = weight.numel() > 1
    grad_weight = None
    if needs_input_grad[1]:
        dims = [0, *range(2, x.dim())] if per_channel else list(range(x.dim()))
        grad_weight = (grad_negative * x).sum(dims).reshape(weight.shape)
    grad_x = None
    if needs_input_grad[0]:
        slope = weight.reshape(1, -1, *[1] * (x.dim() - 2)) if per_channel else weight.reshape(())
        grad_x = grad_negative.mul_(slope).add_(grad_positive)
    return grad_x, grad_weight


class _PReLUFunction(torch.autograd.Function):
    """PReLU with a faster backward: one pass in a native kernel where it applies, else
    vectorised tensor ops (aten's own PReLU backward runs a scalar loop on CPU, and
    took a quarter of every stage-1 step). The gradients are the same values."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        lib = native.kernels().lib
        fused = lib and native.prelu_backward(grad, x, weight, lib)
        if fused:
            grad_x, grad_weight = fused
            return (grad_x if ctx.needs_input_grad[0] else None), (grad_weight if ctx.needs_input_grad[1] else None)
        return prelu_backward_reference(grad, x, weight, ctx.needs_input_grad)


class PReLU(nn.PReLU):
    """nn.PReLU (same parameters, same results) with a faster backward when training."""

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            return _PReLUFunction.apply(x, self.weight)
        return F.prelu(x, self.weight)


class ConvBlock(nn.Sequential):
    """Conv -> (BatchNorm) -> PReLU, kept under one name so freezing takes all three."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0, batch_norm=False, groups=1):
        layers = [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(PReLU(cout))
        super().__init__(*layers)


def conv_prelu_pool(block: nn.Module, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``pool(block(x))``. In training on the CPU, when ``block`` is Conv2d -> PReLU and ``pool``
    a 2x2 average pooling, native kernels take over: for a first layer (no padding, no gradient
    to ``x``) one kernel each way for all three, else one for PReLU and pooling together."""
    lib = native.kernels().lib if block.training and torch.is_grad_enabled() else None
    if not (lib and _prelu_then_pool(block, pool)):
        return pool(block(x))
    conv, prelu = block
    if (conv.bias is not None and conv.groups == 1 and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.stride[0] == conv.stride[1] and native.conv_prelu_pool_supported(x, conv.weight, conv.stride[0])):
        return native.ConvPReLUPool.apply(x, conv.weight, conv.bias, prelu.weight, conv.stride[0], lib)
    y = conv(x)
    odd = y.dim() == 4 and (y.shape[2] % 2 or y.shape[3] % 2)
    if native.prelu_pool_supported(y, prelu.weight) and (pool.ceil_mode or not odd):  # the kernel rounds up
        return native.PReLUPool.apply(y, prelu.weight, lib)
    return pool(prelu(y))


def is_2x2_average_pool(pool: nn.Module) -> bool:
    """A 2x2 stride-2 average pooling without padding or a divisor override."""
    return (isinstance(pool, nn.AvgPool2d) and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
            and pool.padding in (0, (0, 0)) and pool.divisor_override is None)


def _prelu_then_pool(block: nn.Module, pool: nn.Module) -> bool:
    """Conv2d -> our PReLU, then a 2x2 stride-2 average pooling without padding."""
    return (isinstance(block, ConvBlock) and len(block) == 2 and isinstance(block[1], PReLU)
            and is_2x2_average_pool(pool))


class LinearBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Linear(cin, cout), PReLU())


class PointAttention(nn.Module):
    """RTMPose's gated attention unit (Hua et al., 2022) over the points' vectors [B, K, D]: each
    point's vector is gated by a mix of the others' (squared-ReLU attention), so that a point can
    read where its neighbours lie; the result is added to the input."""

    def __init__(self, dim: int, expansion: int = 2, key_dim: int = 128):
        super().__init__()
        self.hidden, self.key_dim = dim * expansion, key_dim
        self.norm_gain = nn.Parameter(torch.ones(1))
        self.uv = nn.Linear(dim, 2 * self.hidden + key_dim, bias=False)
        self.gamma = nn.Parameter(torch.empty(2, key_dim))  # query and key: one scale and shift each
        self.beta = nn.Parameter(torch.empty(2, key_dim))
        self.out = nn.Linear(self.hidden, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """RTMPose's start, except the output layer: zero, so that the layer starts as the identity
        and a finetune starts from the points' vectors as the head without it reads them (with
        RTMPose's random output layer the 68-point recipe trailed by 0.1-0.2 points, docs/300w.md)."""
        nn.init.xavier_uniform_(self.uv.weight)
        nn.init.uniform_(self.gamma)
        nn.init.uniform_(self.beta)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-5) * (x.shape[-1] ** 0.5 * self.norm_gain)
        u, v, base = torch.split(F.silu(self.uv(scaled)), [self.hidden, self.hidden, self.key_dim], dim=-1)
        query, key = base * self.gamma[0] + self.beta[0], base * self.gamma[1] + self.beta[1]
        kernel = F.relu(query @ key.transpose(1, 2) / self.key_dim ** 0.5).square()
        return x + self.out(u * (kernel @ v))
