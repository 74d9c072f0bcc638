"""The dataset that feeds training and testing: crops of a list, cut once and kept in memory."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..files import atomic_write
from ..geometry import expand_box, to_crop
from .augment import AugmentSettings, build_augmentation
from .images import crop_resize, load_image
from .labels import LandmarkList, ListEntry, Report

log = logging.getLogger(__name__)

# Crops for augmented training are cut this much larger (share of the crop, each side)
# so that rotation, shift and zoom-out find real pixels, not black borders.
AUGMENT_MARGIN = 0.125
CACHE_VERSION = 2

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
    when asked), ``points`` [K, 2] in pixels of the resized crop (zeros for a
    non-face), ``is_face`` bool, ``box`` [4] the crop box in image pixels,
    ``index`` the entry's position in the list and, when ``attributes`` are named,
    ``attributes`` long [A] (their class indices, -1 where a line has none).
    :meth:`batches` yields the same dicts batched, augmented as whole batches.
    """

    def __init__(self, entries: list[ListEntry], *, num_points: int | None = None, size: int = 112,
                 channels: int = 1, normalize: bool = True, augment: AugmentSettings | None = None,
                 flip_permutation: tuple[int, ...] | None = None, attributes: tuple[str, ...] = (),
                 cache_dir: Path | None = None, workers: int | None = None,
                 strict: bool = False, progress: bool = False, pin_memory: bool = False):
        self.pin_memory = pin_memory  # page-locked batches copy to a GPU without a staging copy
        self.augment = augment if augment and augment.enabled else None
        margin = AUGMENT_MARGIN if self.augment and self.augment.geometric else 0.0
        self.settings = CropSettings(size, channels, margin)
        self.normalize = normalize
        if num_points is None:
            num_points = next((len(e.points) for e in entries if e.is_face), 0)
        self.num_points = num_points
        if self.augment and self.augment.flip and flip_permutation is None:
            raise UsageError("flip augmentation needs the scheme's flip permutation")
        self.flip_permutation = flip_permutation
        self.teacher: torch.Tensor | None = None
        self.pipeline = self._pipeline()
        self.draw_weights: torch.Tensor | None = None  # set_draw_weights: training draws by them
        self.report = Report(strict=strict)
        crops, kept = self._load(entries, cache_dir, workers or min(8, os.cpu_count() or 1), progress)
        self.entries = [entries[i] for i in kept]
        if not self.entries:
            raise DataError(f"no usable crops ({self.report.skipped} skipped)")
        self.crops = torch.from_numpy(crops[kept])
        self.source_index = torch.from_numpy(kept)
        self.boxes = torch.tensor(np.array([e.box for e in self.entries]).reshape(-1, 4))
        self.is_face = torch.tensor([e.is_face for e in self.entries], dtype=torch.bool)
        s = self.settings.cache_size
        points = np.zeros((len(self.entries), num_points, 2))
        for i, entry in enumerate(self.entries):
            if entry.is_face:
                if len(entry.points) != num_points:
                    raise DataError(f"{entry.source}: has {len(entry.points)} points, expected {num_points}")
                region = self.settings.region(entry.box)
                points[i] = to_crop(entry.points + entry.box[:2], region, (s, s))
        self.points = torch.tensor(points, dtype=torch.float32)
        self.attribute_names = tuple(attributes)
        self.attributes = torch.tensor([[attribute_class(e, name) for name in attributes] for e in self.entries],
                                       dtype=torch.long).reshape(len(self.entries), len(attributes))

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

    def set_teacher(self, shares: torch.Tensor) -> None:
        """A teacher's points for every sample, [N, K, 2] as shares of the (un-augmented) crop:
        batches then carry ``teacher`` points, moved by the same augmentation as the true ones."""
        offset = (self.settings.cache_size - self.settings.size) / 2
        self.teacher = shares.float() * self.settings.size + offset
        self.pipeline = self._pipeline()

    def set_augment(self, augment: AugmentSettings) -> None:
        """Augment from now on by ``augment``, which must keep geometry on or off as the crops were cut."""
        if augment.geometric != (self.settings.margin > 0):
            raise ValueError("the crops were cut for augmentation with" + ("" if self.settings.margin else "out")
                             + " geometry; the new settings must keep it so")
        self.augment = augment if augment.enabled else None
        self.pipeline = self._pipeline()

    def _pipeline(self):
        if not self.augment:
            return None
        permutation = self.flip_permutation
        if self.teacher is not None and permutation is not None:
            # Both point sets go through the flip together: the permutation covers 2K points.
            k = self.num_points
            permutation = tuple(permutation) + tuple(p + k for p in permutation)
        return build_augmentation(self.augment, self.settings.size, permutation)

    def set_draw_weights(self, weights) -> None:
        """[N] weights: shuffled batches then draw each epoch's samples with replacement in
        proportion to them (``balanced_weights``), rather than each sample once."""
        self.draw_weights = checked_weights(weights, len(self))

    def collate(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        # index_select copies whole rows; crops[indices] went element by element, 30x slower.
        image = self.crops.index_select(0, indices).float()
        points = self.points[indices]
        if self.teacher is not None:
            points = torch.cat([points, self.teacher[indices]], 1)
        if self.pipeline is not None:
            image, points = self.pipeline(image, points, generator)
        elif self.settings.margin:
            offset = (self.settings.cache_size - self.settings.size) // 2
            image = image[..., offset:offset + self.settings.size, offset:offset + self.settings.size]
            points = points - offset
        image = normalize_images(image, self.normalize)
        is_face = self.is_face[indices]
        points = torch.where(is_face[:, None, None], points, torch.zeros_like(points))
        teacher = None
        if self.teacher is not None:
            points, teacher = points[:, :self.num_points], points[:, self.num_points:]
        batch = {"image": image.contiguous(), "points": points.float(), "is_face": is_face,
                 "box": self.boxes[indices], "index": indices}
        if teacher is not None:
            batch["teacher"] = teacher.float()
        if self.attribute_names:
            batch["attributes"] = self.attributes[indices]
        if self.pin_memory:
            batch = {key: value.pin_memory() for key, value in batch.items()}
        return batch

    def batches(self, batch_size: int, shuffle: bool = False, generator=None,
                rank: int = 0, world_size: int = 1):
        """Yield batched samples; with ``world_size`` > 1 each rank gets its own shard."""
        n = len(self)
        order = draw_order(n, shuffle, self.draw_weights, generator)
        if world_size > 1:
            # Pad so every rank runs the same number of steps, as DistributedSampler does.
            per_rank = -(-n // world_size)
            order = torch.cat([order, order[: per_rank * world_size - n]])[rank::world_size]
        for start in range(0, len(order), batch_size):
            yield self.collate(order[start:start + batch_size], generator)

    def steps(self, batch_size: int, world_size: int = 1) -> int:
        per_rank = -(-len(self) // world_size)
        return -(-per_rank // batch_size)


def checked_weights(weights, n: int) -> torch.Tensor:
    weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if weights.shape != (n,) or not bool((weights >= 0).all()) or not float(weights.sum()) > 0:
        raise UsageError(f"draw weights: need {n} weights >= 0, not all 0")
    return weights


def draw_order(n: int, shuffle: bool, weights: torch.Tensor | None, generator=None) -> torch.Tensor:
    """An epoch's sample order: 0..n-1 in turn, shuffled, or where ``weights`` are set n draws
    with replacement in proportion to them."""
    if not shuffle:
        return torch.arange(n)
    if weights is not None:
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


def balanced_weights(groups, power: float) -> np.ndarray:
    """[N] group index per sample (-1: in no group) -> [N] draw weights: a sample of a group
    holding the share f of the grouped samples weighs f ** -power (0: all alike, 1: each group
    drawn as often), scaled so that the grouped samples keep their total; ungrouped weigh 1."""
    groups = np.asarray(groups)
    weights = np.ones(len(groups))
    grouped = groups >= 0
    if not grouped.any() or power == 0:
        return weights
    labels, counts = np.unique(groups[grouped], return_counts=True)
    share = dict(zip(labels.tolist(), (counts / counts.sum()).tolist()))
    raw = np.array([share[g] ** -power for g in groups[grouped].tolist()])
    weights[grouped] = raw * grouped.sum() / raw.sum()
    return weights


def normalize_images(image: torch.Tensor, per_image: bool) -> torch.Tensor:
    """[B, C, H, W] in [0, 255] -> net input: per-image zero mean and unit variance, or [0, 1]."""
    if per_image:
        # Two passes by hand: with torch.std's reduction this took 8x as long.
        flat = image.flatten(1)
        centred = flat - flat.mean(1, keepdim=True)
        std = torch.linalg.vector_norm(centred, dim=1, keepdim=True) / math.sqrt(flat.shape[1] - 1)
        return (centred / (std + 1e-6)).reshape(image.shape)
    return image / 255.0


def attribute_class(entry: ListEntry, name: str) -> int:
    """The class index of attribute ``name`` on a list line; -1 where the line has none."""
    value = entry.attributes.get(name)
    if value is None:
        return -1
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{entry.source}: attribute {name}={value} is not a class number") from None


def check_list_stage(data: LandmarkList, wants_classifier: bool) -> None:
    """Refuse a list whose kind does not match the net's heads."""
    if data.non_faces and not wants_classifier:
        raise UsageError(f"{data.path}: list has {data.non_faces} non-face lines (stage 3) but the "
                         "net has no face/non-face branch; add --classify or use a stage-1 list")
    if wants_classifier and not data.non_faces:
        raise UsageError(f"{data.path}: the net has a face/non-face branch but the list has no "
                         "non-face lines; build one with python -m landmarks.data --negatives K")


