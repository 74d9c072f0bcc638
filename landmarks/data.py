"""Train/test lists from the course's label files, and the dataset that feeds training.

Run ``python -m landmarks.data --help`` to build lists and a verification picture.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from . import NUM_POINTS
from .augment import AugmentSettings, build_augmentation
from .cli import run_cli
from .errors import DataError, UsageError
from .files import atomic_write, default_cache_dir
from .geometry import crop_box, expand_box, iou, to_crop
from .images import crop_resize, image_size, load_image
from .labels import Annotation, LandmarkList, ListEntry, Report, read_label_file, read_list, write_list

log = logging.getLogger(__name__)

EXPAND_RATIO = 0.25
# Crops for augmented training are cut this much larger (share of the crop, each side)
# so that rotation, shift and zoom-out find real pixels, not black borders.
AUGMENT_MARGIN = 0.125
CACHE_VERSION = 1


# ---------------------------------------------------------------- list building

def find_label_folders(data_dir: Path, folders: list[str] | None) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found")
    if folders:
        return [data_dir / name for name in folders]
    found = sorted(p for p in data_dir.iterdir() if (p / "label.txt").is_file())
    if not found:
        raise DataError(f"{data_dir}: no sub-folder holds a label.txt (expected I/ and II/)")
    return found


def read_annotations(data_dir: Path, folders: list[str] | None, report: Report) -> list[Annotation]:
    annotations = []
    for folder in find_label_folders(data_dir, folders):
        annotations += read_label_file(folder / "label.txt", report)
    if not annotations:
        raise DataError(f"{data_dir}: no usable faces ({report.summary()})")
    return annotations


def to_list_entry(annotation: Annotation, width: int, height: int, ratio: float = EXPAND_RATIO) -> ListEntry:
    """The list line of a face: expanded, clamped box and points relative to it."""
    box = crop_box(annotation.box, width, height, ratio)
    return ListEntry(annotation.image, box, annotation.points - box[:2], annotation.source)


def split_by_image(items: list, image_of, test_ratio: float, seed: int) -> tuple[list, list]:
    """Split ``items`` so that no image has items on both sides.

    ``test_ratio`` of the images (rounded) go to test; the order is fixed by ``seed``.
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


def sample_negatives(face_boxes: np.ndarray, width: int, height: int, count: int,
                     max_iou: float, rng: np.random.Generator, tries: int = 50) -> list[np.ndarray]:
    """Up to ``count`` face-sized boxes per face with IoU < ``max_iou`` to every face box.

    face_boxes: [F, 4] annotated boxes of one image. Sizes and aspects are drawn
    around those of the faces, so a negative looks like a detector candidate.
    """
    boxes: list[np.ndarray] = []
    sizes = face_boxes[:, 2:] - face_boxes[:, :2]
    for _ in range(count * len(face_boxes)):
        for _ in range(tries):
            w, h = sizes[rng.integers(len(sizes))] * rng.uniform(0.6, 1.6)
            w *= rng.uniform(0.85, 1.15)
            if w >= width or h >= height or w < 8 or h < 8:
                continue
            x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
            candidate = np.array([x1, y1, x1 + w, y1 + h])
            if iou(candidate, face_boxes).max() < max_iou:
                boxes.append(candidate)
                break
    return boxes


def build_lists(data_dir, out_dir, *, folders=None, test_ratio=0.1, seed=0, strict=False,
                negatives=0, neg_iou=0.3, ratio=EXPAND_RATIO) -> dict:
    """Read label files, write ``train.txt`` and ``test.txt``; returns a summary dict."""
    report = Report(strict=strict)
    annotations = read_annotations(Path(data_dir), folders, report)
    by_image: dict[Path, list[Annotation]] = defaultdict(list)
    for annotation in annotations:
        by_image[annotation.image].append(annotation)
    rng = np.random.default_rng(seed)
    entries: list[ListEntry] = []
    for image in sorted(by_image):
        width, height = image_size(image)
        faces = by_image[image]
        entries += [to_list_entry(face, width, height, ratio) for face in faces]
        if negatives:
            boxes = np.stack([face.box for face in faces])
            for box in sample_negatives(boxes, width, height, negatives, neg_iou, rng):
                entries.append(ListEntry(image, crop_box(box, width, height, ratio), None,
                                         f"negative of {image}"))
    train, test = split_by_image(entries, lambda e: e.image, test_ratio, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labelled = negatives > 0
    write_list(out_dir / "train.txt", train, labelled)
    write_list(out_dir / "test.txt", test, labelled)
    return {
        "faces_kept": report.kept, "lines_skipped": report.skipped,
        "negatives_clamped": report.clamped,
        "train_lines": len(train), "test_lines": len(test),
        "train_non_faces": sum(not e.is_face for e in train),
        "test_non_faces": sum(not e.is_face for e in test),
        "images": len(by_image), "summary": report.summary(),
    }


# ---------------------------------------------------------------- verification picture

def point_colour(index: int) -> tuple[int, int, int]:
    """A distinct BGR colour for each of the 21 points."""
    hue = int(180 * index / NUM_POINTS)
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(v) for v in bgr)


