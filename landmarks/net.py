"""Landmark nets, chosen by name.

Every net maps [B, C, size, size] images to [B, 42] landmark coordinates as
shares of the crop (x / size, y / size), and, when built with ``classify``,
also to [B, 2] face/non-face logits from a branch sharing the trunk.
A net is a trunk (``features``) plus heads; :func:`register` adds one.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import NUM_POINTS, native
from .augment import mirror_points
from .errors import UsageError

NETS: dict[str, Callable[..., "LandmarkNet"]] = {}


def register(name: str):
    def decorate(factory):
        NETS[name] = factory
        return factory
    return decorate


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


def _prelu_then_pool(block: nn.Module, pool: nn.Module) -> bool:
    """Conv2d -> our PReLU, then a 2x2 stride-2 average pooling without padding."""
    return (isinstance(block, ConvBlock) and len(block) == 2 and isinstance(block[1], PReLU)
            and isinstance(pool, nn.AvgPool2d) and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
            and pool.padding in (0, (0, 0)) and pool.divisor_override is None)


class LinearBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Linear(cin, cout), PReLU())


class LandmarkNet(nn.Module):
    """Base: ``features`` -> ``landmark_head`` (+ ``face_head`` when classifying)."""

    def __init__(self, classify: bool):
        super().__init__()
        self.classify = classify

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def landmark_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def build_face_head(self, feature_dim: int) -> None:
        if self.classify:
            self.face_head = nn.Sequential(nn.Flatten(), nn.Linear(feature_dim, 64), PReLU(),
                                           nn.Linear(64, 2))

    def forward(self, x):
        shared = self.features(x)
        points = self.landmark_head(shared)
        if self.classify:
            return points, self.face_head(shared)
        return points


class FlipAverage(nn.Module):
    """Average a net's answer on a crop and on its mirror image (mapped back).

    The mirrored crop's points are un-flipped (x -> 1 - x on the crop's 0..1
    scale) and re-ordered with the left/right permutation; face logits are averaged.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        b = x.shape[0]
        points, logits = split_output(self.net(torch.cat([x, x.flip(-1)])))
        direct = points[:b].reshape(b, -1, 2)
        mirrored = mirror_points(points[b:].reshape(b, -1, 2), 1.0)
        averaged = ((direct + mirrored) / 2).reshape(b, -1)
        if logits is None:
            return averaged
        return averaged, (logits[:b] + logits[b:]) / 2


def inference_net(net: nn.Module, test_flip: bool) -> nn.Module:
    """The net as test and predict run it: with flip averaging when the config asks."""
    net = net.eval()
    return FlipAverage(net).eval() if test_flip else net


