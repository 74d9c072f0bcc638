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

from ..codecs import labelled, masked_mean
from ..registry import Registry


LOSSES: Registry[Callable[..., torch.Tensor]] = Registry("loss")


@LOSSES.register("mse")
def mse(pred, target, **_):
    return (pred - target) ** 2


@LOSSES.register("l1")
def l1(pred, target, **_):
    return (pred - target).abs()


@LOSSES.register("smooth_l1")
def smooth_l1(pred, target, **_):
    return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)


@LOSSES.register("wing")
def wing(pred, target, width=10.0, curvature=2.0, **_):
    """Wing loss (Feng et al., 2018): log-shaped for small errors, L1 for large."""
    error = (pred - target).abs()
    constant = width - width * math.log(1 + width / curvature)
    return torch.where(error < width, width * torch.log1p(error / curvature), error - constant)


def point_loss(name: str, width: float = 10.0, curvature: float = 2.0):
    """The loss ``name`` on pred, target [B, K, 2] -> its mean over the labelled points and both
    coordinates (``reduction='none'``: one value a sample). An unlabelled point (NaN target)
    adds nothing, its gradient included."""
    function = LOSSES.get(name)

    def loss(pred, target, reduction="mean"):
        mask = labelled(target)
        # The prediction stands in for a missing target: no error there, and no NaN in any gradient.
        target = torch.where(mask[..., None], target, pred.detach())
        per_point = function(pred, target, width=width, curvature=curvature).mean(-1)
        per_sample = masked_mean(per_point, mask)
        return per_sample if reduction == "none" else per_sample.mean()
    return loss


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


def eye_distance_weights(target: torch.Tensor, pair: tuple[int, int], power: float, cap: float = 4.0) -> torch.Tensor:
    """Per-face loss weights [B] from target points [B, K, 2]: (mean eye distance / the face's)^power,
    the eye distance being that of the ``pair`` of points NME_io divides by. A turned head's eyes
    are close, so NME_io counts its pixel errors more; this weighs its loss alike. Capped at
    ``cap`` (a profile's eye corners nearly meet), then scaled to mean 1; faces without both
    points (non-faces, unlabelled) weigh 1."""
    distance = (target[:, pair[0]] - target[:, pair[1]]).norm(dim=-1)
    known = torch.isfinite(distance) & (distance > 0)
    weights = torch.ones_like(distance)
    if known.any():
        weights[known] = (distance[known].mean() / distance[known]).pow(power).clamp(max=cap)
    return weights / weights.mean()


def hard_face_weights(per_face: torch.Tensor, is_face: torch.Tensor, power: float, cap: float = 4.0) -> torch.Tensor:
    """Per-face loss weights [B] from the faces' own losses [B]: (the face's loss / the faces' mean)^power,
    capped at ``cap``, then scaled to mean 1; non-faces weigh 1. No gradient flows through them: a face the
    net gets badly wrong counts more, as the failure rate counts it, without the net lowering its
    weight by other means."""
    per_face = per_face.detach()
    weights = torch.ones_like(per_face)
    faces = is_face.bool() & torch.isfinite(per_face)
    if faces.any():
        mean = per_face[faces].mean().clamp_min(1e-12)
        weights[faces] = (per_face[faces] / mean).clamp_min(0).pow(power).clamp(max=cap)
    return weights / weights.mean()
