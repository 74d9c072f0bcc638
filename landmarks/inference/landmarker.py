"""The Python API: landmarks on pictures and frames, on the same code path as the CLI.

    from landmarks import Landmarker
    marker = Landmarker()                       # shipped models: face finder + stage-3 landmarks
    faces = marker.detect("group.jpg")          # or an RGB array [H, W, 3] (gray [H, W] works too)
    for face in faces:
        print(face.box, face.face_prob, face.points)   # points: [K, 2] image pixels
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

from ..config import setting
from ..checkpoint import Loaded, default_model, load_model, resolve_model
from ..data.dataset import normalize_images
from ..data.images import crop_resize, load_image, to_channels, warp_crop
from ..errors import UsageError
from ..geometry import (affine_crop_bounds, affine_points, box_centre, box_size, covered_share, crop_box, expand_box,
                        from_crop, invert_affine, iou, turn_points, turned_crop_matrix)
from ..net.inference import split_inference
from ..spec import ModelSpec, spec_from_dict
from .faces import (CLOSE_UP_SHARE, ZOOM_BELOW, ZOOM_OUT, ZOOM_OUT_CLOSE_UP, ZOOM_OUT_SURE, is_close_up,
                    make_finder)
from .runtime import BACKENDS, RuntimeNet, choose_backend, runtime_session


@dataclass
class Face:
    """One face found in a picture, in image pixels."""

    box: np.ndarray  # [4] face box, framed like the training annotations
    crop_box: np.ndarray  # [4] the crop the landmark model saw
    points: np.ndarray | None  # [K, 2]; None where the face branch says it is no face
    face_prob: float | None = None  # the face branch's probability (models with one)
    score: float | None = None  # the face finder's score
    turn: float = 0.0  # degrees the crop was turned by (clockwise on screen), for a tilted head
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
        if self.turn:
            data["crop_turn"] = round(float(self.turn), 1)
        if self.score is not None:
            data["score"] = round(float(self.score), 4)
        if self.id is not None:
            data["id"] = self.id
        data.update(self.extra)
        return data


def as_image(image) -> np.ndarray:
    """A path or an array -> uint8 RGB [H, W, 3] (decoded once; a file turned upright as its
    EXIF orientation says, as a viewer shows it)."""
    if isinstance(image, (str, Path)):
        return load_image(image, 3, upright=True)
    return to_channels(np.asarray(image), 3)


@dataclass(frozen=True)
class LandmarkerSettings:
    """How a Landmarker finds faces and looks at them; ``--phase predict`` and whole-picture
    ``--phase test`` take a flag per field (detector, detector_threshold ...), with these defaults."""

    detector: str = setting("default", "face finder: a detector checkpoint or shipped name, or haar for OpenCV's "
                            "cascade", default_text="the shipped detector, faces")
    detector_threshold: float | None = setting(None, "score from which a candidate goes on to the landmark model",
                                               default_text="the detector's own; the shipped one's is 0.2")
    detector_size: int | None = setting(None, "longer side in pixels that pictures are resized to for the face "
                                        "detector; larger finds smaller faces, at more time",
                                        default_text="the detector's own; the shipped one's is 448")
    detector_zoom_below: float | None = setting(None, "look again at twice the detector size when a face the detector "
                                                "is sure of is smaller than this many pixels at that size (a "
                                                "crowd); 0: one look", default_text=f"{ZOOM_BELOW:g}", metavar="PX")
    detector_zoom_out: float | None = setting(None, "look again at this share of the detector size when the detector "
                                              f"is sure ({ZOOM_OUT_SURE:g}) of no face (a face that fills the "
                                              "picture); 0: never", default_text=f"{ZOOM_OUT:g}", metavar="SHARE")
    detector_zoom_out_close_up: float | None = setting(None, "take that look too when a face the detector is sure of "
                                                       "has a side of this share of the picture's shorter side or "
                                                       "more (a close-up: others beside it are missed); 0: never",
                                                       default_text=f"{ZOOM_OUT_CLOSE_UP:g}", metavar="SHARE")
    refine: bool = setting(True, "look at each face again, cropped from the box its points give")
    settle_iou: float = setting(0.8, "look a third time at a face whose second look's box overlaps its first's by "
                                "less than this IoU (its points have not settled); 0: never", metavar="IOU")
    first_look_grow: float = setting(1.2, f"on the first look, crop a candidate box whose side is {CLOSE_UP_SHARE:g} of "
                                     "the picture's shorter side or more this many times as large (the finder boxes "
                                     "a face that fills the picture small); 1: never", metavar="TIMES")
    turn_above: float = setting(20.0, "on that second look, crop a head tilted by more than this many degrees "
                                "(its eye line) turned upright; 0: never", metavar="DEG")
    min_face_prob: float | None = setting(None, "models with a face branch: a crop is a face from this probability "
                                          "on, in test (crops and pictures), predict and --predictions-out",
                                          default_text="the model's face_threshold")
    unsure_face_prob: float = setting(0.95, "candidates a trained face finder scores a little under its threshold "
                                      "(from 3/4 of it: 0.15 for the shipped one's 0.2) go on too, and are faces "
                                      "from this face probability on: a sure face branch outweighs a finder in "
                                      "doubt; 1: none go on", metavar="P")
    small_face_prob: float = setting(0.2, "in pictures, a face under 24 px (the square root of its box's area) that "
                                     "the face finder scores 0.4 or more is a face from this probability "
                                     "on: the face branch sees it blown up to its input; 1: as any other face",
                                     metavar="P")
    backend: str = setting("auto", "run the nets with PyTorch, or with ONNX Runtime (a checkpoint is converted in "
                           "memory; an exported .onnx file runs as it is)", choices=BACKENDS,
                           default_text="auto: ONNX Runtime on a CPU where it is installed, else PyTorch")
    # Averaging each crop with its mirror image is a model setting (Config.test_flip); None keeps the model's.
    test_flip: bool | None = setting(None, "average each crop with its mirror image", flag=False)


class Landmarker:
    """A landmark model with the crop recipe it was trained with, and a face finder.

    model: a shipped name (stage1, stage2, stage3), a checkpoint, or with
    ``backend="onnxruntime"`` an exported ``.onnx`` (its ``.json`` beside it).
    settings: a LandmarkerSettings, and any of its fields as keywords on top of it, e.g.
    ``Landmarker("stage3", detector="haar", refine=False)``. Besides the names of the
    settings' ``detector``, a callable ``image -> (boxes, scores)`` or None (boxes are always
    given) is taken as the face finder.
    """

    # On a smaller face the first points' eye line is too rough to turn by (and the net, shown
    # a blurred face turned the wrong way, follows the crop).
    TURN_MIN_FACE = 32
    # A face this small (pixels, the square root of its box's area) that the finder scores
    # SMALL_FACE_SCORE or more is judged by the branch from small_face_prob on.
    SMALL_FACE = 24.0
    SMALL_FACE_SCORE = 0.4
    # Candidates from this share of the finder's threshold go on, judged from unsure_face_prob.
    UNSURE_SHARE = 0.75

    def __init__(self, model=None, settings: LandmarkerSettings | None = None, *, device: str = "cpu", **overrides):
        known = {f.name for f in fields(LandmarkerSettings)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UsageError(f"Landmarker: unknown setting {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        settings = replace(settings or LandmarkerSettings(), **overrides)
        if settings.first_look_grow < 1:
            raise UsageError(f"first_look_grow (--first-look-grow) must be 1 (never) or more, "
                             f"not {settings.first_look_grow:g}")
        if not 0 <= settings.settle_iou <= 1:
            raise UsageError(f"settle_iou (--settle-iou) must be from 0 (never) to 1, not {settings.settle_iou:g}")
        self.settings = settings
        self.device = torch.device(device)
        exported = model is not None and not isinstance(model, Loaded) and str(model).endswith(".onnx")
        backend = "onnxruntime" if exported else choose_backend(settings.backend, self.device)
        self.backend = backend
        self._session = None
        if exported:
            if settings.backend == "torch":
                raise UsageError(f"{model}: an exported ONNX model runs with --backend onnxruntime, not torch")
            self.spec = read_export_spec(Path(model))
            self._session = runtime_session(Path(model))
        else:
            loaded = model if isinstance(model, Loaded) else load_model(resolve_model(model or default_model(True)))
            self.spec = loaded.spec
            self._model = loaded.spec.inference_model(loaded.net, settings.test_flip).to(self.device).eval()
            # The first look only places the second one: no flip averaging there (half the work).
            self._quick_model = loaded.spec.inference_model(loaded.net, False).to(self.device).eval()
            if backend == "onnxruntime":
                c = self.spec.config
                example = torch.zeros(2, c.channels, c.input_size, c.input_size)
                self._model = RuntimeNet(self._model, example, {0: "faces"})
                self._quick_model = RuntimeNet(self._quick_model, example, {0: "faces"})
        self.config = self.spec.config
        self.scheme = self.spec.scheme
        self.min_face_prob = self.config.face_threshold if settings.min_face_prob is None else settings.min_face_prob
        self.finder = make_finder(settings.detector, settings.detector_threshold, device, settings.detector_size,
                                  settings.detector_zoom_below, backend, settings.detector_zoom_out,
                                  settings.detector_zoom_out_close_up)
        # The finder's own threshold; a trained finder made here then proposes from UNSURE_SHARE of
        # it, and _face_threshold asks more of the face branch for the candidates under it (a
        # finder passed in as a callable is left as it is).
        self.finder_threshold = float(getattr(self.finder, "threshold", 0.0))
        made_here = isinstance(settings.detector, (str, Path))
        if made_here and self.classify and settings.unsure_face_prob < 1 and self.finder_threshold > 0:
            self.finder.threshold = self.finder_threshold * self.UNSURE_SHARE
        self.timings: dict[str, float] = {}  # the last detect(): detector_ms, landmarks_ms

    @property
    def classify(self) -> bool:
        return self.config.classify

    def _run(self, batch: torch.Tensor, first_look: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """[B, C, S, S] net input -> (points [B, K, 2] as shares of the crop, face prob [B] or None)."""
        if self._session is not None:
            outputs = self._session.run(None, {self._session.get_inputs()[0].name: batch.numpy()})
            return outputs[0], (outputs[1] if len(outputs) > 1 else None)
        model = self._quick_model if first_look else self._model
        with torch.no_grad():
            points, prob = split_inference(model(batch if self.backend == "onnxruntime" else batch.to(self.device)))
        return points.cpu().numpy(), None if prob is None else prob.cpu().numpy()

    def _crops(self, image: np.ndarray, crop_boxes: np.ndarray, matrices=None) -> torch.Tensor:
        """Net input for crops: each of ``crop_boxes`` resized, or where ``matrices`` holds a
        [2, 3] affine (picture to crop pixels) rather than None, that crop warped."""
        s = self.config.input_size
        matrices = [None] * len(crop_boxes) if matrices is None else matrices
        crops = np.stack([(crop_resize(image, box, s, s) if m is None else warp_crop(image, m, s, s)).transpose(2, 0, 1)
                          for box, m in zip(crop_boxes, matrices)])
        batch = normalize_images(torch.from_numpy(crops).float(), self.config.normalize)
        return batch.contiguous(memory_format=torch.channels_last) if self.backend == "torch" else batch

    def landmarks(self, image, face_boxes, scores=None, verify: bool = True) -> list[Face]:
        """Landmarks for given face boxes [N, 4] on an image (path or array), one Face per box;
        with a face branch (and ``verify``), a crop it calls no face gets no points."""
        return self._look(self._pixels(image), face_boxes, scores, verify)

    def _pixels(self, image) -> np.ndarray:
        """A picture (path or array) as the model reads it: uint8 [H, W, channels]."""
        return to_channels(as_image(image), self.config.channels)

    def _look(self, pixels: np.ndarray, face_boxes, scores=None, verify: bool = True,
             first_look: bool = False, turns=None) -> list[Face]:
        """``landmarks`` on a picture already converted by ``pixels`` (a picture looked at twice
        is converted once). ``turns``: per box, degrees its face is tilted by (the box is then
        given upright, about its centre), cropped turned so the face stands upright."""
        face_boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
        turns = np.zeros(len(face_boxes)) if turns is None else np.asarray(turns, dtype=np.float64)
        h, w = pixels.shape[:2]
        s, expand = self.config.input_size, self.config.crop_expand
        matrices = [turned_crop_matrix(b, t, s, expand) if t else None for b, t in zip(face_boxes, turns)]
        boxes = np.array([crop_box(b, w, h, expand) if m is None else affine_crop_bounds(m, s, s)
                          for b, m in zip(face_boxes, matrices)]).reshape(-1, 4)
        usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # not wholly outside the picture
        points = np.full((len(boxes), self.scheme.num_points, 2), np.nan)
        prob = np.zeros(len(boxes)) if self.classify else None
        if usable.any():
            chosen = np.flatnonzero(usable)
            shares, found_prob = self._run(self._crops(pixels, boxes[chosen], [matrices[i] for i in chosen]), first_look)
            for j, i in enumerate(chosen):
                points[i] = (from_crop(shares[j] * s, boxes[i], (s, s)) if matrices[i] is None
                             else affine_points(shares[j] * s, invert_affine(matrices[i])))
            if prob is not None:
                prob[usable] = found_prob
        faces = []
        for i in range(len(boxes)):
            p = None if prob is None else float(prob[i])
            is_face = usable[i] and (p is None or not verify
                                     or p >= self._face_threshold(face_boxes[i], None if scores is None else scores[i]))
            # A turned look reports the upright-framed box of the points it found.
            box = face_boxes[i] if not turns[i] or not is_face else self.scheme.face_boxes(points[i])
            faces.append(Face(box, boxes[i], points[i] if is_face else None, p,
                              None if scores is None else float(scores[i]), turn=float(turns[i])))
        return faces

    def _face_threshold(self, face_box: np.ndarray, score: float | None) -> float:
        """The face branch's probability from which a crop of ``face_box`` (scored ``score`` by
        the finder, None where boxes were given) is a face."""
        if score is None:
            return self.min_face_prob
        if score < self.finder_threshold:
            return max(self.min_face_prob, self.settings.unsure_face_prob)
        w, h = np.maximum(face_box[2:] - face_box[:2], 0)
        if score >= self.SMALL_FACE_SCORE and np.sqrt(w * h) < self.SMALL_FACE:
            return min(self.min_face_prob, self.settings.small_face_prob)
        return self.min_face_prob

    @property
    def candidate_floor(self) -> float:
        """The lowest finder score that goes on to the landmarks (0 for a finder without a threshold)."""
        return float(getattr(self.finder, "threshold", 0.0))

    def find(self, image) -> tuple[np.ndarray, np.ndarray]:
        """Candidate face boxes [N, 4] and scores [N] from the face finder."""
        if self.finder is None:
            raise UsageError("this Landmarker has no face finder (detector=None); give face boxes: "
                             "landmarks(image, boxes)")
        return self.finder(as_image(image))

    def _faces_at(self, image, boxes, scores=None) -> list[Face]:
        """Faces at a face finder's candidate boxes: landmarks, looked at again from the box their
        points give (``refine``), checked by the face branch on that look, duplicates merged
        (torchvision's NMS).

        The second look is framed as the model's scheme frames faces (a 68-point model's by the
        tight box of its points, which the course's boxes the finder learned are not), and the
        branch judges it: a finder's box can sit off the face, and an off-centre crop is what the
        branch learned to call a partial face."""
        pixels = self._pixels(image)
        if not self.settings.refine:
            return merge_duplicates(self._look(pixels, boxes, scores))
        first, looked, first_boxes = self._first_look(pixels, boxes, scores)
        if not looked:
            return first
        faces = self._look_from_points(pixels, [f.points for f in looked], [f.score for f in looked])
        return merge_duplicates(self._settled(pixels, faces, first_boxes))

    def _settled(self, pixels: np.ndarray, faces: list[Face], before: np.ndarray) -> list[Face]:
        """Faces of a look with those whose box moved from ``before`` (the boxes [N, 4] the look
        cropped from) by more than ``settle_iou`` allows looked at once more from their new box:
        a first look at a finder's box around part of a face moves its points only part of the way."""
        moved = [i for i, face in enumerate(faces) if face.points is not None
                 and iou(before[i], self.scheme.face_boxes(face.points[None]))[0] < self.settings.settle_iou]
        if not moved:
            return faces
        again = self._look_from_points(pixels, [faces[i].points for i in moved], [faces[i].score for i in moved])
        settled = list(faces)
        for i, face in zip(moved, again):
            settled[i] = face
        return settled

    def _look_from_points(self, pixels: np.ndarray, points: list[np.ndarray], scores=None) -> list[Face]:
        """A look at faces whose points are known (a first look's, or the last video frame's):
        each cropped from the box its points give, turned upright where the head is tilted."""
        if not points:
            return []
        boxes = self.scheme.face_boxes(np.stack(points))
        turns = self._turns(points, boxes)
        upright = [upright_box(p, t, self.scheme) if t else b for p, t, b in zip(points, turns, boxes)]
        return self._look(pixels, np.array(upright), scores, turns=turns)

    def _turns(self, points: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """Per face (its points and the face box [N, 4] they give), the degrees its crop is to be
        turned by: its eye-line tilt where that exceeds ``turn_above`` (up to 90) on a face of
        ``TURN_MIN_FACE`` pixels or more, else 0."""
        if not self.settings.turn_above or not points:
            return np.zeros(len(points))
        tilt = np.array([self.scheme.tilt(p) for p in points])
        side = box_size(boxes).max(axis=1)
        return np.where((np.abs(tilt) > self.settings.turn_above) & (np.abs(tilt) <= 90) & (side >= self.TURN_MIN_FACE),
                        tilt, 0.0)

    def _first_look(self, pixels: np.ndarray, boxes, scores=None) -> tuple[list[Face], list[Face], np.ndarray]:
        """The quick look at candidate boxes on a picture converted by ``pixels`` -> (a Face per
        box, those with points, and the face boxes [M, 4] their points give: where the second
        look crops)."""
        first = self._look(pixels, self._grown(boxes, pixels.shape[:2]), scores, verify=False, first_look=True)
        looked = [f for f in first if f.points is not None]
        second_boxes = (self.scheme.face_boxes(np.stack([f.points for f in looked])) if looked
                        else np.zeros((0, 4)))
        return first, looked, second_boxes

    def _grown(self, boxes, shape: tuple[int, int]) -> np.ndarray:
        """Candidate boxes [N, 4] with those of a close-up (faces.is_close_up, in a picture of
        ``shape``) grown ``first_look_grow`` times about their centre."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        grow = self.settings.first_look_grow
        if grow == 1 or not len(boxes):
            return boxes
        big = is_close_up(boxes, shape)
        return np.array([expand_box(box, (grow - 1) / 2) if wide else box for box, wide in zip(boxes, big)])

    def detect(self, image) -> list[Face]:
        """Find faces in a picture (path or RGB array) and their landmarks."""
        rgb = as_image(image)
        start = time.perf_counter()
        boxes, scores = self.find(rgb)
        found = time.perf_counter()
        faces = self._faces_at(rgb, boxes, scores)
        self.timings = {"detector_ms": 1000 * (found - start), "landmarks_ms": 1000 * (time.perf_counter() - found)}
        return faces

    __call__ = detect

    def pose(self, face: Face, image_size: tuple[int, int]) -> dict:
        """Head pose of a face in a picture of ``image_size`` (width, height): yaw, pitch and roll in
        degrees (signs in landmarks.data.pose)."""
        from ..data.pose import head_pose
        yaw, pitch, roll = head_pose(face.points, self.scheme, image_size)
        return {"yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1)}

    def align(self, image, face: Face, size: int = 112) -> np.ndarray:
        """The face's aligned ``size`` x ``size`` RGB crop: eye centres, nose tip and mouth corners
        moved by a similarity transform to where face recognisers expect them."""
        from .align import align_face
        return align_face(as_image(image), face.points, self.scheme, size)

    def track(self, frames, settings=None, **overrides):
        """Faces of each frame of an iterable of (time in seconds, RGB frame), with ids that follow
        each face; ``settings`` (a TrackSettings) and its fields as keywords, e.g. ``detect_every=5``."""
        from .track import Tracker, TrackSettings
        return Tracker(self, replace(settings or TrackSettings(), **overrides)).run(frames)


def upright_box(points: np.ndarray, degrees: float, scheme) -> np.ndarray:
    """The face box of points tilted by ``degrees``, framed as if upright: the scheme's box of the
    points turned back, placed about the tilted face's own centre (for ``look``'s ``turns``)."""
    pivot = points.mean(axis=0)
    box = scheme.face_boxes(turn_points(points, -degrees, pivot))
    centre = turn_points(box_centre(box), degrees, pivot)
    return box + np.tile(centre - box_centre(box), 2)


def merge_duplicates(faces: list[Face], iou: float = 0.4, covered: float = 0.6) -> list[Face]:
    """Of faces whose boxes overlap by ``iou`` or more, keep the most likely (face probability,
    else the finder's score), and drop a face whose box a likelier one covers by ``covered`` of
    its area (a look at part of a face already found: its box overlaps the whole face's box
    little, yet lies inside it). Faces the branch rejected stay, for drawing."""
    kept = [f for f in faces if f.is_face]
    if len(kept) < 2:
        return faces
    boxes = np.stack([f.box for f in kept]).astype(np.float64)
    score = torch.tensor([(f.face_prob if f.face_prob is not None else 1.0) * (f.score if f.score is not None else 1.0)
                          for f in kept], dtype=torch.float64)
    survivors: list[int] = []
    for i in nms(torch.from_numpy(boxes), score, iou).tolist():  # likeliest first
        if not survivors or covered_share(boxes[i], boxes[survivors]).max() < covered:
            survivors.append(i)
    # In the finder's order: equal scores would otherwise come out in any order.
    return [kept[i] for i in sorted(survivors)] + [f for f in faces if not f.is_face]


def framed_faces(marker, rgb: np.ndarray, face_boxes: np.ndarray,
                        min_iou: float = 0.4) -> list[tuple[int, np.ndarray]]:
    """Where the whole-picture pipeline looks at the faces of an RGB picture: ``marker``'s finder,
    its first look, and the face box those points give (the second look's) -> (face index, box)
    for each annotated face with such a box at IoU ``min_iou`` or more, the closest one.

    For a small face that box is looser than the annotation (its first points spread), and the
    face branch must still call the crop a face."""
    boxes, scores = marker.find(rgb)
    _, _, looked = marker._first_look(marker._pixels(rgb), boxes, scores)
    if not len(looked):
        return []
    framed = []
    for index, face_box in enumerate(face_boxes):
        overlap = iou(face_box, looked)
        best = int(overlap.argmax())
        if overlap[best] >= min_iou:
            framed.append((index, looked[best]))
    return framed


def read_export_spec(onnx_path: Path) -> ModelSpec:
    import json
    path = Path(str(onnx_path) + ".json")
    if not path.is_file():
        raise UsageError(f"{path}: missing; it is written beside the .onnx file by --phase export")
    return spec_from_dict(json.loads(path.read_text()), str(path))
