"""Train/test lists from annotated pictures: crops, negatives, the split by image, and the
picture lists that whole-picture training and testing read."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import DataError, UsageError
from ..files import Outputs
from ..geometry import EXPAND_RATIO, box_centre, contains, crop_box, expand_box, iou
from ..metrics import YAW_BINS, bin_counts, bin_of
from .formats import Source, read_source
from .images import image_size, load_image
from .labels import (Annotation, ListEntry, ListInfo, Report, group_pictures, write_list, write_list_info,
                     write_picture_list)
from .pose import entry_yaws
from .scheme import Scheme, load_scheme

log = logging.getLogger("landmarks")

NEGATIVE_KINDS = ("random", "partial", "loose")
# loose is left out by default: the branch it trains lost small faces in whole pictures (docs/stage3.md).
DEFAULT_NEGATIVE_KINDS = ("random", "partial")
# Yaw from the points: where the nose tip falls between the eye centres (0.5 = frontal).
# Bin edges chosen so that each of the three bins holds a good share of the course data
# (python -m landmarks.data --yaw prints the counts).
YAW_EDGES = (0.42, 0.58)
YAW_CLASSES = ["left", "frontal", "right"]


def to_list_entry(annotation: Annotation, width: int, height: int, ratio: float = EXPAND_RATIO) -> ListEntry:
    """The list line of a face: expanded, clamped box and points relative to it."""
    box = crop_box(annotation.box, width, height, ratio)
    return ListEntry(annotation.image, box, annotation.points - box[:2], annotation.source,
                     attributes=dict(annotation.attributes))


# 300-W's convention: NAME_1.jpg, NAME_2.jpg ... in one folder are faces of one photo (HELEN's are
# crops around each face, so neighbours show in both). A one- or two-digit suffix only:
# LFPW's image_0001.jpg are photos of their own.
PHOTO_SUFFIX = re.compile(r"_\d{1,2}$")


def photo_of(image) -> str:
    """The photo a picture file shows: its path, with a NAME_<n> picture taken as part of NAME."""
    path = Path(image)
    return str(path.with_name(PHOTO_SUFFIX.sub("", path.stem)))


def split_by_image(items: list, image_of, test_ratio: float, seed: int) -> tuple[list, list]:
    """Split ``items`` so that no image has items on both sides.

    ``test_ratio`` of the images (rounded) go to test; the order is fixed by ``seed``.
    ``image_of`` gives the key an item is kept with: its picture, or the photo it comes from.
    """
    if not 0.0 <= test_ratio <= 1.0:
        raise UsageError(f"--test-ratio must be between 0 and 1, got {test_ratio}")
    images = sorted({str(image_of(item)) for item in items})
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(test_ratio * len(images)))
    test_images = {images[i] for i in order[:n_test]}
    train = [item for item in items if str(image_of(item)) not in test_images]
    test = [item for item in items if str(image_of(item)) in test_images]
    return train, test


def sample_negatives(face_boxes: np.ndarray, width: int, height: int, count: int, max_iou: float,
                     rng: np.random.Generator, kinds=DEFAULT_NEGATIVE_KINDS, tries: int = 50,
                     ratio: float = EXPAND_RATIO) -> list[tuple[np.ndarray, str]]:
    """Up to ``count`` candidate boxes per face that are not faces -> [(box [4], kind)].

    face_boxes: [F, 4] annotated boxes of one image. Kinds take turns:
    ``random``: anywhere in the picture, 0.6-2.5x a face's size, aspect 0.75-1.33,
    IoU < ``max_iou`` with every face; ``partial``: a face box shifted and scaled so that
    it still overlaps that face (IoU 0.1 to ``max_iou``), as a detector's near miss;
    ``loose``: a box whose crop (expanded by ``ratio``, wholly inside the picture) holds a whole
    face yet is 1.8-2.6x its size, so that the crop's IoU with every face is below ``max_iou``:
    a detector box far too large, or a face too small to be the crop's subject.
    """
    sizes = face_boxes[:, 2:] - face_boxes[:, :2]
    centres = box_centre(face_boxes)
    found: list[tuple[np.ndarray, str]] = []
    for n in range(count * len(face_boxes)):
        kind = kinds[n % len(kinds)]
        for _ in range(tries):
            face = rng.integers(len(face_boxes))
            if kind == "random":
                w = sizes[face, 0] * np.exp(rng.uniform(np.log(0.6), np.log(2.5)))
                h = w * sizes[face, 1] / sizes[face, 0] * rng.uniform(0.75, 1.33)
                if w >= width or h >= height or w < 8 or h < 8:
                    continue
                x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
                candidate = judged = np.array([x1, y1, x1 + w, y1 + h])
            elif kind == "loose":
                crop_size = sizes[face] * np.exp(rng.uniform(np.log(1.8), np.log(2.6))) * [1.0, rng.uniform(0.9, 1.1)]
                # The face lies anywhere inside the crop.
                centre = centres[face] + rng.uniform(-0.5, 0.5, 2) * np.maximum(crop_size - sizes[face], 0)
                half = crop_size / (1 + 2 * ratio) / 2
                candidate = np.concatenate([centre - half, centre + half])
                # Its crop is what must not be a face. Wholly inside the picture: a crop cut by the
                # picture's edge could be the clamped crop of a face there.
                judged = expand_box(candidate, ratio)
                if ((judged[:2] < 0).any() or judged[2] > width or judged[3] > height
                        or not contains(judged, centres[face])[0]):
                    continue
            else:
                scale = np.exp(rng.uniform(np.log(0.7), np.log(1.4), 2))
                # Shifted by 0.3 to 0.9 of the face's size along each axis: IoU mostly 0.1 to 0.4.
                shift = rng.uniform(0.3, 0.9, 2) * rng.choice([-1.0, 1.0], 2)
                centre = centres[face] + shift * sizes[face]
                half = sizes[face] * scale / 2
                candidate = judged = np.clip(np.concatenate([centre - half, centre + half]), 0,
                                             [width, height, width, height])
                if (candidate[2:] - candidate[:2]).min() < 8 or iou(candidate, face_boxes[face:face + 1])[0] < 0.1:
                    continue
            if iou(judged, face_boxes).max() < max_iou:
                found.append((candidate, kind))
                break
    return found


def detector_mistakes(finder, image: Path, face_boxes: np.ndarray, max_iou: float,
                      count: int) -> list[tuple[np.ndarray, str]]:
    """A face finder's boxes on ``image`` that are not on a face, best first: IoU below ``max_iou``
    with every face, no face's centre inside, and not centred inside a face (a box twice a
    face's size around it overlaps it little, yet shows the face)."""
    boxes, scores = finder(load_image(image, 3))
    centres = box_centre(face_boxes)

    def on_a_face(box) -> bool:
        own = box_centre(box)
        holds = contains(box, centres).any()
        inside = ((own >= face_boxes[:, :2]) & (own <= face_boxes[:, 2:])).all(1).any()
        return bool(holds or inside or iou(box, face_boxes).max() >= max_iou)

    mistakes = [(box, "detector") for box, _ in sorted(zip(boxes, scores), key=lambda item: -item[1])
                if not on_a_face(box) and box[2] > box[0] + 4 and box[3] > box[1] + 4]
    return mistakes[:count]


