"""What a head's output means: each codec decodes a head's raw output (points, or face boxes)
and gives the training loss, so any head pairs with any trunk.

Points are [B, K, 2] shares of the crop: (x / size, y / size), pixel i covering
[i, i + 1) of the crop, so 0.5 is the centre. Losses compare points in pixels of
the crop (``size`` * shares) with the target, or work on the target's own encoding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import nms

from .registry import Registry

CODECS: Registry[type["Codec"]] = Registry("codec")


def labelled(target: torch.Tensor) -> torch.Tensor:
    """[B, K, 2] targets -> [B, K] True where the point is labelled (NaN: left unlabelled)."""
    return torch.isfinite(target).all(-1)


def masked_mean(per_point: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, K] values, [B, K] mask -> [B] the mean over each sample's labelled points (0 if none)."""
    mask = mask.to(per_point.dtype)
    return (per_point * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def register(cls):
    return CODECS.register(cls.name)(cls)


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


@register
class HeatmapOffset(Codec):
    """PIPNet's target: a score map per point on a coarse grid and, per cell, the point's position
    inside it. raw: {"heat": [B, K, H, W] logits, "offset": [B, 2K, H, W] (x then y for each point,
    in cells)}. The loss classifies the point's cell (cross entropy over the H*W cells) and
    regresses the offset at the true cell (L1); decoding takes the best cell plus its offset."""

    name = "heatmap_offset"

    def __init__(self, num_points: int, offset_weight: float = 5.0):
        super().__init__(num_points)
        self.offset_weight = offset_weight

    def encode(self, points: torch.Tensor, height: int, width: int):
        """[B, K, 2] shares of the crop -> (cell index [B, K], offset [B, K, 2] inside the cell)."""
        grid = points * torch.tensor([width, height], dtype=points.dtype, device=points.device)
        cell = grid.floor().clamp(min=torch.zeros(2, device=points.device),
                                  max=torch.tensor([width - 1, height - 1], dtype=points.dtype, device=points.device))
        index = (cell[..., 1] * width + cell[..., 0]).long()
        return index, grid - cell

    def decode(self, raw):
        heat, offset = raw["heat"], raw["offset"]
        b, k, h, w = heat.shape
        index = heat.reshape(b, k, h * w).argmax(-1)  # [B, K]
        offsets = offset.reshape(b, k, 2, h * w).gather(3, index[:, :, None, None].expand(b, k, 2, 1))[..., 0]
        cells = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], -1).to(offsets.dtype)
        return (cells + offsets) / torch.tensor([w, h], dtype=offsets.dtype, device=offsets.device)

    def loss(self, raw, target, size, point_loss, reduction="mean"):
        heat, offset = raw["heat"].float(), raw["offset"].float()
        b, k, h, w = heat.shape
        mask = labelled(target)
        index, inside = self.encode(torch.where(mask[..., None], target, size / 2) / size, h, w)
        cls = F.cross_entropy(heat.reshape(b * k, h * w), index.reshape(-1), reduction="none").reshape(b, k)
        at_cell = offset.reshape(b, k, 2, h * w).gather(3, index[:, :, None, None].expand(b, k, 2, 1))[..., 0]
        reg = (at_cell - inside).abs().sum(-1)  # [B, K]
        per_sample = masked_mean(cls + self.offset_weight * reg, mask)
        return per_sample if reduction == "none" else per_sample.mean()


