"""Landmark nets, chosen by name.

A net is a trunk (``features``) and heads: the landmark head, whose raw output its
codec reads (``codec``: coordinates as shares of the crop, or heatmaps), a face/non-face
branch when built with ``classify`` (stage 3), and one classifier per auxiliary attribute
(TCDCN). ``forward`` returns a dict: ``points`` (raw landmark output), ``face_logits``
[B, 2] and ``aux`` {attribute: logits}. :func:`register` adds a net.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from ..registry import Registry
from .layers import ConvBlock, LinearBlock, PointAttention, PReLU, conv_prelu_pool

NETS: Registry[Callable[..., "LandmarkNet"]] = Registry("net")
register = NETS.register


class LandmarkNet(nn.Module):
    """Base: ``features`` -> ``landmark_head`` (+ ``face_head``, ``aux_heads`` on ``pooled`` features)."""

    codec = "regression"

    def __init__(self, num_points: int, classify: bool, aux_classes: dict[str, int] | None = None):
        super().__init__()
        self.num_points = num_points
        self.classify = classify
        self.aux_classes = dict(aux_classes or {})

    def features(self, x: torch.Tensor):
        raise NotImplementedError

    def landmark_head(self, features) -> torch.Tensor:
        raise NotImplementedError

    def pooled(self, features) -> torch.Tensor:
        """[B, D] features for the face branch and the attribute heads."""
        return features

    def build_side_heads(self, feature_dim: int) -> None:
        """The face/non-face branch (when classifying) and one head per auxiliary attribute."""
        if self.classify:
            self.face_head = nn.Sequential(nn.Flatten(), nn.Linear(feature_dim, 64), PReLU(), nn.Linear(64, 2))
        if self.aux_classes:
            self.aux_heads = nn.ModuleDict({name: nn.Sequential(nn.Flatten(), nn.Linear(feature_dim, 64), PReLU(),
                                                                nn.Linear(64, classes))
                                            for name, classes in self.aux_classes.items()})

    def forward(self, x) -> dict:
        shared = self.features(x)
        out = {"points": self.landmark_head(shared)}
        if self.classify or self.aux_classes:
            pooled = self.pooled(shared)
            if self.classify:
                out["face_logits"] = self.face_head(pooled)
            if self.aux_classes:
                out["aux"] = {name: head(pooled) for name, head in self.aux_heads.items()}
        return out


class Stage1Net(LandmarkNet):
    """The course's stage-1 net: small PReLU CNN with average pooling, 3 dense layers.

    ``head`` picks the landmark head and so its codec: ``regression`` (ip1-ip3, the course's),
    ``heatmap_offset`` (PIPNet-style score and offset maps on the last 4x4 feature map),
    ``simcc`` (ip1, ip2, then per-point x and y bin logits), ``simcc_map`` (RTMPose's SimCC
    head without its attention: each point reads its own map of the last features, one 3x3
    convolution, through a layer shared by the points, then the x and y bin logits),
    ``simcc_fine`` (the same on maps of twice the resolution: the point maps upsampled and added
    to a 1x1 convolution of the third stage's features before their pooling) or ``simcc_gau``
    (``simcc_map`` with RTMPose's attention layer between the points' vectors and their bins).
    """

    SIMCC_FEATURES = 64  # per-point vector the shared x and y classifiers read
    POINT_FEATURES = 256  # point-map heads: per-point vector read from the point's own map, by default
    HEADS = ("regression", "heatmap_offset", "simcc", "simcc_map", "simcc_fine", "simcc_gau")
    POINT_MAP_HEADS = ("simcc_map", "simcc_fine", "simcc_gau")  # SimCC read from one map a point

    def __init__(self, channels, size, num_points, classify=False, aux_classes=None, batch_norm=False, width=1,
                 head="regression", point_features=POINT_FEATURES):
        super().__init__(num_points, classify, aux_classes)
        if head not in self.HEADS:
            raise UsageError(f"stage-1 nets take the heads {', '.join(self.HEADS)}; not {head!r}")
        self.head = head
        self.codec = "simcc" if head in self.POINT_MAP_HEADS else head
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
        with torch.no_grad():
            probe = self.features(torch.zeros(1, channels, size, size))
        shape = self.last_map(probe).shape[1:]
        flat = shape.numel()
        if head == "heatmap_offset":
            self.heat = nn.Conv2d(c[4], num_points, 1)
            self.offset = nn.Conv2d(c[4], 2 * num_points, 1)
        elif head in self.POINT_MAP_HEADS:
            self.point_maps = nn.Conv2d(c[4], num_points, 3, padding=1)
            map_area = shape[1] * shape[2]
            if head == "simcc_fine":
                self.fine_maps = nn.Conv2d(c[2], num_points, 1)
                map_area = probe[1].shape[2:].numel()
            self.point_vector = LinearBlock(map_area, point_features)
            if head == "simcc_gau":
                self.point_attention = PointAttention(point_features)
            self.bins_x = nn.Linear(point_features, 2 * size)
            self.bins_y = nn.Linear(point_features, 2 * size)
        else:
            self.ip1 = LinearBlock(flat, 128 * width)
            self.ip2 = LinearBlock(128 * width, 128 * width)
        if head == "regression":
            self.ip3 = nn.Linear(128 * width, 2 * num_points)
        elif head == "simcc":
            self.ip3 = LinearBlock(128 * width, num_points * self.SIMCC_FEATURES)
            self.bins_x = nn.Linear(self.SIMCC_FEATURES, 2 * size)
            self.bins_y = nn.Linear(self.SIMCC_FEATURES, 2 * size)
        self.build_side_heads(flat)
        # PyTorch's default init shrinks activations through this un-normalized
        # stack, so at first only the biases learn (a long mean-shape plateau).
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, a=0.25, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if head == "simcc_gau":
            self.point_attention.reset_parameters()

    def features(self, x):
        """The last feature map; for ``simcc_fine`` also the third stage's, before its pooling."""
        x = conv_prelu_pool(self.conv1_1, self.pool1, x)
        x = conv_prelu_pool(self.conv2_2, self.pool2, self.conv2_1(x))
        if self.head == "simcc_fine":
            fine = self.conv3_2(self.conv3_1(x))
            return self.conv4_2(self.conv4_1(self.pool3(fine))), fine
        x = conv_prelu_pool(self.conv3_2, self.pool3, self.conv3_1(x))
        return self.conv4_2(self.conv4_1(x))

    def last_map(self, features):
        return features[0] if self.head == "simcc_fine" else features

    def pooled(self, features):
        return torch.flatten(self.last_map(features), 1)

    def landmark_head(self, features):
        if self.codec == "heatmap_offset":
            return {"heat": self.heat(features), "offset": self.offset(features)}
        if self.head in self.POINT_MAP_HEADS:
            if self.head == "simcc_fine":
                coarse, fine = features
                maps = self.fine_maps(fine) + F.interpolate(self.point_maps(coarse), size=fine.shape[-2:],
                                                            mode="bilinear", align_corners=False)
            else:
                maps = self.point_maps(features)
            per_point = self.point_vector(torch.flatten(maps, 2))  # [B, K, features]
            if self.head == "simcc_gau":
                per_point = self.point_attention(per_point)
            return {"x": self.bins_x(per_point), "y": self.bins_y(per_point)}
        vector = self.ip2(self.ip1(torch.flatten(features, 1)))
        if self.codec == "regression":
            return self.ip3(vector)
        per_point = self.ip3(vector).reshape(-1, self.num_points, self.SIMCC_FEATURES)  # -1: traced exports keep any batch
        return {"x": self.bins_x(per_point), "y": self.bins_y(per_point)}


@register("stage1")
def stage1(**spec):
    return Stage1Net(**spec, batch_norm=False)


@register("stage1_bn")
def stage1_bn(**spec):
    return Stage1Net(**spec, batch_norm=True)


@register("stage1_wide")
def stage1_wide(**spec):
    """The stage-1 layout with batch norm at twice the width: more capacity, still cheap."""
    return Stage1Net(**spec, batch_norm=True, width=2)


class ResNet18Net(LandmarkNet):
    """torchvision's ResNet-18 body from scratch, for 1 or 3 channels at 112x112.

    The 7x7 stride-2 stem and max-pool are replaced by a 3x3 stride-2 stem, so
    the last stage sees 7x7 instead of 4x4 on a 112 crop.
    """

    def __init__(self, channels, size, num_points, classify=False, aux_classes=None):
        super().__init__(num_points, classify, aux_classes)
        from torchvision.models import resnet18

        body = resnet18(weights=None)
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.layer1, self.layer2, self.layer3, self.layer4 = body.layer1, body.layer2, body.layer3, body.layer4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 2 * num_points)
        self.build_side_heads(512)

    def features(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return torch.flatten(self.pool(x), 1)

    def landmark_head(self, features):
        return self.fc(features)


@register("resnet18")
def resnet18_net(**spec):
    return ResNet18Net(**spec)


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

    def __init__(self, channels, size, num_points, classify=False, aux_classes=None, width=32):
        super().__init__(num_points, classify, aux_classes)
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
        self.fc = nn.Linear(dim, 2 * num_points)
        self.build_side_heads(dim)

    def features(self, x):
        s2 = self.stage2(self.stage1(self.stem(x)))
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        return torch.cat([torch.flatten(self.pool(t), 1) for t in (s2, s3, s4)], 1)

    def landmark_head(self, features):
        return self.fc(features)


@register("mobilenet")
def mobilenet(**spec):
    # Width 16: depthwise convolutions train slowly on a CPU; this keeps an epoch near 20 s.
    return MobileNet(**spec, width=16)


class HeatmapNet(LandmarkNet):
    """One heatmap per point on a 28x28 grid, read by soft-argmax (integral regression,
    the ``soft_argmax`` codec), so any point loss applies.

    A small U-shaped net of plain convolutions (cheap to train on a CPU): 28, 14
    and 7 pixel stages, the deep ones upsampled and added back at 28x28.
    """

    def __init__(self, channels, size, num_points, classify=False, aux_classes=None, width=32):
        super().__init__(num_points, classify, aux_classes)
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
        self.heatmaps = nn.Conv2d(w, num_points, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.build_side_heads(4 * w)

    def features(self, x):
        up = nn.functional.interpolate
        f28 = self.stage28(self.stem(x))
        f14 = self.stage14(f28)
        f7 = self.stage7(f14)
        m14 = f14 + up(self.lateral14(f7), size=f14.shape[-2:], mode="bilinear", align_corners=False)
        m28 = f28 + up(self.lateral28(m14), size=f28.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(m28), f7

    codec = "soft_argmax"

    def landmark_head(self, features):
        fused, _ = features
        return self.heatmaps(fused)

    def pooled(self, features):
        _, deep = features
        return self.pool(deep)


@register("heatmap")
def heatmap(**spec):
    return HeatmapNet(**spec)


def start_at_centre(layer: nn.Linear) -> None:
    """Make a regression layer start by answering the crop centre with small weights.

    Starting from 0 (the crop corner) costs an initial loss of thousands of px^2,
    whose first large steps leave the net on the mean-shape plateau for many epochs.
    """
    with torch.no_grad():
        layer.weight.mul_(0.1)
        layer.bias.fill_(0.5)


def build_net(name: str, *, num_points: int, channels: int = 1, size: int = 112, classify: bool = False,
              aux_classes: dict[str, int] | None = None, head: str = "",
              point_features: int = Stage1Net.POINT_FEATURES) -> LandmarkNet:
    """The net ``name``; ``head`` (a codec name) replaces its own landmark head where it offers others;
    ``point_features`` sizes the point-map heads' per-point vector."""
    factory = NETS.get(name)
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    spec = {"channels": channels, "size": size, "num_points": num_points, "classify": classify,
            "aux_classes": aux_classes}
    if head:
        spec["head"] = head
    if head in Stage1Net.POINT_MAP_HEADS:
        spec["point_features"] = point_features
    elif point_features != Stage1Net.POINT_FEATURES:
        *others, last = Stage1Net.POINT_MAP_HEADS
        raise UsageError(f"--simcc-features sizes the {', '.join(others)} and {last} heads only, "
                         f"not --head {head or 'of net ' + name}")
    try:
        net = factory(**spec)
    except TypeError:
        raise UsageError(f"net {name} has one landmark head; --head {head} needs a stage-1 net") from None
    regression = getattr(net, "ip3", None) or getattr(net, "fc", None)
    if net.codec == "regression" and isinstance(regression, nn.Linear):
        start_at_centre(regression)
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
