"""Whole pictures with their face boxes, for training and testing a face detector.

Each picture is decoded once, shrunk so its longer side is at most ``keep_side`` and kept
in memory. Training batches are square crops of ``size`` pixels at random scales and
places, mirrored at random and with photometric changes; test batches show each whole
picture as the detector sees it in use: longer side ``size``, padded at right and bottom.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..geometry import affine_points, box_centre, box_size
from .dataset import checked_weights, draw_order
from .images import image_size, to_channels
from .labels import Picture, Report

# RGB mean and spread the detector's input is normalised with (pixels / 255).
PICTURE_MEAN = (0.485, 0.456, 0.406)
PICTURE_STD = (0.229, 0.224, 0.225)
PADDING_COLOUR = tuple(round(255 * v) for v in PICTURE_MEAN)  # about zero once normalised


def decode_shrunk(path, longest: int) -> np.ndarray:
    """An RGB picture with its longer side at most ``longest``; JPEGs are decoded at a reduced
    scale directly (PIL's draft mode), which is several times faster for large pictures."""
    image_size(path)
    try:
        with Image.open(path) as image:
            image.draft("RGB", (longest, longest))
            image.load()
            rgb = to_channels(np.asarray(image.convert("RGB"), dtype=np.uint8), 3)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path}: cannot decode image ({error})") from None
    return shrink(rgb, longest)


