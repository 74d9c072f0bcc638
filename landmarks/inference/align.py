"""Aligned face crops: the face warped by a similarity transform that puts its eye centres, nose
tip and mouth corners where face recognition expects them."""

from __future__ import annotations

import cv2
import numpy as np

from ..data.scheme import Scheme, load_scheme
from ..errors import UsageError
from ..geometry import similarity_transform

# Where the five points go in a 112 x 112 crop (the template ArcFace-style recognisers are
# trained on): eye centres, nose tip, mouth corners, left and right as seen in the picture.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])


def five_points(points, scheme: Scheme) -> np.ndarray:
    """[K, 2] points of ``scheme`` -> [5, 2] eye centres, nose tip, mouth corners."""
    five = load_scheme("five")
    if scheme.name != "five" and scheme.name not in five.derive:
        raise UsageError(f"scheme {scheme.name} has no derivation to five points: no aligned crops")
    return five.convert(np.asarray(points, dtype=np.float64), scheme)


def alignment_matrix(points, scheme: Scheme, size: int = 112) -> np.ndarray:
    """The [2, 3] similarity from picture pixels to the ``size`` x ``size`` aligned crop."""
    return similarity_transform(five_points(points, scheme), TEMPLATE_112 * (size / 112))


def align_face(image: np.ndarray, points, scheme: Scheme, size: int = 112) -> np.ndarray:
    """The aligned ``size`` x ``size`` crop of a face (image: [H, W, C] array)."""
    matrix = alignment_matrix(points, scheme, size)
    # OpenCV samples at pixel centres (integers); these coordinates put centres at i + 0.5.
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    crop = cv2.warpAffine(image, shifted, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return crop.reshape(size, size, -1) if image.ndim == 3 else crop