def measure_face_box(boxes: np.ndarray, points: np.ndarray) -> tuple[float, float, float, float]:
    """Median position of face boxes [N, 4] as shares of the tight box of their points [N, K, 2]."""
    low, high = np.nanmin(points, axis=1), np.nanmax(points, axis=1)  # over the labelled points
    size = np.maximum(high - low, 1e-6)
    shares = np.concatenate([(boxes[:, :2] - low) / size, (boxes[:, 2:] - low) / size], axis=1)
    return tuple(round(float(v), 3) for v in np.median(shares, axis=0))


def yaw_ratio(points: np.ndarray, scheme: Scheme) -> np.ndarray:
    """[N, K, 2] -> [N] where the nose tip falls along the line between the eye centres (0 to 1)."""
    five = load_scheme("five").convert(points, scheme) if scheme.name != "five" else points
    left, right, nose = five[:, 0], five[:, 1], five[:, 2]
    axis = right - left
    return ((nose - left) * axis).sum(-1) / np.maximum((axis * axis).sum(-1), 1e-9)


def build_lists(data_dir, out_dir, *, fmt: str = "course", scheme: str | Scheme | None = None,
                labels=None, box_file=None, folders=None, test_ratio: float = 0.1, val_ratio: float = 0.0,
                seed: int = 0, strict: bool = False, negatives: int = 0, neg_iou: float = 0.3,
                ratio: float | None = None, yaw: bool = False, find_faces=None, detector_negatives: int = 3,
                negative_kinds=DEFAULT_NEGATIVE_KINDS, frame_faces=None, framed_by: str = "",
                outputs: Outputs | None = None, verify: int = 0) -> dict:
    """Read annotations (``data_dir``: a folder, or a list of folders read as one set), write
    ``train.txt``, ``test.txt``, ``train_pictures.txt``, ``test_pictures.txt`` and
    ``lists.json``; returns a summary dict. Faces of one photo stay on one side of each split
    (``photo_of``). Crops are the face boxes grown by ``ratio`` on every side (None: as the
    scheme says, 0.25 unless its file names another ``crop_expand``).

    With ``val_ratio``, that share of the training pictures goes to ``val.txt`` and
    ``val_pictures.txt`` instead, for choosing settings; the test split stays the one
    ``test_ratio`` and ``seed`` give without it.

    ``find_faces`` (a face finder: RGB picture -> boxes [N, 4], scores [N]) adds its false
    positives on each picture as non-faces of kind ``detector`` (at most ``detector_negatives`` a
    picture, best-scored first): the mistakes a whole-picture pipeline asks the face branch to catch.

    ``frame_faces`` (RGB picture, annotated face boxes [F, 4] -> [(face index, box)], where a
    whole-picture pipeline looks at each face; ``framed_by`` names it in lists.json) adds each
    training face a second time, cropped there, with ``framing=finder``. Only the training part
    gets them: validation and test crops stay framed by the annotations.

    Every file read is refused as an output (``outputs`` holds the command's other inputs), and
    checked before anything is written; ``verify``: verify.png is to be written too."""
    outputs = outputs or Outputs()
    report = Report(strict=strict)
    target = load_scheme(scheme) if isinstance(scheme, (str, Path)) else scheme
    folders_read = [Path(d) for d in data_dir] if isinstance(data_dir, (list, tuple)) else [Path(data_dir)]
    source = read_sources(fmt, folders_read, report, folders=folders, labels=labels, box_file=box_file,
                          scheme=target)
    if not source.annotations:
        raise DataError(f"{', '.join(map(str, folders_read))}: no usable faces ({report.summary()})")
    outputs.reads("--data-dir", *source.files, *sorted({a.image for a in source.annotations}))
    out_dir = Path(out_dir)
    parts_written = ("train", "test") + (("val",) if val_ratio else ())
    written = [f"{part}{suffix}" for part in parts_written for suffix in (".txt", "_pictures.txt")]
    for name in written + ["lists.json"]:
        outputs.check("--out-dir", out_dir / name)
    if verify:
        outputs.check("--verify", out_dir / "verify.png")
    target = target or source.scheme
    ratio = target.crop_expand if ratio is None else ratio
    annotations = [replace(a, points=target.convert(a.points, source.scheme)) for a in source.annotations]
    boxes = np.array([a.box for a in annotations])
    points = np.array([a.points for a in annotations])
    # The scheme as this data frames faces around its points (refinement and tracking use it).
    target = replace(target, face_box=measure_face_box(boxes, points))
    attributes = dict(source.attributes)
    if yaw:
        bins = np.digitize(yaw_ratio(points, target), YAW_EDGES)
        annotations = [replace(a, attributes={**a.attributes, "yaw": str(int(b))}) for a, b in zip(annotations, bins)]
        attributes["yaw"] = list(YAW_CLASSES)
    by_image: dict[Path, list[Annotation]] = defaultdict(list)
    for annotation in annotations:
        by_image[annotation.image].append(annotation)
    rng = np.random.default_rng(seed)
    entries: list[ListEntry] = []
    images = sorted(by_image)
    if find_faces is not None:
        images = tqdm(images, desc="detector negatives", unit="img", leave=False, disable=None)
    sizes: dict[Path, tuple[int, int]] = {}
    for image in images:
        width, height = sizes[image] = image_size(image)
        faces = by_image[image]
        entries += [to_list_entry(face, width, height, ratio) for face in faces]
        face_boxes = np.stack([face.box for face in faces])
        found = (sample_negatives(face_boxes, width, height, negatives, neg_iou, rng, kinds=negative_kinds,
                                  ratio=ratio) if negatives else [])
        if find_faces is not None:
            found += detector_mistakes(find_faces, image, face_boxes, neg_iou, detector_negatives)
        for box, kind in found:
            entries.append(ListEntry(image, crop_box(box, width, height, ratio), None,
                                     f"negative of {image}", attributes={"negative": kind}))
    train, test = split_by_image(entries, lambda e: photo_of(e.image), test_ratio, seed)
    parts = {"train": train, "test": test}
    if val_ratio:
        # A share of all pictures, taken from the training ones with another seed.
        share = val_ratio / max(1.0 - test_ratio, 1e-9)
        parts["train"], parts["val"] = split_by_image(train, lambda e: photo_of(e.image), min(share, 1.0),
                                                        seed + 1)
    yaw_counts = {name: yaw_spread(part, target, sizes) for name, part in parts.items()}
    framed = 0
    if frame_faces is not None:
        extra = framed_entries(frame_faces, parts["train"], by_image, ratio)
        framed = len(extra)
        parts["train"] = parts["train"] + extra
    out_dir.mkdir(parents=True, exist_ok=True)
    labelled = negatives > 0 or find_faces is not None
    pictures = group_pictures(annotations, target.num_points)
    for name, part in parts.items():
        write_list(out_dir / f"{name}.txt", part, labelled)
        images = {str(e.image) for e in part}
        write_picture_list(out_dir / f"{name}_pictures.txt", [p for p in pictures if str(p.image) in images])
    train, test = parts["train"], parts["test"]
    info = ListInfo(target, ratio, attributes,
                    {"format": fmt, "source_scheme": source.scheme.name, "seed": seed, "test_ratio": test_ratio,
                     "val_ratio": val_ratio,
                     "negatives": negatives, "neg_iou": neg_iou,
                     **({"framed_positives": framed_by} if frame_faces is not None else {})})
    write_list_info(out_dir, info)
    return {
        "faces_kept": report.kept, "lines_skipped": report.skipped,
        "negatives_clamped": report.clamped,
        "train_lines": len(train), "test_lines": len(test), "val_lines": len(parts.get("val", [])),
        "train_non_faces": sum(not e.is_face for e in train), "framed_faces": framed,
        "test_non_faces": sum(not e.is_face for e in test),
        "images": len(by_image), "summary": report.summary(), "scheme": target, "expand": ratio,
        "yaw_counts": yaw_counts,
        "attribute_counts": {name: np.bincount([int(a.attributes[name]) for a in annotations],
                                               minlength=len(classes)).tolist()
                             for name, classes in attributes.items()},
    }