def shrink(image: np.ndarray, longest: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _picture_table() -> np.ndarray:
    """Each byte value's normalised value per channel, [1, 256, 3] float32, by the same float32
    steps as normalising each pixel: (value / 255 - mean) / std."""
    values = torch.arange(256).float().div_(255.0).view(256, 1)
    return ((values - torch.tensor(PICTURE_MEAN)) / torch.tensor(PICTURE_STD)).numpy().reshape(1, 256, 3)


_PICTURE_TABLE = _picture_table()


def normalise_pictures(batch: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] RGB -> float [B, 3, H, W] (channels-last memory), normalised."""
    # A table lookup (OpenCV's LUT) instead of torch arithmetic on every pixel: the same values
    # to the bit, 0.12 ms less work a 448 x 352 picture, and the whole-picture pipeline 1.6 ms
    # faster at the median of paired runs (docs/performance.md).
    b, h, w, _ = batch.shape
    pixels = np.ascontiguousarray(batch, dtype=np.uint8).reshape(b * h, w, 3)
    return torch.from_numpy(cv2.LUT(pixels, _PICTURE_TABLE).reshape(b, h, w, 3)).permute(0, 3, 1, 2)


def fit_picture(image: np.ndarray, size: int, multiple: int = 32) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``size`` and pad right and bottom (with the mean colour) to a
    multiple of ``multiple`` -> (uint8 [H', W', 3], scale from the picture to the result)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Bilinear, as the training crops are warped (OpenCV's warpAffine has no area mode); 7x
    # faster than area resizing, and no worse on the validation pictures (docs/face-detector.md).
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = -(-nh // multiple) * multiple, -(-nw // multiple) * multiple
    # One pass that copies and pads: filling a numpy canvas with the colour took 1.2 ms a look, this 0.03.
    canvas = cv2.copyMakeBorder(resized.reshape(nh, nw, 3), 0, ph - nh, 0, pw - nw, cv2.BORDER_CONSTANT,
                                value=PADDING_COLOUR)
    return canvas.reshape(ph, pw, 3), scale


# How far training crops zoom a picture against the picture fitted to the crop (--picture-zoom
# moves the upper end).
ZOOM_RANGE = (0.5, 2.0)


@dataclass
class PictureAugment:
    """How training crops of whole pictures vary."""

    zoom: tuple[float, float] = ZOOM_RANGE
    flip: float = 0.5
    rotation: float = 0.0  # largest turn in degrees (either way) of a turned crop
    rotation_share: float = 0.5  # crops turned; the rest stay upright, as most faces in pictures are
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    gray: float = 0.1  # probability of a grayscale picture


class PictureDataset:
    """Pictures and face boxes in memory; :meth:`batches` yields detector batches.

    A batch: ``image`` float [B, 3, S, S], ``boxes`` a list of [F, 4] float tensors in
    pixels of the batch image, ``scale`` [B] (batch pixels per picture pixel), ``index``.
    """

    def __init__(self, pictures: list[Picture], *, size: int = 320, augment: PictureAugment | None = None,
                 keep_side: int | None = None, workers: int | None = None, strict: bool = False,
                 progress: bool = False):
        self.size = size
        self.augment = augment
        self.keep_side = keep_side or int(size * (augment.zoom[1] if augment else 1.0))
        self.report = Report(strict=strict)
        self.draw_weights: torch.Tensor | None = None  # set_draw_weights: training draws by them
        images, kept = self._decode(pictures, workers or min(8, os.cpu_count() or 1), progress)
        self.pictures = [pictures[i] for i in kept]
        self.images = [images[i] for i in kept]
        if not self.pictures:
            raise DataError(f"no usable pictures ({self.report.skipped} skipped)")
        # Face boxes in pixels of the stored (shrunk) pictures.
        self.boxes = []
        for picture, image in zip(self.pictures, self.images):
            width, height = image_size(picture.image)
            self.boxes.append(picture.boxes * (image.shape[1] / width))

    def _decode(self, pictures, workers, progress):
        def work(picture):
            try:
                return decode_shrunk(picture.image, self.keep_side), None
            except DataError as error:
                return None, str(error)

        images, kept = [], []
        with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
            results = pool.map(work, pictures)
            if progress:
                from tqdm import tqdm
                results = tqdm(results, total=len(pictures), desc="decoding", unit="img", leave=False, disable=None)
            for i, (image, problem) in enumerate(results):
                images.append(image)
                if problem:
                    self.report.problem(pictures[i].sources[0] if pictures[i].sources else str(pictures[i].image),
                                        problem)
                else:
                    kept.append(i)
        return images, kept

    def __len__(self) -> int:
        return len(self.pictures)

    def set_draw_weights(self, weights) -> None:
        """[N] weights: shuffled batches draw each epoch's pictures in proportion to them."""
        self.draw_weights = checked_weights(weights, len(self))

    def steps(self, batch_size: int, world_size: int = 1) -> int:
        per_rank = -(-len(self) // world_size)
        return -(-per_rank // batch_size)

    def batches(self, batch_size: int, shuffle: bool = False, generator=None, rank: int = 0, world_size: int = 1):
        n = len(self)
        order = draw_order(n, shuffle, self.draw_weights, generator)
        if world_size > 1:
            per_rank = -(-n // world_size)
            order = torch.cat([order, order[: per_rank * world_size - n]])[rank::world_size]
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
        rng = np.random.default_rng(seed)
        for start in range(0, len(order), batch_size):
            yield self.collate(order[start:start + batch_size], rng)

    def collate(self, indices: torch.Tensor, rng: np.random.Generator) -> dict:
        images, boxes, scales = [], [], []
        for i in indices.tolist():
            image, box, scale = (self.augmented(i, rng) if self.augment else self.whole(i))
            images.append(image)
            boxes.append(torch.from_numpy(box).float())
            scales.append(scale)
        return {"image": normalise_pictures(np.stack(images)), "boxes": boxes,
                "scale": torch.tensor(scales, dtype=torch.float64), "index": indices}

    def whole(self, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The picture as the detector sees it in use, padded to a square of ``size``."""
        canvas, scale = fit_picture(self.images[i], self.size, self.size)
        stored_to_picture = self.images[i].shape[1] / image_size(self.pictures[i].image)[0]
        return canvas, self.boxes[i] * scale, scale * stored_to_picture

    def augmented(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        """A random square crop: zoom, place, mirror, turn, colour. A turned face keeps its box's
        size and the box follows its centre: framed as the annotations frame an upright face."""
        a, image, boxes, s = self.augment, self.images[i], self.boxes[i], self.size
        h, w = image.shape[:2]
        zoom = math.exp(rng.uniform(math.log(a.zoom[0]), math.log(a.zoom[1])))
        scale = s / max(h, w) * zoom
        sw, sh = w * scale, h * scale
        # Where the scaled picture's top-left corner lands in the crop: anywhere it still overlaps.
        x0 = rng.uniform(min(0.0, s - sw), max(0.0, s - sw))
        y0 = rng.uniform(min(0.0, s - sh), max(0.0, s - sh))
        flip = rng.random() < a.flip
        matrix = np.array([[scale, 0, x0], [0, scale, y0]])
        if flip:
            matrix = np.array([[-scale, 0, s - x0], [0, scale, y0]])
        moved = boxes * scale + np.array([x0, y0, x0, y0])
        if flip:
            moved = np.stack([s - moved[:, 2], moved[:, 1], s - moved[:, 0], moved[:, 3]], 1)
        if a.rotation and rng.random() < a.rotation_share:
            turn = cv2.getRotationMatrix2D((s / 2, s / 2), rng.uniform(-a.rotation, a.rotation), 1.0)
            matrix = np.concatenate([turn[:, :2] @ matrix[:, :2], turn[:, :2] @ matrix[:, 2:] + turn[:, 2:]], 1)
            half = box_size(moved) / 2
            centres = affine_points(box_centre(moved), turn)
            moved = np.concatenate([centres - half, centres + half], 1)
        crop = cv2.warpAffine(image, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=PADDING_COLOUR)
        centres = box_centre(moved)
        inside = (centres >= 0).all(1) & (centres < s).all(1)
        return self.colour(crop, rng), moved[inside].reshape(-1, 4), scale

    def colour(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = self.augment
        pixels = crop.astype(np.float32)
        if rng.random() < a.gray:
            pixels[:] = pixels.mean(2, keepdims=True)
        elif a.saturation:
            grey = pixels.mean(2, keepdims=True)
            pixels = grey + (pixels - grey) * rng.uniform(1 - a.saturation, 1 + a.saturation)
        if a.contrast:
            mean = pixels.mean()
            pixels = (pixels - mean) * rng.uniform(1 - a.contrast, 1 + a.contrast) + mean
        if a.brightness:
            pixels = pixels * rng.uniform(1 - a.brightness, 1 + a.brightness)
        return np.clip(pixels, 0, 255).astype(np.uint8)
