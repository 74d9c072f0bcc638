"""Point losses and the stage-3 loss (classification + landmark loss masked to faces).

Point losses take pred, target [B, K, 2] in pixels of the resized crop and
return the mean over batch, points and coordinates (or, with
``reduction='none'``, one value per sample [B]).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry


LOSSES: Registry[Callable[..., torch.Tensor]] = Registry("loss")


def _reduce(per_element: torch.Tensor, reduction: str) -> torch.Tensor:
    per_sample = per_element.flatten(1).mean(1)
    return per_sample if reduction == "none" else per_sample.mean()


@LOSSES.register("mse")
def mse(pred, target, reduction="mean", **_):
    return _reduce((pred - target) ** 2, reduction)


@LOSSES.register("l1")
def l1(pred, target, reduction="mean", **_):
    return _reduce((pred - target).abs(), reduction)


@LOSSES.register("smooth_l1")
def smooth_l1(pred, target, reduction="mean", **_):
    return _reduce(F.smooth_l1_loss(pred, target, reduction="none", beta=1.0), reduction)


@LOSSES.register("wing")
def wing(pred, target, reduction="mean", width=10.0, curvature=2.0, **_):
    """Wing loss (Feng et al., 2018): log-shaped for small errors, L1 for large."""
    error = (pred - target).abs()
    constant = width - width * math.log(1 + width / curvature)
    loss = torch.where(error < width, width * torch.log1p(error / curvature), error - constant)
    return _reduce(loss, reduction)


def point_loss(name: str, width: float = 10.0, curvature: float = 2.0):
    function = LOSSES.get(name)
    return lambda pred, target, reduction="mean": function(
        pred, target, reduction=reduction, width=width, curvature=curvature)


def stage3_loss(points_loss_per_sample: torch.Tensor, logits: torch.Tensor, is_face: torch.Tensor,
                cls_weight: float, landmark_weight: float, class_weights: torch.Tensor):
    """a * cross entropy + b * landmark loss over faces only -> (total, cls, landmark).

    points_loss_per_sample: [B]; logits: [B, 2]; is_face: [B] bool. A batch
    without faces adds zero landmark loss, never NaN.
    """
    cls = F.cross_entropy(logits, is_face.long(), weight=class_weights.to(logits))
    faces = is_face.float()
    landmark = (points_loss_per_sample * faces).sum() / faces.sum().clamp(min=1.0)
    return cls_weight * cls + landmark_weight * landmark, cls, landmark
