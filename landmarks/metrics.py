"""Accuracy metrics, exactly as defined in the course-data README.

All errors are in pixels of the original image.
"""

from __future__ import annotations

import numpy as np


def mean_point_error(pred, truth) -> np.ndarray:
    """pred, truth: [N, K, 2] -> [N] mean Euclidean distance over the K points."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    return np.linalg.norm(pred - truth, axis=-1).mean(axis=-1)


def box_normaliser(truth) -> np.ndarray:
    """truth: [N, K, 2] -> [N] sqrt(W * H) of the tight box around the true points."""
    truth = np.asarray(truth, dtype=np.float64)
    extent = truth.max(axis=-2) - truth.min(axis=-2)
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
    """Share of faces whose NME is above ``threshold``; nmes: [N]."""
    nmes = np.asarray(nmes, dtype=np.float64)
    return float((nmes > threshold).mean()) if nmes.size else float("nan")


def auc(nmes, threshold: float = 0.10, steps: int = 10_000) -> float:
    """Area under the cumulative error curve from 0 to ``threshold``, divided by it."""
    nmes = np.sort(np.asarray(nmes, dtype=np.float64))
    if not nmes.size:
        return float("nan")
    xs = np.linspace(0.0, threshold, steps + 1)
    ced = np.searchsorted(nmes, xs, side="right") / nmes.size
    return float(np.trapezoid(ced, xs) / threshold)


def cumulative_error_curve(nmes, threshold: float = 0.10, steps: int = 100):
    """(x [steps+1], share of faces with NME <= x [steps+1]) for plotting."""
    nmes = np.sort(np.asarray(nmes, dtype=np.float64))
    xs = np.linspace(0.0, threshold, steps + 1)
    return xs, np.searchsorted(nmes, xs, side="right") / max(nmes.size, 1)


def landmark_metrics(pred, truth, interocular: tuple[int, int], threshold: float = 0.10) -> dict:
    """The reported metrics for [N, K, 2] predictions and truths in image pixels;
    ``interocular`` names the two points NME_io divides by.

    Returns nme_box, nme_io, fr_io@<t> (all in %), auc_io@<t> (a fraction), faces.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    nme_box = nme(pred, truth, box_normaliser(truth))
    nme_io = nme(pred, truth, interocular_normaliser(truth, interocular))
    key = f"{threshold:g}"
    return {
        "faces": int(len(truth)),
        "nme_box": float(nme_box.mean() * 100) if len(truth) else float("nan"),
        "nme_io": float(nme_io.mean() * 100) if len(truth) else float("nan"),
        f"fr_io@{key}": failure_rate(nme_io, threshold) * 100,
        f"auc_io@{key}": auc(nme_io, threshold),
    }
