"""Accuracy metrics, exactly as defined in the course-data README.

All errors are in pixels of the original image.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou


def mean_point_error(pred, truth) -> np.ndarray:
    """pred, truth: [N, K, 2] -> [N] mean Euclidean distance over the labelled points (a NaN
    truth is a point left unlabelled)."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    distance = np.linalg.norm(pred - truth, axis=-1)
    labelled = ~np.isnan(distance)
    count = labelled.sum(-1)
    total = np.where(labelled, distance, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)  # NaN: no point labelled


def box_normaliser(truth) -> np.ndarray:
    """truth: [N, K, 2] -> [N] sqrt(W * H) of the tight box around the true points."""
    truth = np.asarray(truth, dtype=np.float64)
    extent = np.nanmax(truth, axis=-2) - np.nanmin(truth, axis=-2)  # over the labelled points
    return np.sqrt(extent[..., 0] * extent[..., 1])


def interocular_normaliser(truth, pair: tuple[int, int]) -> np.ndarray:
    """truth: [N, K, 2] -> [N] distance between the scheme's two NME_io points ``pair``
    (for the course's 21 points, the outer eye corners 7 and 10: indices 6 and 9)."""
    truth = np.asarray(truth, dtype=np.float64)
    return np.linalg.norm(truth[..., pair[0], :] - truth[..., pair[1], :], axis=-1)


def nme(pred, truth, norm) -> np.ndarray:
    """Per-face normalised mean error: pred, truth [N, K, 2], norm [N] -> [N]."""
    return mean_point_error(pred, truth) / np.maximum(np.asarray(norm, dtype=np.float64), 1e-12)


def failure_rate(nmes, threshold: float = 0.10) -> float:
    """Share of faces whose NME is above ``threshold``; nmes: [N] (NaN: a face that cannot be
    scored, its normalising points unlabelled, is left out)."""
    nmes = np.asarray(nmes, dtype=np.float64)
    nmes = nmes[~np.isnan(nmes)]
    return float((nmes > threshold).mean()) if nmes.size else float("nan")


def auc(nmes, threshold: float = 0.10, steps: int = 10_000) -> float:
    """Area under the cumulative error curve from 0 to ``threshold``, divided by it (NaN faces
    left out)."""
    nmes = np.asarray(nmes, dtype=np.float64)
    nmes = np.sort(nmes[~np.isnan(nmes)])
    if not nmes.size:
        return float("nan")
    xs = np.linspace(0.0, threshold, steps + 1)
    ced = np.searchsorted(nmes, xs, side="right") / nmes.size
    return float(np.trapezoid(ced, xs) / threshold)


def cumulative_error_curve(nmes, threshold: float = 0.10, steps: int = 100):
    """(x [steps+1], share of faces with NME <= x [steps+1]) for plotting (NaN faces left out,
    as ``auc`` leaves them)."""
    nmes = np.asarray(nmes, dtype=np.float64)
    nmes = np.sort(nmes[~np.isnan(nmes)])
    xs = np.linspace(0.0, threshold, steps + 1)
    return xs, np.searchsorted(nmes, xs, side="right") / max(nmes.size, 1)


def landmark_metrics(pred, truth, interocular: tuple[int, int], thresholds=(0.08, 0.10),
                     regions: dict[str, tuple[int, ...]] | None = None) -> dict:
    """The reported metrics for [N, K, 2] predictions and truths in image pixels;
    ``interocular`` names the two points NME_io divides by; ``regions`` (name -> points) adds
    the NME_io over each region's points.

    Returns nme_box, nme_io, fr_io@<t> (all in %) and auc_io@<t> (a fraction) for each of
    ``thresholds``, nme_io_<region> (%), faces.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    faces = len(truth)
    norm_io = interocular_normaliser(truth, interocular)
    nme_box = nme(pred, truth, box_normaliser(truth))
    nme_io = nme(pred, truth, norm_io)
    # A face whose normalising points are unlabelled (NaN) is left out of that figure.
    metrics = {
        "faces": int(faces),
        "nme_box": float(np.nanmean(nme_box) * 100) if np.isfinite(nme_box).any() else float("nan"),
        "nme_io": float(np.nanmean(nme_io) * 100) if np.isfinite(nme_io).any() else float("nan"),
    }
    for threshold in thresholds:
        metrics[f"fr_io@{threshold:g}"] = failure_rate(nme_io, threshold) * 100
        metrics[f"auc_io@{threshold:g}"] = auc(nme_io, threshold)
    for name, points in (regions or {}).items():
        part = list(points)
        region = nme(pred[:, part], truth[:, part], norm_io)
        metrics[f"nme_io_{name}"] = float(np.nanmean(region) * 100) if np.isfinite(region).any() else float("nan")
    return metrics


# ---------------------------------------------------------------- whole pictures

def match_boxes(boxes, scores, truth, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy matching by score, as PASCAL VOC does: boxes [N, 4] with scores [N] against true
    boxes [M, 4] -> [N] bool, True where a box takes a true box not yet taken with IoU >= threshold."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    hits = np.zeros(len(boxes), bool)
    if not len(boxes) or not len(truth):
        return hits
    overlaps = box_iou(torch.as_tensor(boxes), torch.as_tensor(truth)).numpy()
    taken = np.zeros(len(truth), bool)
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        candidates = np.where(taken, -1.0, overlaps[i])
        j = int(candidates.argmax())
        if candidates[j] >= iou_threshold:
            taken[j] = hits[i] = True
    return hits


def precision_recall(scores, hits, num_truth: int):
    """Scores [N] and hits [N] over all pictures -> (precision [N], recall [N]) down the ranking."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(hits, dtype=np.float64)[order]
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / max(num_truth, 1)
    return precision, recall


