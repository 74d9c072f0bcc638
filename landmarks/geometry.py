"""Pure geometry on boxes and points.

Conventions: boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates,
where pixel ``i`` covers ``[i, i + 1)``; points are ``[..., 2]`` arrays of
``(x, y)`` in the same coordinates.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.ops import box_iou

# The course's crop recipe: the face box grown by a quarter of its size on every side.
EXPAND_RATIO = 0.25


def expand_box(box, ratio: float = EXPAND_RATIO) -> np.ndarray:
    """Grow ``box`` by ``ratio`` of its width and height on every side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = ratio * (x2 - x1), ratio * (y2 - y1)
    return np.array([x1 - dx, y1 - dy, x2 + dx, y2 + dy])


def clamp_box(box, width: int, height: int) -> np.ndarray:
    """Clip ``box`` to the image ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                     min(max(x2, 0.0), width), min(max(y2, 0.0), height)])


def snap_box_outward(box) -> np.ndarray:
    """Round a box outward to whole pixels, so a crop is a plain array slice."""
    x1, y1, x2, y2 = (float(v) for v in box)
    # The small tolerance keeps 10.0000001 from growing to 11.
    return np.array([math.floor(x1 + 1e-6), math.floor(y1 + 1e-6),
                     math.ceil(x2 - 1e-6), math.ceil(y2 - 1e-6)], dtype=np.float64)


def crop_box(face_box, width: int, height: int, ratio: float = EXPAND_RATIO) -> np.ndarray:
    """The training crop of a face: expanded by ``ratio``, clamped, whole pixels."""
    return snap_box_outward(clamp_box(expand_box(face_box, ratio), width, height))


def box_size(box) -> np.ndarray:
    """``[..., 4]`` boxes -> ``[..., 2]`` (width, height)."""
    box = np.asarray(box, dtype=np.float64)
    return np.stack([box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]], axis=-1)


def box_scale(box) -> np.ndarray:
    """``[..., 4]`` boxes' sizes as one length each -> ``[...]``: sqrt(width * height), each side
    taken as at least 1 px."""
    return np.sqrt(np.prod(np.maximum(box_size(box), 1.0), axis=-1))


def box_centre(box) -> np.ndarray:
    """``[..., 4]`` boxes -> ``[..., 2]`` centres."""
    box = np.asarray(box, dtype=np.float64)
    return (box[..., :2] + box[..., 2:]) / 2


def contains(box, points) -> np.ndarray:
    """Which of ``[N, 2]`` points lie in one ``[4]`` box, edges included -> ``[N]`` bool."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return ((points >= box[:2]) & (points <= box[2:])).all(1)


def to_crop(points, region, size) -> np.ndarray:
    """Map points in image pixels into a crop of ``region`` resized to ``size=(w, h)``.

    points: [..., K, 2]; region: [..., 4]; returns [..., K, 2].
    """
    points = np.asarray(points, dtype=np.float64)
    region = np.asarray(region, dtype=np.float64)
    scale = np.asarray(size, dtype=np.float64) / box_size(region)
    return (points - region[..., None, :2]) * scale[..., None, :]


def from_crop(points, region, size) -> np.ndarray:
    """Inverse of :func:`to_crop`: crop pixels of a ``size`` crop back to image pixels."""
    points = np.asarray(points, dtype=np.float64)
    region = np.asarray(region, dtype=np.float64)
    scale = box_size(region) / np.asarray(size, dtype=np.float64)
    return points * scale[..., None, :] + region[..., None, :2]


def iou(box, boxes) -> np.ndarray:
    """Intersection over union of one ``[4]`` box with ``[N, 4]`` boxes -> ``[N]`` (torchvision's box_iou)."""
    box = torch.as_tensor(np.asarray(box, dtype=np.float64).reshape(1, 4))
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return box_iou(box, boxes)[0].numpy()


def covered_share(box, boxes) -> np.ndarray:
    """The share of one ``[4]`` box's area that each of ``[N, 4]`` boxes covers -> ``[N]``."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-12)
    return wh[:, 0] * wh[:, 1] / area


def flip_points(points, width: float, permutation) -> np.ndarray:
    """Mirror ``[..., K, 2]`` points in an image ``width`` wide; ``permutation`` (the scheme's
    flip permutation) swaps left and right points."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-2] != len(permutation):
        raise ValueError(f"flip permutation has {len(permutation)} points, the points {points.shape[-2]}")
    mirrored = points.copy()
    mirrored[..., 0] = width - mirrored[..., 0]
    return mirrored[..., list(permutation), :]


def affine_points(points, matrix) -> np.ndarray:
    """``[..., 2]`` points moved by a [2, 3] affine ``matrix`` acting on (x, y, 1), as OpenCV's
    warpAffine moves the pixels."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def turn_points(points, degrees: float, centre) -> np.ndarray:
    """``[..., 2]`` points turned by ``degrees`` about ``centre``; image axes (y down), so a
    positive turn is clockwise on screen."""
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.asarray(centre, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - centre) @ rotation.T + centre


def turned_crop_matrix(face_box, degrees: float, size: int, ratio: float = 0.25) -> np.ndarray:
    """The [2, 3] affine from picture pixels to a ``size`` x ``size`` crop of a face box turned by
    ``degrees`` about its centre (the box given upright), expanded by ``ratio`` on every side
    like a training crop but not clamped: what lies outside the picture is filled."""
    region = expand_box(face_box, ratio)
    centre = box_centre(face_box)
    width, height = box_size(region)
    angle = np.radians(degrees)
    unturn = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    linear = np.array([[size / width], [size / height]]) * unturn
    shift = np.array([size / 2, size / 2]) - linear @ centre
    return np.hstack([linear, shift[:, None]])


def affine_crop_bounds(matrix, width: int, height: int) -> np.ndarray:
    """The picture-axis bounds [4] of the ``width`` x ``height`` crop that a [2, 3] affine
    (picture pixels to crop pixels, any rotation) cuts."""
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    seen = affine_points(corners, invert_affine(matrix))
    return np.concatenate([seen.min(0), seen.max(0)])


def invert_affine(matrix) -> np.ndarray:
    """The inverse of a [2, 3] affine acting on (x, y, 1)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, (-linear @ matrix[:, 2])[:, None]])


def similarity_transform(source, target) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift) mapping [N, 2] ``source``
    points onto ``target`` (Umeyama's method) -> [2, 3] matrix acting on (x, y, 1)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    covariance = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection: not a similarity
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / max((s ** 2).sum() / len(source), 1e-12)
    shift = mu_t - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])
