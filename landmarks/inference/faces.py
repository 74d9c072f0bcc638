"""Face finders for whole pictures: each gives face boxes framed like the training annotations.

A finder is built once (a cascade or a net loaded once) and called on RGB arrays:
``finder(image) -> (boxes [N, 4], scores [N])``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from ..checkpoint import load_model, resolve_model, shipped_models
from ..codecs import CentreBoxes
from ..data.pictures import fit_picture, normalise_pictures
from ..errors import DataError, UsageError
from ..geometry import box_scale, box_size
from ..net.faces import fuse_batch_norm
from .runtime import RuntimeNet, choose_backend

# Where the course's annotated face box lies in a Haar detection box, as shares of its
# width and height (x1, y1, x2, y2): medians over 357 matched faces, measured by
# `python docs/experiments/calibrate_detector.py --images 400`. Haar boxes sit higher and wider.
HAAR_TO_ANNOTATION = (0.097, 0.200, 0.913, 1.010)


def haar_to_face_box(detections: np.ndarray) -> np.ndarray:
    """[N, 4] Haar boxes -> [N, 4] boxes framed like the training annotations."""
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
    size = np.tile(detections[:, 2:] - detections[:, :2], 2)
    return np.tile(detections[:, :2], 2) + size * np.array(HAAR_TO_ANNOTATION)


def gray_of(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


# A second pass at twice the size when a sure face is under 24 detector pixels: faces that
# small are found late and boxed loosely (a crowd's faces). Chosen on validation mosaics
# (docs/face-detector.md); most pictures take one pass.
ZOOM_BELOW = 24.0
ZOOM = 2.0

# A look at half the size when the first finds no face it is sure of (score 0.5): a face that
# fills the picture is larger than most the detector learned. Chosen on validation pictures,
# their close-ups and LFPW's pictures against 0.6 and 0.7 of the size and sure scores of 0.3 and
# 0.7 (docs/face-detector.md); most pictures hold a sure face and take no such look.
ZOOM_OUT = 0.5
ZOOM_OUT_SURE = 0.5

# A box whose longer side is this share of the picture's shorter side or more is a close-up's,
# which the finder boxes small, around part of the face: the landmarks' first look crops it
# wider (Landmarker.first_look_grow). Chosen on validation pictures and LFPW's (docs/face-detector.md).
CLOSE_UP_SHARE = 0.25
# Where set (a share of the shorter side, as above), a picture with a sure face that close also
# takes the look at half the size: other close-ups beside it are missed at full size. Off: at
# 0.4 it finds one face more of LFPW's 805 and none of the validation pictures', and 4 in 10 of
# the course's pictures pay for the look, 1.3 ms a picture at the median (docs/face-detector.md).
ZOOM_OUT_CLOSE_UP = 0.0


def is_close_up(boxes, shape: tuple[int, ...], share: float = CLOSE_UP_SHARE) -> np.ndarray:
    """Per box [N, 4], whether its longer side is ``share`` of the shorter side of a picture of
    ``shape`` (height, width, ...) or more."""
    return box_size(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)).max(axis=1, initial=0) >= \
        share * min(shape[:2])


# Pictures whose mean light (linear, all channels) is under DARK_FLOOR, the darkest twentieth of
# the course's training pictures (65 of 1,439; median 0.28) and so the edge of what the detector
# learned, are lifted to DARK_TARGET before it sees them. Chosen on the validation pictures underexposed by 0-5
# stops (docs/face-detector.md); the landmark nets normalise each crop and need no lift.
DARK_FLOOR = 0.1
DARK_TARGET = 0.15
_TO_LINEAR = (np.arange(256) / 255.0) ** 2.2


def mean_light(image: np.ndarray) -> float:
    """A uint8 sRGB picture's mean linear light (all channels, 0 to 1), from some 10,000 of its pixels."""
    step = max(1, max(image.shape[:2]) // 128)
    return float(_TO_LINEAR[image[::step, ::step]].mean())


def lift_dark(image: np.ndarray, floor: float = DARK_FLOOR, target: float = DARK_TARGET) -> np.ndarray:
    """A uint8 sRGB picture whose mean linear light is under ``floor`` brightened in linear light
    until it reaches ``target`` (gain at most 64, six stops); any other picture as it is. A floor
    of 0 lifts nothing."""
    mean = mean_light(image)
    if mean >= floor:
        return image
    gain = min(target / max(mean, 1e-6), 64.0)
    table = np.clip(np.round((_TO_LINEAR * gain) ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


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

    def __init__(self, loaded, threshold: float | None = None, device: str = "cpu", size: int | None = None,
                 zoom_below: float = ZOOM_BELOW, backend: str = "torch", zoom_out: float = ZOOM_OUT,
                 zoom_out_close_up: float = ZOOM_OUT_CLOSE_UP):
        if size is not None and size < 32:
            raise UsageError(f"the face detector's picture size must be 32 pixels or more, not {size}")
        if zoom_below < 0:
            raise UsageError(f"detector_zoom_below (--detector-zoom-below) must be 0 (never) or more pixels, "
                             f"not {zoom_below:g}")
        if not 0 <= zoom_out < 1:
            raise UsageError(f"detector_zoom_out (--detector-zoom-out) must be 0 (never) or a share under 1 of the "
                             f"detector size, not {zoom_out:g}")
        self.spec = loaded.spec
        self.size = loaded.config.input_size if size is None else size
        self.zoom_below = zoom_below
        if zoom_out_close_up < 0:
            raise UsageError(f"detector_zoom_out_close_up (--detector-zoom-out-close-up) must be 0 (never) or a "
                             f"share above 0, not {zoom_out_close_up:g}")
        self.zoom_out, self.zoom_out_sure, self.zoom_out_close_up = zoom_out, ZOOM_OUT_SURE, zoom_out_close_up
        self.default_threshold = loaded.config.face_threshold
        self.threshold = self.default_threshold if threshold is None else threshold
        self.device = torch.device(device)
        self.net = fuse_batch_norm(loaded.net.eval()).to(self.device, memory_format=torch.channels_last)
        self.backend = choose_backend(backend, self.device)
        if self.backend == "onnxruntime":
            self.net = RuntimeNet(self.net, torch.zeros(1, 3, self.size, self.size), {2: "height", 3: "width"})
        self.codec = CentreBoxes(loaded.net.stride)
        # Pictures darker than the training ones are lifted first (lift_dark).
        self.dark_floor, self.dark_target = DARK_FLOOR, DARK_TARGET

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rgb = lift_dark(image if image.shape[2] == 3 else np.repeat(image, 3, 2), self.dark_floor, self.dark_target)
        boxes, scores, scale = self.look(rgb, self.size)
        looks = [(boxes, scores)]
        if needs_zoom(boxes * scale, scores, self.default_threshold, self.zoom_below):
            looks.append(self.look(rgb, round(self.size * ZOOM))[:2])
        sure = scores >= self.zoom_out_sure
        close_up = self.zoom_out_close_up and is_close_up(boxes[sure], rgb.shape, self.zoom_out_close_up).any()
        if self.zoom_out and (not sure.any() or close_up):
            looks.append(self.look(rgb, round(self.size * self.zoom_out))[:2])
        if len(looks) == 1:
            return boxes, scores
        return merge_looks(np.concatenate([b for b, _ in looks]), np.concatenate([s for _, s in looks]))

    def look(self, rgb: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, float]:
        """One pass with the picture's longer side at ``size`` -> (boxes in picture pixels, scores,
        detector pixels per picture pixel)."""
        canvas, scale = fit_picture(rgb, size)
        batch = normalise_pictures(canvas[None])
        if self.backend == "torch":
            batch = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            boxes, scores = self.codec.decode(self.net(batch), threshold=self.threshold)[0]
        return boxes.cpu().double().numpy() / scale, scores.cpu().double().numpy(), scale


def needs_zoom(boxes: np.ndarray, scores: np.ndarray, sure: float, below: float) -> bool:
    """Whether a candidate scoring ``sure`` or more is smaller than ``below`` (its side as
    geometry.box_scale measures it, in detector pixels)."""
    if not below or not len(boxes):
        return False
    return bool((box_scale(boxes[scores >= sure]) < below).any())


def merge_looks(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of two passes as one set: of boxes overlapping by ``iou`` or more, the best
    scoring (torchvision's NMS), likeliest first."""
    keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
    return boxes[keep], scores[keep]


DEFAULT_FINDER = "faces"  # the shipped detector; "haar" where it is not installed


def make_finder(detector, threshold: float | None = None, device: str = "cpu", size: int | None = None,
                zoom_below: float | None = None, backend: str = "torch", zoom_out: float | None = None,
                zoom_out_close_up: float | None = None):
    """A face finder from a name: "haar", a shipped detector's name, a detector checkpoint; None
    (boxes are given), or any callable ``image -> (boxes, scores)``. ``size``: the longer side a
    trained detector resizes pictures to (default: its own); ``zoom_below``: a second pass at
    twice that size when a sure face is smaller than this in detector pixels (0: never;
    default: ZOOM_BELOW); ``zoom_out``: a pass at this share of the size when no face is sure
    (0: never; default: ZOOM_OUT), or when a sure face is a close-up by ``zoom_out_close_up``
    (is_close_up's share; 0: never; default: ZOOM_OUT_CLOSE_UP); ``backend``: how a trained detector's net runs
    (runtime.choose_backend)."""
    if detector is None or callable(detector):
        return detector
    if detector == "default":
        detector = DEFAULT_FINDER if DEFAULT_FINDER in shipped_models() else "haar"
    if detector == "haar":
        if size is not None:
            raise UsageError("--detector-size is for a trained face detector; the Haar cascade scans every scale")
        for flag, value in (("--detector-zoom-below", zoom_below), ("--detector-zoom-out", zoom_out),
                            ("--detector-zoom-out-close-up", zoom_out_close_up)):
            if value is not None:
                raise UsageError(f"{flag} is for a trained face detector; the Haar cascade scans every scale")
        return HaarFinder()
    return NetFinder(load_model(resolve_model(detector), expect_task="faces"), threshold, device, size,
                     ZOOM_BELOW if zoom_below is None else zoom_below, backend,
                     ZOOM_OUT if zoom_out is None else zoom_out,
                     ZOOM_OUT_CLOSE_UP if zoom_out_close_up is None else zoom_out_close_up)