def yaw_spread(entries: list[ListEntry], scheme: Scheme, sizes: dict[Path, tuple[int, int]]) -> dict[str, int]:
    """Faces of a list part per bin of head yaw (metrics.YAW_BINS), as the points give it; faces
    whose yaw cannot be told (a point unlabelled, a scheme with no pose) are left out."""
    return bin_counts(bin_of(entry_yaws([e for e in entries if e.is_face], scheme, sizes), YAW_BINS), YAW_BINS)


def framed_entries(frame_faces, train: list[ListEntry], by_image: dict[Path, list[Annotation]],
                   ratio: float) -> list[ListEntry]:
    """The training faces once more (``by_image``: each picture's annotations), each cropped where
    ``frame_faces`` says a whole-picture pipeline looks at it, marked ``framing=finder``."""
    images = sorted({e.image for e in train}, key=str)
    entries = []
    for image in tqdm(images, desc="framed faces", unit="img", leave=False, disable=None):
        faces = by_image[image]
        rgb = load_image(image, 3)
        height, width = rgb.shape[:2]
        for index, box in frame_faces(rgb, np.stack([face.box for face in faces])):
            framed = replace(faces[index], box=box, attributes={**faces[index].attributes, "framing": "finder"})
            entries.append(to_list_entry(framed, width, height, ratio))
    return entries