def draw_points(image_bgr: np.ndarray, points, radius: int = 2, numbers: bool = False) -> None:
    """Draw [21, 2] points (pixel coordinates) on a BGR image in place."""
    for index, (x, y) in enumerate(np.asarray(points)):
        centre = (int(round(x - 0.5)), int(round(y - 0.5)))
        cv2.circle(image_bgr, centre, radius, point_colour(index), -1, cv2.LINE_AA)
        if numbers:
            cv2.putText(image_bgr, str(index + 1), (centre[0] + 2, centre[1] - 2),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.28, point_colour(index), 1, cv2.LINE_AA)


def verification_picture(entries: list[ListEntry], count: int, out_png, seed: int = 0,
                         size: int = 224, columns: int = 4) -> Path:
    """A grid of ``count`` crops from a list with their numbered points, as a PNG."""
    if not entries:
        raise DataError("no entries to draw")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(entries), size=min(count, len(entries)), replace=False)
    tiles = []
    for i in chosen:
        entry = entries[i]
        crop = crop_resize(load_image(entry.image, 3), entry.box, size, size)[:, :, ::-1].copy()
        if entry.is_face:
            points = to_crop(entry.points + entry.box[:2], entry.box, (size, size))
            draw_points(crop, points, radius=3, numbers=True)
        else:
            cv2.putText(crop, "non-face", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
        tiles.append(crop)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)]
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), np.vstack(rows)):
        raise DataError(f"{out_png}: cannot write the picture")
    return out_png


# ---------------------------------------------------------------- dataset

@dataclass(frozen=True)
class CropSettings:
    """How crops are cut for a net: size, channels, and margin for augmentation."""

    size: int = 112
    channels: int = 1
    margin: float = 0.0

    @property
    def cache_size(self) -> int:
        return self.size + 2 * int(round(self.size * self.margin))

    def region(self, box) -> np.ndarray:
        """The image region cut for a crop box: the box plus the margin on each side."""
        pad = (self.cache_size - self.size) / 2 / self.size
        return expand_box(box, pad)


def cut_crops(entries: list[ListEntry], settings: CropSettings, workers: int, report: Report,
              progress: bool = False):
    """Decode each image once and cut every crop of it -> (uint8 [N, C, S, S], kept indices)."""
    by_image: dict[Path, list[int]] = defaultdict(list)
    for index, entry in enumerate(entries):
        by_image[Path(entry.image)].append(index)
    s = settings.cache_size
    crops = np.zeros((len(entries), settings.channels, s, s), np.uint8)
    ok = np.zeros(len(entries), bool)

    def work(item):
        image_path, indices = item
        try:
            image = load_image(image_path, settings.channels)
        except DataError as error:
            return indices, str(error)
        for i in indices:
            crop = crop_resize(image, settings.region(entries[i].box), s, s)
            crops[i] = crop.transpose(2, 0, 1)
        return indices, None

    items = list(by_image.items())
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        results = pool.map(work, items)
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(items), desc="cropping", unit="img", leave=False, disable=None)
        for indices, problem in results:
            if problem:
                for i in indices:
                    report.problem(entries[i].source or str(entries[i].image), problem)
            else:
                ok[indices] = True
    return crops, np.flatnonzero(ok)


