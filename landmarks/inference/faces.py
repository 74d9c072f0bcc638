"""Face finders for whole pictures: each gives face boxes framed like the training annotations.

A finder is built once (a cascade or a net loaded once) and called on RGB arrays:
``finder(image) -> (boxes [N, 4], scores [N])``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError

# Where the course's annotated face box lies in a Haar detection box, as shares of its
# width and height (x1, y1, x2, y2): medians over 357 matched faces, measured by
# `python scripts/calibrate_detector.py --images 400`. Haar boxes sit higher and wider.
HAAR_TO_ANNOTATION = (0.097, 0.200, 0.913, 1.010)


def haar_to_face_box(detections: np.ndarray) -> np.ndarray:
    """[N, 4] Haar boxes -> [N, 4] boxes framed like the training annotations."""
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
    size = np.tile(detections[:, 2:] - detections[:, :2], 2)
    return np.tile(detections[:, :2], 2) + size * np.array(HAAR_TO_ANNOTATION)


def gray_of(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class HaarFinder:
    """OpenCV's bundled frontal-face Haar cascade, loaded once."""

    name = "haar"

    def __init__(self, min_size: int = 24):
        cascade_file = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(cascade_file))
        if self.cascade.empty():
            raise DataError(f"{cascade_file}: cannot load OpenCV's face detector")
        self.min_size = min_size

    def raw(self, image: np.ndarray) -> np.ndarray:
        """The cascade's own boxes [N, 4] (x1, y1, x2, y2)."""
        found = self.cascade.detectMultiScale(cv2.equalizeHist(gray_of(image)), scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_size, self.min_size))
        return np.array([[x, y, x + w, y + h] for x, y, w, h in found], dtype=np.float64).reshape(-1, 4)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = haar_to_face_box(self.raw(image))
        return boxes, np.ones(len(boxes))
