"""Face finders for whole pictures: each gives face boxes framed like the training annotations.

A finder is built once (a cascade or a net loaded once) and called on RGB arrays:
``finder(image) -> (boxes [N, 4], scores [N])``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError, UsageError

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
    default_threshold = 0.0  # every detection scores 1

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
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in found], dtype=np.float64).reshape(-1, 4)
        # The cascade's threads return its boxes in any order; left to right, then top down, is repeatable.
        return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = haar_to_face_box(self.raw(image))
        return boxes, np.ones(len(boxes))


class NetFinder:
    """A face detector trained by this tool (``--phase train --config configs/faces.toml``):
    the picture is resized to the net's input size (longer side), boxes come back in pixels
    of the picture, framed like the annotations it was trained on."""

    name = "net"

    def __init__(self, loaded, threshold: float | None = None, device: str = "cpu", size: int | None = None):
        import torch

        from ..codecs import CentreBoxes
        from ..net.faces import fuse_batch_norm
        if size is not None and size < 32:
            raise UsageError(f"the face detector's picture size must be 32 pixels or more, not {size}")
        self.spec = loaded.spec
        self.size = loaded.config.input_size if size is None else size
        self.default_threshold = loaded.config.face_threshold
        self.threshold = self.default_threshold if threshold is None else threshold
        self.device = torch.device(device)
        self.net = fuse_batch_norm(loaded.net.eval()).to(self.device, memory_format=torch.channels_last)
        self.codec = CentreBoxes(loaded.net.stride)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from ..data.pictures import fit_picture, normalise_pictures
        canvas, scale = fit_picture(image if image.shape[2] == 3 else np.repeat(image, 3, 2), self.size)
        batch = normalise_pictures(canvas[None]).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            boxes, scores = self.codec.decode(self.net(batch), threshold=self.threshold)[0]
        return boxes.cpu().double().numpy() / scale, scores.cpu().double().numpy()


DEFAULT_FINDER = "faces"  # the shipped detector; "haar" where it is not installed


def make_finder(detector, threshold: float | None = None, device: str = "cpu", size: int | None = None):
    """A face finder from a name: "haar", a shipped detector's name, a detector checkpoint; None
    (boxes are given), or any callable ``image -> (boxes, scores)``. ``size``: the longer side a
    trained detector resizes pictures to (default: its own)."""
    if detector is None or callable(detector):
        return detector
    from ..checkpoint import load_model, resolve_model, shipped_models
    if detector == "default":
        detector = DEFAULT_FINDER if DEFAULT_FINDER in shipped_models() else "haar"
    if detector == "haar":
        if size is not None:
            raise UsageError("--detector-size is for a trained face detector; the Haar cascade scans every scale")
        return HaarFinder()
    return NetFinder(load_model(resolve_model(detector), expect_task="faces"), threshold, device, size)
