"""What a landmark head's output means: each codec decodes a head's raw output into points
and gives the training loss, so any head pairs with any trunk.

Points are [B, K, 2] shares of the crop: (x / size, y / size), pixel i covering
[i, i + 1) of the crop, so 0.5 is the centre. Losses compare points in pixels of
the crop (``size`` * shares) with the target, or work on the target's own encoding.
"""

from __future__ import annotations

import torch

CODECS: dict[str, type["Codec"]] = {}


def register(cls):
    CODECS[cls.name] = cls
    return cls


class Codec:
    """Base: ``decode`` raw output -> [B, K, 2] shares of the crop; ``loss`` in crop pixels."""

    name = ""

    def __init__(self, num_points: int):
        self.num_points = num_points

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, raw: torch.Tensor, target: torch.Tensor, size: int, point_loss, reduction: str = "mean"):
        """``point_loss`` on decoded points against ``target`` [B, K, 2] in crop pixels."""
        return point_loss(self.decode(raw).float() * size, target, reduction=reduction)


@register
class Regression(Codec):
    """Coordinates regressed directly: raw [B, 2K] = (x0, y0, x1, y1, ...) as shares of the crop."""

    name = "regression"

    def decode(self, raw):
        return raw.reshape(raw.shape[0], self.num_points, 2)


def grid_centres(cells: int, like: torch.Tensor) -> torch.Tensor:
    """Centres of ``cells`` equal cells of [0, 1] -> [cells]."""
    return (torch.arange(cells, dtype=like.dtype, device=like.device) + 0.5) / cells


@register
class SoftArgmax(Codec):
    """Heatmaps read by soft-argmax (integral regression): raw [B, K, H, W] logits, each point the
    expected cell centre under the softmax of its map. Differentiable, so any point loss applies."""

    name = "soft_argmax"

    def decode(self, raw):
        b, k, h, w = raw.shape
        prob = torch.softmax(raw.reshape(b, k, h * w), -1).reshape(b, k, h, w)
        x = (prob.sum(2) * grid_centres(w, prob)).sum(-1)
        y = (prob.sum(3) * grid_centres(h, prob)).sum(-1)
        return torch.stack([x, y], -1)


def build_codec(name: str, num_points: int) -> Codec:
    return CODECS[name](num_points)
