"""Face detector nets: a light trunk over the whole picture, a feature pyramid back to stride 4,
and dense heads read by the ``CentreBoxes`` codec (centre heat map, box size, offset)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from ..registry import Registry

FACE_NETS: Registry[Callable[..., "FaceNet"]] = Registry("face detector net")
register_face_net = FACE_NETS.register


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, added to the input: cheap context at one resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels, 3, groups=channels),
                                  conv_bn(channels, channels, 1, act=False))

    def forward(self, x):
        return F.relu(x + self.body(x), inplace=True)


def stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cout, 3, 2), *[Residual(cout) for _ in range(blocks)])


class FaceNet(nn.Module):
    """Trunk at strides 4, 8, 16, 32; top-down pyramid to stride 4; heads: heat [B, 1, H/4, W/4],
    size [B, 2, ...] (log box side in cells), offset [B, 2, ...] (centre inside its cell)."""

    stride = 4

    def __init__(self, widths=(16, 32, 64, 96, 128), blocks=(1, 2, 2, 2), head: int = 32):
        super().__init__()
        w = widths
        self.stem = nn.Sequential(conv_bn(3, w[0], 3, 2), conv_bn(w[0], w[1], 3, 2),
                                  *[Residual(w[1]) for _ in range(blocks[0])])
        self.stage8 = stage(w[1], w[2], blocks[1])
        self.stage16 = stage(w[2], w[3], blocks[2])
        self.stage32 = stage(w[3], w[4], blocks[3])
        self.lateral = nn.ModuleList([nn.Conv2d(c, head, 1) for c in (w[1], w[2], w[3], w[4])])
        self.neck = nn.Sequential(conv_bn(head, head, 3, groups=head), conv_bn(head, head, 1))
        self.heat = nn.Conv2d(head, 1, 1)
        self.size = nn.Conv2d(head, 2, 1)
        self.offset = nn.Conv2d(head, 2, 1)
        # Start every cell at a low face probability (0.01), as CenterNet does, so the
        # focal loss is not swamped by easy background at the first steps.
        nn.init.constant_(self.heat.bias, -math.log(99.0))
        nn.init.constant_(self.size.bias, math.log(8.0))

    def forward(self, x) -> dict:
        f4 = self.stem(x)
        f8 = self.stage8(f4)
        f16 = self.stage16(f8)
        f32 = self.stage32(f16)
        top = self.lateral[3](f32)
        for lateral, feature in zip(self.lateral[2::-1], (f16, f8, f4)):
            top = lateral(feature) + F.interpolate(top, size=feature.shape[-2:], mode="nearest")
        shared = self.neck(top)
        return {"heat": self.heat(shared), "size": self.size(shared), "offset": self.offset(shared)}


@register_face_net("faces")
def faces_net():
    return FaceNet()


@register_face_net("faces_small")
def faces_small_net():
    """Half the channels: faster, for the speed-accuracy trade-off measured in docs/face-detector.md."""
    return FaceNet(widths=(8, 16, 32, 64, 96), head=24)


def build_face_net(config) -> FaceNet:
    factory = FACE_NETS.get(config.net)
    if config.channels != 3:
        raise UsageError("the face detector reads RGB pictures: --channels 3")
    return factory().to(memory_format=torch.channels_last)


def fuse_batch_norm(module: nn.Module) -> nn.Module:
    """Fold each conv -> batch norm pair (a Sequential that starts with them) into the conv, in
    place, for inference: the same outputs in fewer passes. Only for a net in eval mode that will
    not be trained again."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential) and len(child) >= 2 and isinstance(child[0], nn.Conv2d) \
                and isinstance(child[1], nn.BatchNorm2d):
            conv, bn = child[0], child[1]
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            setattr(module, name, nn.Sequential(fused, *list(child)[2:]))
        else:
            fuse_batch_norm(child)
    return module