def average_precision(scores, hits, num_truth: int) -> float:
    """Area under the precision-recall curve with precision made monotone (all-point interpolation)."""
    if not num_truth:
        return float("nan")
    precision, recall = precision_recall(scores, hits, num_truth)
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def match_faces(pred_points: list, truth_points, threshold: float = 0.10) -> tuple[np.ndarray, np.ndarray]:
    """Which true faces a picture's predicted faces find: pred_points K-point arrays, truth [M, K, 2].

    Each prediction takes at most one true face and the reverse, smallest NME_box first; a pair
    counts when its NME_box is below ``threshold`` -> (truth's NME_box where found else nan [M],
    found-something for each prediction [N])."""
    truth = np.asarray(truth_points, dtype=np.float64)
    nmes = np.full(len(truth), np.nan)
    used = np.zeros(len(pred_points), bool)
    if not len(pred_points) or not len(truth):
        return nmes, used
    norm = box_normaliser(truth)
    errors = np.array([[mean_point_error(p[None], t[None])[0] / max(n, 1e-12) for t, n in zip(truth, norm)]
                       for p in pred_points])  # [N, M]
    for flat in np.argsort(errors, axis=None):
        i, j = np.unravel_index(flat, errors.shape)
        if errors[i, j] >= threshold:
            break
        if not used[i] and np.isnan(nmes[j]):
            used[i], nmes[j] = True, errors[i, j]
    return nmes, used


# ---------------------------------------------------------------- by pose and size

# Bins of the whole-picture breakdown: head yaw in degrees (its size, either way) and face size
# in pixels (sqrt of the annotated box's width * height).
YAW_BINS = ((0.0, "frontal <30°"), (30.0, "30-60°"), (60.0, "60°+"))
SIZE_BINS = ((0.0, "<24 px"), (24.0, "24-48 px"), (48.0, "48-96 px"), (96.0, ">96 px"))


def bin_of(values, bins) -> np.ndarray:
    """[N] values -> [N] index of the bin ((lower edge, name), ... ascending) each falls in; -1 for NaN."""
    values = np.asarray(values, dtype=np.float64)
    index = np.digitize(values, [edge for edge, _ in bins[1:]])
    return np.where(np.isnan(values), -1, index)


def bin_counts(index, bins) -> dict[str, int]:
    """[N] bin index per value (``bin_of``) -> how many fall in each bin, by name (NaN ones left out)."""
    index = np.asarray(index)
    return {name: int((index == i).sum()) for i, (_, name) in enumerate(bins)}


def breakdown(index, bins, found, found_nme_io, crop_nme_io, fail: float = 0.10) -> dict[str, dict]:
    """Per bin (``index`` [N] from ``bin_of``): faces, the share found in whole pictures, NME_io (%)
    of those found, and from the annotated boxes NME_io (%) and FR@``fail`` (%). Faces of a NaN
    bin are left out; an empty bin is left out."""
    index, found = np.asarray(index), np.asarray(found, bool)
    found_nme_io, crop_nme_io = np.asarray(found_nme_io, np.float64), np.asarray(crop_nme_io, np.float64)
    table = {}
    for i, (_, name) in enumerate(bins):
        part = index == i
        if not part.any():
            continue
        found_part = found_nme_io[part & found]
        table[name] = {
            "faces": int(part.sum()),
            "found": float(found[part].mean()),
            "nme_io_found": float(np.nanmean(found_part) * 100) if np.isfinite(found_part).any() else float("nan"),
            "crop_nme_io": float(np.nanmean(crop_nme_io[part]) * 100) if np.isfinite(crop_nme_io[part]).any()
            else float("nan"),
            "crop_fr_io": failure_rate(crop_nme_io[part], fail) * 100,
        }
    return table