def split_output(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(points [B, 42], face logits [B, 2] or None) from any net's output."""
    if isinstance(output, (tuple, list)):
        return output[0], output[1]
    return output, None


def _feature_shape(trunk: Callable, channels: int, size: int) -> torch.Size:
    with torch.no_grad():
        return trunk(torch.zeros(1, channels, size, size)).shape[1:]


class Stage1Net(LandmarkNet):
    """The course's stage-1 net: small PReLU CNN with average pooling, 3 dense layers."""

    def __init__(self, channels=1, size=112, classify=False, batch_norm=False, width=1):
        super().__init__(classify)
        bn, c = batch_norm, [n * width for n in (8, 16, 24, 40, 80)]
        self.conv1_1 = ConvBlock(channels, c[0], 5, stride=2, batch_norm=bn)
        self.pool1 = nn.AvgPool2d(2, ceil_mode=True)
        self.conv2_1 = ConvBlock(c[0], c[1], 3, batch_norm=bn)
        self.conv2_2 = ConvBlock(c[1], c[1], 3, batch_norm=bn)
        self.pool2 = nn.AvgPool2d(2, ceil_mode=True)
        self.conv3_1 = ConvBlock(c[1], c[2], 3, batch_norm=bn)
        self.conv3_2 = ConvBlock(c[2], c[2], 3, batch_norm=bn)
        self.pool3 = nn.AvgPool2d(2, ceil_mode=True)
        self.conv4_1 = ConvBlock(c[2], c[3], 3, padding=1, batch_norm=bn)
        self.conv4_2 = ConvBlock(c[3], c[4], 3, padding=1, batch_norm=bn)
        flat = _feature_shape(self.features, channels, size).numel()
        self.ip1 = LinearBlock(flat, 128 * width)
        self.ip2 = LinearBlock(128 * width, 128 * width)
        self.ip3 = nn.Linear(128 * width, 2 * NUM_POINTS)
        self.build_face_head(flat)
        # PyTorch's default init shrinks activations through this un-normalized
        # stack, so at first only the biases learn (a long mean-shape plateau).
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, a=0.25, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def features(self, x):
        x = conv_prelu_pool(self.conv1_1, self.pool1, x)
        x = conv_prelu_pool(self.conv2_2, self.pool2, self.conv2_1(x))
        x = conv_prelu_pool(self.conv3_2, self.pool3, self.conv3_1(x))
        return torch.flatten(self.conv4_2(self.conv4_1(x)), 1)

    def landmark_head(self, features):
        return self.ip3(self.ip2(self.ip1(features)))


@register("stage1")
def stage1(channels=1, size=112, classify=False):
    return Stage1Net(channels, size, classify, batch_norm=False)


@register("stage1_bn")
def stage1_bn(channels=1, size=112, classify=False):
    return Stage1Net(channels, size, classify, batch_norm=True)


@register("stage1_wide")
def stage1_wide(channels=1, size=112, classify=False):
    """The stage-1 layout with batch norm at twice the width: more capacity, still cheap."""
    return Stage1Net(channels, size, classify, batch_norm=True, width=2)


class ResNet18Net(LandmarkNet):
    """torchvision's ResNet-18 body from scratch, for 1 or 3 channels at 112x112.

    The 7x7 stride-2 stem and max-pool are replaced by a 3x3 stride-2 stem, so
    the last stage sees 7x7 instead of 4x4 on a 112 crop.
    """

    def __init__(self, channels=1, size=112, classify=False):
        super().__init__(classify)
        from torchvision.models import resnet18

        body = resnet18(weights=None)
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.layer1, self.layer2, self.layer3, self.layer4 = body.layer1, body.layer2, body.layer3, body.layer4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 2 * NUM_POINTS)
        self.build_face_head(512)

    def features(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return torch.flatten(self.pool(x), 1)

    def landmark_head(self, features):
        return self.fc(features)


@register("resnet18")
def resnet18_net(channels=1, size=112, classify=False):
    return ResNet18Net(channels, size, classify)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.block = nn.Sequential(
            ConvBlock(cin, hidden, 1, batch_norm=True),
            ConvBlock(hidden, hidden, 3, stride, 1, batch_norm=True, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_skip else y


class MobileNet(LandmarkNet):
    """A compact MobileNetV2-style trunk with a multi-scale regression head
    (pooled features of the last three stages, as in PFLD), aimed at accuracy
    per millisecond on a CPU."""

    def __init__(self, channels=1, size=112, classify=False, width=32):
        super().__init__(classify)
        w = width
        self.stem = nn.Sequential(ConvBlock(channels, w, 3, 2, 1, batch_norm=True),
                                  ConvBlock(w, w, 3, 1, 1, batch_norm=True, groups=w))
        self.stage1 = nn.Sequential(InvertedResidual(w, w * 2, 2, 2), InvertedResidual(w * 2, w * 2, 1, 2))
        self.stage2 = nn.Sequential(InvertedResidual(w * 2, w * 2, 2, 4), InvertedResidual(w * 2, w * 2, 1, 4),
                                    InvertedResidual(w * 2, w * 2, 1, 4))
        self.stage3 = nn.Sequential(InvertedResidual(w * 2, w * 4, 2, 4), InvertedResidual(w * 4, w * 4, 1, 4),
                                    InvertedResidual(w * 4, w * 4, 1, 4))
        self.stage4 = nn.Sequential(InvertedResidual(w * 4, w * 4, 2, 4), ConvBlock(w * 4, w * 8, 1, batch_norm=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        dim = w * 2 + w * 4 + w * 8
        self.fc = nn.Linear(dim, 2 * NUM_POINTS)
        self.build_face_head(dim)

    def features(self, x):
        s2 = self.stage2(self.stage1(self.stem(x)))
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        return torch.cat([torch.flatten(self.pool(t), 1) for t in (s2, s3, s4)], 1)

    def landmark_head(self, features):
        return self.fc(features)


@register("mobilenet")
def mobilenet(channels=1, size=112, classify=False):
    # Width 16: depthwise convolutions train slowly on a CPU; this keeps an epoch near 20 s.
    return MobileNet(channels, size, classify, width=16)


class HeatmapNet(LandmarkNet):
    """One heatmap per point on a 28x28 grid, decoded by soft-argmax (integral
    regression), so the output is still 42 coordinates and any point loss applies.

    A small U-shaped net of plain convolutions (cheap to train on a CPU): 28, 14
    and 7 pixel stages, the deep ones upsampled and added back at 28x28.
    """

    def __init__(self, channels=1, size=112, classify=False, width=32):
        super().__init__(classify)
        w = width
        self.stem = nn.Sequential(ConvBlock(channels, w // 2, 5, 2, 2, batch_norm=True), nn.AvgPool2d(2))
        self.stage28 = nn.Sequential(ConvBlock(w // 2, w, 3, 1, 1, batch_norm=True),
                                     ConvBlock(w, w, 3, 1, 1, batch_norm=True))
        self.stage14 = nn.Sequential(nn.AvgPool2d(2), ConvBlock(w, 2 * w, 3, 1, 1, batch_norm=True),
                                     ConvBlock(2 * w, 2 * w, 3, 1, 1, batch_norm=True))
        self.stage7 = nn.Sequential(nn.AvgPool2d(2), ConvBlock(2 * w, 4 * w, 3, 1, 1, batch_norm=True),
                                    ConvBlock(4 * w, 4 * w, 3, 1, 1, batch_norm=True))
        self.lateral14 = ConvBlock(4 * w, 2 * w, 1, batch_norm=True)
        self.lateral28 = ConvBlock(2 * w, w, 1, batch_norm=True)
        self.refine = ConvBlock(w, w, 3, 1, 1, batch_norm=True)
        self.heatmaps = nn.Conv2d(w, NUM_POINTS, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.build_face_head(4 * w)

    def features(self, x):
        up = nn.functional.interpolate
        f28 = self.stage28(self.stem(x))
        f14 = self.stage14(f28)
        f7 = self.stage7(f14)
        m14 = f14 + up(self.lateral14(f7), size=f14.shape[-2:], mode="bilinear", align_corners=False)
        m28 = f28 + up(self.lateral28(m14), size=f28.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(m28), f7

    def landmark_head(self, features):
        fused, _ = features
        logits = self.heatmaps(fused)
        b, k, h, w = logits.shape
        prob = torch.softmax(logits.reshape(b, k, h * w), -1).reshape(b, k, h, w)
        xs = (torch.arange(w, dtype=prob.dtype, device=prob.device) + 0.5) / w
        ys = (torch.arange(h, dtype=prob.dtype, device=prob.device) + 0.5) / h
        x = (prob.sum(2) * xs).sum(-1)
        y = (prob.sum(3) * ys).sum(-1)
        return torch.stack([x, y], -1).reshape(b, 2 * k)

    def forward(self, x):
        fused, deep = self.features(x)
        points = self.landmark_head((fused, deep))
        if self.classify:
            return points, self.face_head(self.pool(deep))
        return points


@register("heatmap")
def heatmap(channels=1, size=112, classify=False):
    return HeatmapNet(channels, size, classify)


def start_at_centre(layer: nn.Linear) -> None:
    """Make a regression layer start by answering the crop centre with small weights.

    Starting from 0 (the crop corner) costs an initial loss of thousands of px^2,
    whose first large steps leave the net on the mean-shape plateau for many epochs.
    """
    with torch.no_grad():
        layer.weight.mul_(0.1)
        layer.bias.fill_(0.5)


def build_net(name: str, channels: int = 1, size: int = 112, classify: bool = False) -> LandmarkNet:
    if name not in NETS:
        raise UsageError(f"unknown net {name!r}; choose one of {', '.join(sorted(NETS))}")
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    net = NETS[name](channels=channels, size=size, classify=classify)
    head = getattr(net, "ip3", None) or getattr(net, "fc", None)
    if isinstance(head, nn.Linear):
        start_at_centre(head)
    # oneDNN convolutions run faster on channels-last (NHWC) tensors, for every net here.
    return net.to(memory_format=torch.channels_last)


def layer_names(model: nn.Module) -> list[str]:
    """Names --freeze accepts: each top-level layer with parameters, and their
    prefixes before '_' (conv2 for conv2_1 and conv2_2)."""
    names = {name for name, child in model.named_children() if any(True for _ in child.parameters())}
    return sorted(names | {name.split("_")[0] for name in names if "_" in name})


def freeze(model: nn.Module, names: list[str]) -> list[str]:
    """Stop gradients for every layer named ``n`` or ``n_*``; returns the frozen layers."""
    valid = layer_names(model)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UsageError(f"--freeze: unknown layer {', '.join(unknown)}; valid names: {', '.join(valid)}")
    frozen = []
    for child_name, child in model.named_children():
        if any(child_name == n or child_name.startswith(n + "_") for n in names):
            for parameter in child.parameters():
                parameter.requires_grad_(False)
            # Batch norm statistics must stay fixed too.
            child.eval()
            frozen.append(child_name)
    return frozen


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