@register
class SimCC(Codec):
    """SimCC: each coordinate classified into ``bins`` per crop side (``bins`` / size bins a pixel).
    raw: {"x": [B, K, bins], "y": [B, K, bins]} logits. The loss is the cross entropy to a
    Gaussian around the true bin (sigma in bins), the KL divergence up to a constant; decoding
    is the expected position under the softmax, which keeps sub-bin precision. ``coord_weight``
    adds that much of the point loss on the decoded points, the positions the metrics read."""

    name = "simcc"

    def __init__(self, num_points: int, sigma: float = 1.5, coord_weight: float = 0.0):
        super().__init__(num_points)
        self.sigma = sigma
        self.coord_weight = coord_weight

    def encode(self, points: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, K, 2] shares -> Gaussian label distributions for x and y, each [B, K, bins]."""
        centres = grid_centres(bins, points) * bins
        # A point outside the crop (augmentation moves some there) is labelled at the nearest edge bin.
        points = points.clamp(0.5 / bins, 1 - 0.5 / bins)
        labels = []
        for axis in (0, 1):
            distance = centres - points[..., axis:axis + 1] * bins
            label = torch.exp(-0.5 * (distance / self.sigma) ** 2)
            labels.append(label / label.sum(-1, keepdim=True))
        return labels[0], labels[1]

    def decode(self, raw):
        x, y = raw["x"], raw["y"]
        bins_x, bins_y = x.shape[-1], y.shape[-1]
        px = (torch.softmax(x.float(), -1) * grid_centres(bins_x, x.float())).sum(-1)
        py = (torch.softmax(y.float(), -1) * grid_centres(bins_y, y.float())).sum(-1)
        return torch.stack([px, py], -1)

    def loss(self, raw, target, size, point_loss, reduction="mean"):
        x, y = raw["x"].float(), raw["y"].float()
        mask = labelled(target)  # an unlabelled point (NaN) adds nothing
        label_x, label_y = self.encode(torch.where(mask[..., None], target, size / 2) / size, x.shape[-1])
        # Cross entropy to the soft label: the KL divergence up to the label's own entropy
        # (F.kl_div makes NaN where a label's far bins underflow to 0).
        per_point = -(label_x * F.log_softmax(x, -1)).sum(-1) - (label_y * F.log_softmax(y, -1)).sum(-1)
        per_sample = masked_mean(per_point, mask)
        if self.coord_weight:
            per_sample = per_sample + self.coord_weight * point_loss(
                self.decode(raw) * size, target, reduction="none")
        return per_sample if reduction == "none" else per_sample.mean()


def build_codec(name: str, num_points: int, simcc_sigma: float | None = None,
                simcc_coord_weight: float = 0.0) -> Codec:
    """``simcc_sigma`` and ``simcc_coord_weight`` shape the simcc codec's training loss (decoding
    reads neither)."""
    if name == "simcc":
        spread = {} if simcc_sigma is None else {"sigma": simcc_sigma}
        return SimCC(num_points, coord_weight=simcc_coord_weight, **spread)
    return CODECS.get(name)(num_points)


class CentreBoxes:
    """Face boxes as dense targets on a grid of ``stride`` pixels, in the manner of CenterNet:
    a Gaussian peak at each box centre (``heat``), and at the centre's cell the box's log size
    in cells (``size``) and the centre's position inside the cell (``offset``).

    Boxes are (x1, y1, x2, y2) in input pixels, pixel i covering [i, i + 1).
    """

    def __init__(self, stride: int = 4, spread: float = 0.54):
        self.stride = stride
        self.spread = spread  # Gaussian sigma = spread * box side / 6, per axis (TTFNet's alpha)

    def encode(self, boxes: list, height: int, width: int) -> dict:
        """Per-image [F, 4] box arrays -> target tensors for a ``height`` x ``width`` grid:
        heat [B, 1, H, W] in [0, 1], size and offset [B, 2, H, W], mask [B, 1, H, W] (1 at centres)."""
        b = len(boxes)
        heat = torch.zeros(b, 1, height, width)
        size = torch.zeros(b, 2, height, width)
        offset = torch.zeros(b, 2, height, width)
        mask = torch.zeros(b, 1, height, width)
        ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
        xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
        for i, image_boxes in enumerate(boxes):
            image_boxes = torch.as_tensor(image_boxes, dtype=torch.float32).reshape(-1, 4)
            # Larger faces first, so a small face's peak is drawn over a big one's tail.
            order = torch.argsort((image_boxes[:, 2] - image_boxes[:, 0]) * (image_boxes[:, 3] - image_boxes[:, 1]),
                                  descending=True)
            for x1, y1, x2, y2 in image_boxes[order].tolist():
                w, h = (x2 - x1) / self.stride, (y2 - y1) / self.stride
                cx, cy = (x1 + x2) / 2 / self.stride, (y1 + y2) / 2 / self.stride
                col, row = int(cx), int(cy)
                if not (0 <= col < width and 0 <= row < height) or w <= 0 or h <= 0:
                    continue
                sx, sy = max(self.spread * w / 6, 0.3), max(self.spread * h / 6, 0.3)
                # The peak is 1 at the centre's cell, not at the exact centre.
                gauss = torch.exp(-((xs - (col + 0.5)) ** 2) / (2 * sx * sx) - ((ys - (row + 0.5)) ** 2) / (2 * sy * sy))
                heat[i, 0] = torch.maximum(heat[i, 0], gauss)
                size[i, :, row, col] = torch.tensor([math.log(w), math.log(h)])
                offset[i, :, row, col] = torch.tensor([cx - col, cy - row])
                mask[i, 0, row, col] = 1.0
        return {"heat": heat, "size": size, "offset": offset, "mask": mask}

    def loss(self, raw: dict, target: dict, size_weight: float = 0.1, offset_weight: float = 1.0):
        """CenterNet's penalty-reduced focal loss on the heat map plus L1 on size and offset at
        the centres, each averaged over the boxes -> (total, heat, size, offset)."""
        logits = raw["heat"].float()
        heat = target["heat"]
        mask = target["mask"]
        count = mask.sum().clamp(min=1.0)
        log_p = F.logsigmoid(logits)
        log_not_p = F.logsigmoid(-logits)
        p = torch.sigmoid(logits)
        positive = mask * (1 - p) ** 2 * log_p
        negative = (1 - mask) * (1 - heat) ** 4 * p ** 2 * log_not_p
        heat_loss = -(positive.sum() + negative.sum()) / count
        size_loss = (F.l1_loss(raw["size"].float(), target["size"], reduction="none") * mask).sum() / count
        offset_loss = (F.l1_loss(raw["offset"].float(), target["offset"], reduction="none") * mask).sum() / count
        total = heat_loss + size_weight * size_loss + offset_weight * offset_loss
        return total, heat_loss, size_loss, offset_loss

    def decode(self, raw: dict, threshold: float = 0.3, top_k: int = 200, nms_iou: float = 0.5) -> list:
        """Raw outputs -> per image (boxes [N, 4] in input pixels, scores [N]): local maxima of the
        heat map above ``threshold``, at most ``top_k``, overlaps removed by torchvision's NMS."""
        heat = torch.sigmoid(raw["heat"].float())
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        b, _, h, w = heat.shape
        scores, index = peaks.reshape(b, -1).topk(min(top_k, h * w), dim=1)
        results = []
        for i in range(b):
            keep = scores[i] >= threshold
            cells, score = index[i][keep], scores[i][keep]
            rows, cols = (cells // w), (cells % w)
            cx = (cols.float() + raw["offset"][i, 0, rows, cols].float()) * self.stride
            cy = (rows.float() + raw["offset"][i, 1, rows, cols].float()) * self.stride
            bw = torch.exp(raw["size"][i, 0, rows, cols].float()) * self.stride
            bh = torch.exp(raw["size"][i, 1, rows, cols].float()) * self.stride
            boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
            kept = nms(boxes, score, nms_iou)
            results.append((boxes[kept], score[kept]))
        return results
