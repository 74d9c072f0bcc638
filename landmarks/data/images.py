"""Loading images of any common kind and cutting crops out of them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from ..geometry import affine_crop_bounds, snap_box_outward

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def image_size(path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty")
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None


def load_image(path, channels: int = 3, upright: bool = False) -> np.ndarray:
    """Decode an image to uint8 [H, W, channels]: 1 = grayscale, 3 = RGB.

    Grayscale, palette, 4-channel and 16-bit images are converted; truncated
    or non-image files raise DataError naming the file. Pixels are decoded to RGB
    first, so a picture read here and the same picture given as an RGB array
    (:func:`to_channels`) give the same net input.

    ``upright``: turn the picture as its EXIF orientation says, as a viewer shows it (a
    phone's photo is often stored on its side). Annotated data is read as stored, the pixels
    its coordinates were given in.
    """
    path = Path(path)
    image_size(path)
    try:
        with Image.open(path) as image:
            image.load()
            if upright:
                image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                array = np.asarray(image, dtype=np.float64)
                top = array.max() if array.max() > 255 else 255.0
                image = Image.fromarray((array * (255.0 / max(top, 1.0))).astype(np.uint8))
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path}: cannot decode image ({error})") from None
    return to_channels(rgb, channels)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, 1 | 3 | 4] (RGB order) -> [H, W, channels]; gray as PIL's "L" makes it."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise DataError(f"expected a uint8 picture, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DataError(f"expected a picture of shape [H, W] or [H, W, 1|3|4], got {list(image.shape)}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if channels == 3:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image)
    if image.shape[2] == 1:
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"), dtype=np.uint8)[:, :, None]


def crop_resize(image: np.ndarray, region, width: int, height: int) -> np.ndarray:
    """Cut ``region`` (x1, y1, x2, y2; may reach outside the image, filled with 0)
    out of ``image`` [H, W, C] and resize it to ``width`` x ``height``.

    Whole-pixel regions are a slice and one area resize; fractional regions get
    an area resize to about the right scale, then a sub-pixel affine warp.
    """
    region = np.asarray(region, dtype=np.float64)
    outer = snap_box_outward(region).astype(int)
    h, w = image.shape[:2]
    patch = np.zeros((outer[3] - outer[1], outer[2] - outer[0], image.shape[2]), np.uint8)
    sx1, sy1 = max(outer[0], 0), max(outer[1], 0)
    sx2, sy2 = min(outer[2], w), min(outer[3], h)
    if sx2 > sx1 and sy2 > sy1:
        patch[sy1 - outer[1]:sy2 - outer[1], sx1 - outer[0]:sx2 - outer[0]] = image[sy1:sy2, sx1:sx2]
    if np.allclose(region, outer):
        resized = cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA)
        return resized.reshape(height, width, image.shape[2])
    scale = np.array([width, height]) / (region[2:] - region[:2])
    # Area-resize first so the warp below does not alias when shrinking.
    pre = np.maximum(np.round(np.array(patch.shape[1::-1]) * np.minimum(scale, 1.0)), 1).astype(int)
    patch = cv2.resize(patch, tuple(int(v) for v in pre), interpolation=cv2.INTER_AREA)
    patch = patch.reshape(pre[1], pre[0], image.shape[2])
    pre_scale = pre / (outer[2:] - outer[:2])
    # Map patch pixels to output pixels: out = (x / pre_scale + outer - region) * scale.
    factor = scale / pre_scale
    offset = (outer[:2] - region[:2]) * scale
    matrix = np.array([[factor[0], 0, offset[0]], [0, factor[1], offset[1]]])
    # warpAffine works on pixel centres; shift by half a pixel either side.
    matrix[:, 2] += 0.5 * factor - 0.5
    warped = cv2.warpAffine(patch, matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.reshape(height, width, image.shape[2])


def warp_crop(image: np.ndarray, matrix, width: int, height: int) -> np.ndarray:
    """The ``width`` x ``height`` crop that a [2, 3] affine ``matrix`` (picture pixels to crop
    pixels, any rotation) cuts from ``image`` [H, W, C]; outside the picture is 0.

    When the crop shrinks the picture, the part it covers is area-resized first so that the
    bilinear warp does not alias, as in ``crop_resize``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    bounds = affine_crop_bounds(matrix, width, height)
    h, w = image.shape[:2]
    x1, y1 = np.clip(np.floor(bounds[:2]).astype(int), 0, [w, h])
    x2, y2 = np.clip(np.ceil(bounds[2:]).astype(int), 0, [w, h])
    if x2 <= x1 or y2 <= y1:
        return np.zeros((height, width, image.shape[2]), np.uint8)
    patch = image[y1:y2, x1:x2]
    shrink = min(1.0, float(np.sqrt(abs(np.linalg.det(matrix[:, :2])))))
    # Crop pixels from patch pixels: out = matrix @ (p / shrink + (x1, y1)).
    local = np.hstack([matrix[:, :2] / shrink, (matrix[:, :2] @ np.array([x1, y1]) + matrix[:, 2])[:, None]])
    if shrink < 1.0:
        size = (max(int(round((x2 - x1) * shrink)), 1), max(int(round((y2 - y1) * shrink)), 1))
        local[:, :2] *= np.array([(x2 - x1) / size[0], (y2 - y1) / size[1]]) * shrink
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], image.shape[2])
    # warpAffine works on pixel centres; shift by half a pixel either side.
    local[:, 2] += local[:, :2] @ np.array([0.5, 0.5]) - 0.5
    warped = cv2.warpAffine(patch, local, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.reshape(height, width, image.shape[2])


def list_images(folder) -> list[Path]:
    """Image files in ``folder`` (by suffix), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