def ensure_lists(list_dir: Path, data_dir: Path, *, train_list: Path | None = None, test_list: Path | None = None,
                 test_ratio: float = 0.1, seed: int = 0, strict: bool = False, pictures: bool = False,
                 validation: bool = False, build: bool = True) -> tuple[Path, Path]:
    """The train and test lists of ``list_dir`` (``pictures``: the picture lists), or the ones
    given; built from ``data_dir`` where the folder has none (``build``: this process may build
    them). ``validation`` (training): where the folder has a validation part (built with
    --val-ratio) and no test list is given, it is the held-out list, so that a run's best.pt is
    not chosen on the test faces."""
    suffix = "_pictures.txt" if pictures else ".txt"
    train_path = train_list or list_dir / f"train{suffix}"
    test_path = test_list or list_dir / f"test{suffix}"
    val_path = list_dir / f"val{suffix}"
    if validation and test_list is None and val_path.is_file():
        log.info("validating on %s, the lists' validation part (--test-list picks another)", val_path)
        test_path = val_path
    if build and train_list is None and not train_path.is_file():
        log.info("no %s: building lists from %s", train_path, data_dir)
        summary = build_lists(data_dir, list_dir, test_ratio=test_ratio, seed=seed, strict=strict)
        log.info("%s; %d train and %d test lines in %s", summary["summary"], summary["train_lines"],
                 summary["test_lines"], list_dir)
    return train_path, test_path


def read_sources(fmt: str, data_dirs: list[Path], report: Report, **options) -> Source:
    """The annotations of several folders in one format, as one source: one scheme for all."""
    sources = [read_source(fmt, folder, report, **options) for folder in data_dirs]
    scheme = sources[0].scheme
    for folder, source in zip(data_dirs[1:], sources[1:]):
        if source.scheme.num_points != scheme.num_points:
            raise DataError(f"{folder}: faces of {source.scheme.num_points} points, but {data_dirs[0]} holds "
                            f"{scheme.num_points}-point faces; read them into separate lists")
    attributes = {name: classes for source in sources for name, classes in source.attributes.items()}
    return Source([a for source in sources for a in source.annotations], scheme, attributes,
                  all(source.boxes_given for source in sources), [f for source in sources for f in source.files])
