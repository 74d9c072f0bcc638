"""Landmarks on whole pictures: find faces, crop them as in training, predict, draw."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .config import Config
from .data import draw_points, normalize_images
from .errors import DataError, UsageError, require_extra
from .geometry import crop_box, from_crop
from .images import IMAGE_SUFFIXES, crop_resize, load_image
from .net import split_output


# Where the course's annotated face box lies in a Haar detection box, as shares of its
# width and height (x1, y1, x2, y2): medians over 357 matched faces, measured by
# `python scripts/calibrate_detector.py --images 400`. Haar boxes sit higher and wider.
DETECTOR_TO_ANNOTATION = (0.097, 0.200, 0.913, 1.010)


def detector_to_face_box(detections: np.ndarray) -> np.ndarray:
    """[N, 4] Haar boxes -> [N, 4] boxes framed like the training annotations."""
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
    size = np.tile(detections[:, 2:] - detections[:, :2], 2)
    return np.tile(detections[:, :2], 2) + size * np.array(DETECTOR_TO_ANNOTATION)


def detect_faces(image_rgb: np.ndarray, min_size: int = 24) -> np.ndarray:
    """Face boxes [N, 4] from OpenCV's bundled frontal-face Haar cascade."""
    cascade_file = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(cascade_file))
    if cascade.empty():
        raise DataError(f"{cascade_file}: cannot load OpenCV's face detector")
    gray = image_rgb[:, :, 0] if image_rgb.shape[2] == 1 else cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    found = cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5,
                                     minSize=(min_size, min_size))
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in found], dtype=np.float64).reshape(-1, 4)
    return boxes


class Predictor:
    """A loaded model (PyTorch or ONNX Runtime) with the preprocessing it was trained with."""

    def __init__(self, config: Config, model: torch.nn.Module | None = None, onnx_path: Path | None = None):
        self.config = config
        self.model = model.eval() if model is not None else None
        self.session = None
        if onnx_path is not None:
            onnxruntime = require_extra("onnxruntime", "--backend onnxruntime")
            self.session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """[B, C, S, S] net input -> (points [B, 21, 2] as shares of the crop, face prob [B] or None)."""
        if self.session is not None:
            outputs = self.session.run(None, {self.session.get_inputs()[0].name: batch.numpy()})
            points, logits = outputs[0], (outputs[1] if len(outputs) > 1 else None)
        else:
            with torch.no_grad():
                points, logits = split_output(self.model(batch))
            points, logits = points.numpy(), None if logits is None else logits.numpy()
        prob = None
        if logits is not None:
            shifted = np.exp(logits - logits.max(1, keepdims=True))
            prob = shifted[:, 1] / shifted.sum(1)
        return points.reshape(len(points), -1, 2), prob

    def crops(self, image: np.ndarray, crop_boxes: np.ndarray) -> torch.Tensor:
        s = self.config.input_size
        crops = np.stack([crop_resize(image, box, s, s).transpose(2, 0, 1) for box in crop_boxes])
        return normalize_images(torch.from_numpy(crops).float(), self.config.normalize)

    def predict(self, image: np.ndarray, face_boxes: np.ndarray):
        """image [H, W, C] uint8 with the model's channels; face boxes [N, 4] ->
        (crop boxes [N, 4], points [N, 21, 2] in image pixels, face prob [N] or None)."""
        h, w = image.shape[:2]
        boxes = np.array([crop_box(b, w, h) for b in face_boxes]).reshape(-1, 4)
        if not len(boxes):
            return boxes, np.zeros((0, 21, 2)), None
        shares, prob = self.run(self.crops(image, boxes))
        s = self.config.input_size
        points = from_crop(shares * s, boxes, (s, s))
        return boxes, points, prob


@dataclass
class FaceResult:
    box: list[float]
    crop_box: list[float]
    landmarks: list[list[float]] | None
    face_prob: float | None


def parse_box(text: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise UsageError(f"--box takes x1,y1,x2,y2 with x2 > x1 and y2 > y1, got {text!r}")
    return np.array(values)


def image_inputs(path: Path) -> list[Path]:
    """The images to predict on: one file, or every image file in a folder (others named and skipped)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            print(f"note: skipping {len(others)} non-image file(s) in {path}: {', '.join(others[:5])}"
                  + (" ..." if len(others) > 5 else ""))
        if not images:
            raise DataError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    if not path.exists():
        raise DataError(f"{path}: image not found")
    return [path]


def annotate(image_path: Path, predictor: Predictor, box: np.ndarray | None, min_face_prob: float):
    """Predict on one picture -> (faces, BGR picture with boxes and points drawn)."""
    image = load_image(image_path, predictor.config.channels)
    colour = load_image(image_path, 3)
    face_boxes = box[None] if box is not None else detector_to_face_box(detect_faces(colour))
    crop_boxes, points, prob = predictor.predict(image, face_boxes)
    canvas = np.ascontiguousarray(colour[:, :, ::-1])
    radius = max(2, int(round(max(canvas.shape[:2]) / 300)))
    faces = []
    for i in range(len(crop_boxes)):
        p = None if prob is None else float(prob[i])
        is_face = p is None or p >= min_face_prob
        x1, y1, x2, y2 = (int(round(v)) for v in face_boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0) if is_face else (0, 0, 255), max(1, radius // 2))
        if p is not None:
            cv2.putText(canvas, f"face {p:.2f}", (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * radius / 2 + 0.2, (0, 255, 0) if is_face else (0, 0, 255), 1, cv2.LINE_AA)
        if is_face:
            draw_points(canvas, points[i], radius=radius)
        faces.append(FaceResult([float(v) for v in face_boxes[i]], [float(v) for v in crop_boxes[i]],
                                points[i].round(2).tolist() if is_face else None, p))
    return faces, canvas


def write_picture(path: Path, canvas: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise DataError(f"{path}: cannot write the picture (is the folder writable, the suffix an image type?)")


def faces_as_json(image_path: Path, out_path: Path, faces: list[FaceResult]) -> str:
    return json.dumps({"image": str(image_path), "picture": str(out_path),
                       "faces": [face.__dict__ for face in faces]})


def faces_as_text(image_path: Path, out_path: Path, faces: list[FaceResult]) -> str:
    lines = [f"{image_path}: {sum(f.landmarks is not None for f in faces)} face(s) -> {out_path}"]
    for number, face in enumerate(faces, 1):
        head = f"  face {number} box {' '.join(f'{v:.0f}' for v in face.box)}"
        if face.face_prob is not None:
            head += f" p(face) {face.face_prob:.3f}"
        if face.landmarks is None:
            lines.append(head + " (not a face: no landmarks)")
        else:
            lines.append(head + "\n    " + " ".join(f"{x:.1f},{y:.1f}" for x, y in face.landmarks))
    return "\n".join(lines)