def cache_key(entries: list[ListEntry], settings: CropSettings) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} {settings}".encode())
    for entry in entries:
        stat = os.stat(entry.image) if os.path.exists(entry.image) else None
        digest.update(f"{entry.image} {entry.box.tolist()} "
                      f"{stat.st_size if stat else -1} {stat.st_mtime_ns if stat else -1}\n".encode())
    return digest.hexdigest()[:20]


def store_crops(path: Path, crops: np.ndarray, kept: np.ndarray) -> None:
    """Write a crop cache file whole or not at all.

    Runs started together on the same list do not collide (see atomic_write); a
    cache that cannot be written costs only the next decode.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            np.savez(handle, crops=crops, kept=kept)
    except OSError as error:
        log.warning("%s: could not write the crop cache (%s); the crops will be decoded again next time",
                    path, error.strerror or error)


class FaceLandmarksDataset(torch.utils.data.Dataset):
    """Faces (and non-faces) of a list, cropped once and kept in memory.

    A sample is a dict: ``image`` float [C, size, size] (normalized per image
    when asked), ``points`` [21, 2] in pixels of the resized crop (zeros for a
    non-face), ``is_face`` bool, ``box`` [4] the crop box in image pixels,
    ``index`` the entry's position in the list. :meth:`batches` yields the same
    dicts batched, with augmentation applied to whole batches.
    """

    def __init__(self, entries: list[ListEntry], *, size: int = 112, channels: int = 1,
                 normalize: bool = True, augment: AugmentSettings | None = None,
                 cache_dir: Path | None = None, workers: int | None = None,
                 strict: bool = False, progress: bool = False, pin_memory: bool = False):
        self.pin_memory = pin_memory  # page-locked batches copy to a GPU without a staging copy
        self.augment = augment if augment and augment.enabled else None
        margin = AUGMENT_MARGIN if self.augment and self.augment.geometric else 0.0
        self.settings = CropSettings(size, channels, margin)
        self.normalize = normalize
        self.pipeline = build_augmentation(self.augment, size) if self.augment else None
        self.report = Report(strict=strict)
        crops, kept = self._load(entries, cache_dir, workers or min(8, os.cpu_count() or 1), progress)
        self.entries = [entries[i] for i in kept]
        self.crops = torch.from_numpy(crops[kept])
        self.source_index = torch.from_numpy(kept)
        self.boxes = torch.tensor(np.array([e.box for e in self.entries]).reshape(-1, 4))
        self.is_face = torch.tensor([e.is_face for e in self.entries], dtype=torch.bool)
        s = self.settings.cache_size
        points = np.zeros((len(self.entries), NUM_POINTS, 2))
        for i, entry in enumerate(self.entries):
            if entry.is_face:
                region = self.settings.region(entry.box)
                points[i] = to_crop(entry.points + entry.box[:2], region, (s, s))
        self.points = torch.tensor(points, dtype=torch.float32)
        if not self.entries:
            raise DataError(f"no usable crops ({self.report.skipped} skipped)")

    def _load(self, entries, cache_dir, workers, progress):
        path = None
        if cache_dir:
            path = Path(cache_dir) / f"crops-{cache_key(entries, self.settings)}.npz"
            if path.is_file():
                try:
                    with np.load(path) as stored:
                        return stored["crops"], stored["kept"]
                except (OSError, ValueError, KeyError):
                    log.warning("%s: unreadable crop cache, rebuilding it", path)
        crops, kept = cut_crops(entries, self.settings, workers, self.report, progress)
        if path and len(kept) == len(entries):
            store_crops(path, crops, kept)
        return crops, kept

    @property
    def stage(self) -> int:
        return 1 if bool(self.is_face.all()) else 3

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        batch = self.collate(torch.tensor([index]))
        return {key: value[0] for key, value in batch.items()}

    def collate(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        # index_select copies whole rows; crops[indices] went element by element, 30x slower.
        image = self.crops.index_select(0, indices).float()
        points = self.points[indices]
        if self.pipeline is not None:
            image, points = self.pipeline(image, points, generator)
        elif self.settings.margin:
            offset = (self.settings.cache_size - self.settings.size) // 2
            image = image[..., offset:offset + self.settings.size, offset:offset + self.settings.size]
            points = points - offset
        image = normalize_images(image, self.normalize)
        is_face = self.is_face[indices]
        points = torch.where(is_face[:, None, None], points, torch.zeros_like(points))
        batch = {"image": image.contiguous(), "points": points.float(), "is_face": is_face,
                 "box": self.boxes[indices], "index": indices}
        if self.pin_memory:
            batch = {key: value.pin_memory() for key, value in batch.items()}
        return batch

    def batches(self, batch_size: int, shuffle: bool = False, generator=None,
                rank: int = 0, world_size: int = 1):
        """Yield batched samples; with ``world_size`` > 1 each rank gets its own shard."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        if world_size > 1:
            # Pad so every rank runs the same number of steps, as DistributedSampler does.
            per_rank = -(-n // world_size)
            order = torch.cat([order, order[: per_rank * world_size - n]])[rank::world_size]
        for start in range(0, len(order), batch_size):
            yield self.collate(order[start:start + batch_size], generator)

    def steps(self, batch_size: int, world_size: int = 1) -> int:
        per_rank = -(-len(self) // world_size)
        return -(-per_rank // batch_size)


def normalize_images(image: torch.Tensor, per_image: bool) -> torch.Tensor:
    """[B, C, H, W] in [0, 255] -> net input: per-image zero mean and unit variance, or [0, 1]."""
    if per_image:
        # Two passes by hand: with torch.std's reduction this took 8x as long.
        flat = image.flatten(1)
        centred = flat - flat.mean(1, keepdim=True)
        std = torch.linalg.vector_norm(centred, dim=1, keepdim=True) / math.sqrt(flat.shape[1] - 1)
        return (centred / (std + 1e-6)).reshape(image.shape)
    return image / 255.0


def check_list_stage(data: LandmarkList, wants_classifier: bool) -> None:
    """Refuse a list whose kind does not match the net's heads."""
    if data.non_faces and not wants_classifier:
        raise UsageError(f"{data.path}: list has {data.non_faces} non-face lines (stage 3) but the "
                         "net has no face/non-face branch; add --classify or use a stage-1 list")
    if wants_classifier and not data.non_faces:
        raise UsageError(f"{data.path}: the net has a face/non-face branch but the list has no "
                         "non-face lines; build one with python -m landmarks.data --negatives K")


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m landmarks.data",
        description="Build train/test lists from folders of images with a label.txt each, "
                    "and draw a verification picture.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="folder holding I/, II/, ... each with a label.txt")
    parser.add_argument("--folders", nargs="+", default=None,
                        help="sub-folders to read (default: each one that holds a label.txt)")
    parser.add_argument("--out-dir", type=Path, default=Path("lists"),
                        help="where train.txt and test.txt are written")
    parser.add_argument("--test-ratio", type=float, default=0.1,
                        help="share of images (not faces) that go to test.txt, 0 to 1")
    parser.add_argument("--seed", type=int, default=0, help="fixes the split")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line or image")
    parser.add_argument("--negatives", type=int, default=0,
                        help="non-face crops per face for stage-3 lists (0: stage-1 lists)")
    parser.add_argument("--neg-iou", type=float, default=0.3,
                        help="a non-face crop has IoU below this with every face")
    parser.add_argument("--expand", type=float, default=EXPAND_RATIO,
                        help="box expansion on every side, as a share of its width and height")
    parser.add_argument("--verify", type=int, default=16, metavar="N",
                        help="draw N crops of train.txt with their points to <out-dir>/verify.png (0: none)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def job():
        summary = build_lists(args.data_dir, args.out_dir, folders=args.folders,
                              test_ratio=args.test_ratio, seed=args.seed, strict=args.strict,
                              negatives=args.negatives, neg_iou=args.neg_iou, ratio=args.expand)
        print(f"{summary['summary']}; {summary['images']} images -> "
              f"{args.out_dir / 'train.txt'} ({summary['train_lines']} lines, "
              f"{summary['train_non_faces']} non-faces), {args.out_dir / 'test.txt'} "
              f"({summary['test_lines']} lines, {summary['test_non_faces']} non-faces)")
        if args.verify and summary["train_lines"]:
            entries = read_list(args.out_dir / "train.txt").entries
            print(f"verification picture: {verification_picture(entries, args.verify, args.out_dir / 'verify.png', args.seed)}")
        return 0

    return run_cli(job, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
