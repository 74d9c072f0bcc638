"""The Python API: landmarks on pictures and frames, on the same code path as the CLI.

    from landmarks import Landmarker
    marker = Landmarker()                       # shipped models: face finder + stage-3 landmarks
    faces = marker.detect("group.jpg")          # or an RGB array [H, W, 3] (gray [H, W] works too)
    for face in faces:
        print(face.box, face.face_prob, face.points)   # points: [K, 2] image pixels
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Loaded, default_model, load_model, resolve_model
from ..data.dataset import normalize_images
from ..data.images import crop_resize, load_image, to_channels
from ..errors import UsageError, require_extra
from ..geometry import crop_box, from_crop
from ..net.inference import split_inference
from ..spec import ModelSpec, spec_from_dict


@dataclass
class Face:
    """One face found in a picture, in image pixels."""

    box: np.ndarray  # [4] face box, framed like the training annotations
    crop_box: np.ndarray  # [4] the crop the landmark model saw
    points: np.ndarray | None  # [K, 2]; None where the face branch says it is no face
    face_prob: float | None = None  # the face branch's probability (models with one)
    score: float | None = None  # the face finder's score
    id: int | None = None  # track id (video)
    extra: dict = field(default_factory=dict)  # pose and more, where asked for

    @property
    def is_face(self) -> bool:
        return self.points is not None

    def to_dict(self) -> dict:
        data = {"box": [round(float(v), 2) for v in self.box],
                "crop_box": [round(float(v), 2) for v in self.crop_box],
                "face_prob": None if self.face_prob is None else round(float(self.face_prob), 4),
                "landmarks": None if self.points is None else np.round(self.points, 2).tolist()}
        if self.score is not None:
            data["score"] = round(float(self.score), 4)
        if self.id is not None:
            data["id"] = self.id
        data.update(self.extra)
        return data


def as_image(image) -> np.ndarray:
    """A path or an array -> uint8 RGB [H, W, 3] (decoded once)."""
    if isinstance(image, (str, Path)):
        return load_image(image, 3)
    return to_channels(np.asarray(image), 3)


class Landmarker:
    """A landmark model with the crop recipe it was trained with, and a face finder.

    model: a shipped name (stage1, stage2, stage3), a checkpoint, or with
    ``backend="onnxruntime"`` an exported ``.onnx`` (its ``.json`` beside it).
    detector: "haar", None (boxes are given), or a face finder callable
    ``image -> (boxes, scores)``.
    """

    def __init__(self, model=None, *, detector="haar", test_flip: bool | None = None,
                 min_face_prob: float | None = None, backend: str = "torch", device: str = "cpu"):
        self.backend = backend
        self.device = torch.device(device)
        if backend == "onnxruntime":
            if model is None or not str(model).endswith(".onnx"):
                raise UsageError("--backend onnxruntime needs --model FILE.onnx from --phase export")
            self.spec = read_export_spec(Path(model))
            onnxruntime = require_extra("onnxruntime", "--backend onnxruntime")
            self.session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
            self.model = None
        elif backend == "torch":
            loaded = model if isinstance(model, Loaded) else load_model(resolve_model(model or default_model(True)))
            self.spec = loaded.spec
            self.model = loaded.spec.inference_model(loaded.net, test_flip).to(self.device)
            self.session = None
        else:
            raise UsageError(f"backend must be torch or onnxruntime, got {backend!r}")
        self.config = self.spec.config
        self.scheme = self.spec.scheme
        self.min_face_prob = self.config.face_threshold if min_face_prob is None else min_face_prob
        self.finder = make_finder(detector)

    @property
    def classify(self) -> bool:
        return self.config.classify

    def run(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """[B, C, S, S] net input -> (points [B, K, 2] as shares of the crop, face prob [B] or None)."""
        if self.session is not None:
            outputs = self.session.run(None, {self.session.get_inputs()[0].name: batch.numpy()})
            return outputs[0], (outputs[1] if len(outputs) > 1 else None)
        with torch.no_grad():
            points, prob = split_inference(self.model(batch.to(self.device)))
        return points.cpu().numpy(), None if prob is None else prob.cpu().numpy()

    def crops(self, image: np.ndarray, crop_boxes: np.ndarray) -> torch.Tensor:
        s = self.config.input_size
        crops = np.stack([crop_resize(image, box, s, s).transpose(2, 0, 1) for box in crop_boxes])
        batch = normalize_images(torch.from_numpy(crops).float(), self.config.normalize)
        return batch.contiguous(memory_format=torch.channels_last) if self.session is None else batch

    def landmarks(self, image, face_boxes, scores=None) -> list[Face]:
        """Landmarks for given face boxes [N, 4] on an image (path or array)."""
        rgb = as_image(image)
        pixels = to_channels(rgb, self.config.channels)
        face_boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
        h, w = rgb.shape[:2]
        boxes = np.array([crop_box(b, w, h, self.config.crop_expand) for b in face_boxes]).reshape(-1, 4)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # a box wholly outside the picture
        faces = []
        if keep.any():
            s = self.config.input_size
            shares, prob = self.run(self.crops(pixels, boxes[keep]))
            points = from_crop(shares * s, boxes[keep], (s, s))
            for j, i in enumerate(np.flatnonzero(keep)):
                p = None if prob is None else float(prob[j])
                is_face = p is None or p >= self.min_face_prob
                faces.append(Face(face_boxes[i], boxes[i], points[j] if is_face else None, p,
                                  None if scores is None else float(scores[i])))
        return faces

    def find(self, image) -> tuple[np.ndarray, np.ndarray]:
        if self.finder is None:
            raise UsageError("this Landmarker has no face finder; give face boxes (landmarks(image, boxes))")
        return self.finder(as_image(image))

    def detect(self, image) -> list[Face]:
        """Find faces in a picture (path or RGB array) and their landmarks."""
        rgb = as_image(image)
        boxes, scores = self.find(rgb)
        return self.landmarks(rgb, boxes, scores)

    __call__ = detect


def make_finder(detector):
    if detector is None or callable(detector):
        return detector
    if detector == "haar":
        from .faces import HaarFinder
        return HaarFinder()
    raise UsageError(f"unknown face finder {detector!r}; use haar")


def read_export_spec(onnx_path: Path) -> ModelSpec:
    import json
    path = Path(str(onnx_path) + ".json")
    if not path.is_file():
        raise UsageError(f"{path}: missing; it is written beside the .onnx file by --phase export")
    return spec_from_dict(json.loads(path.read_text()), str(path))
