"""Training augmentation as batched tensor steps ``(image, points) -> (image, points)``.

image: float [B, C, H, W]; points: [B, K, 2] in pixels of that image (pixel i
covers [i, i + 1)). Each step draws its randomness from the ``generator`` it
is given, so a seeded run sees the same augmentations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F



def mirror_points(points: torch.Tensor, width: float, permutation) -> torch.Tensor:
    """[..., K, 2] points of an image ``width`` wide -> the same points in its mirror image,
    re-ordered by the scheme's flip ``permutation`` so each left point becomes its right one."""
    if points.shape[-2] != len(permutation):
        raise ValueError(f"flip permutation has {len(permutation)} points, the points {points.shape[-2]}")
    swapped = points[..., list(permutation), :]
    return torch.stack([width - swapped[..., 0], swapped[..., 1]], -1)


def hflip(image: torch.Tensor, points: torch.Tensor, permutation):
    """Mirror every sample, swapping left and right points."""
    return image.flip(-1), mirror_points(points, image.shape[-1], permutation)


class RandomHorizontalFlip:
    def __init__(self, permutation, p: float = 0.5):
        self.permutation, self.p = tuple(permutation), p

    def __call__(self, image, points, generator=None):
        chosen = torch.rand(image.shape[0], generator=generator) < self.p
        if chosen.any():
            image, points = image.clone(), points.clone()
            image[chosen], points[chosen] = hflip(image[chosen], points[chosen], self.permutation)
        return image, points


def affine_warp(image: torch.Tensor, points: torch.Tensor, matrix: torch.Tensor, out_size: int):
    """Resample ``image`` so output pixel p shows input point ``matrix @ [p, 1]``.

    matrix: [B, 2, 3] mapping output pixel coordinates to input ones, or [B, 3, 3] for a
    projective map (the input point is then divided by its third coordinate).
    """
    if matrix.shape[1] == 3:
        return _projective_warp(image, points, matrix, out_size)
    _, _, h, w = image.shape
    # grid_sample reads input point (x, y) at (2x / w - 1, 2y / h - 1); fold that into the matrix.
    unit = matrix.double() * torch.tensor([[2 / w], [2 / h]], dtype=torch.float64)
    unit[:, :, 2] -= 1
    unit = unit.to(image.dtype)[:, :, :, None, None]  # [B, 2, 3, 1, 1]
    centres = torch.arange(out_size, dtype=image.dtype) + 0.5
    # Each grid coordinate is a*x + b*y + c: broadcast a [B, 1, W] row against a [B, H, 1]
    # column (a batched matmul over every pixel took ten times as long as the resampling).
    grid = torch.stack([unit[:, i, 0] * centres + (unit[:, i, 1] * centres[:, None] + unit[:, i, 2])
                        for i in (0, 1)], -1)  # [B, H, W, 2]
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inverse = torch.linalg.inv(homogeneous(matrix).double())[:, :2].to(points.dtype)
    moved = points @ inverse[:, :, :2].transpose(1, 2) + inverse[:, None, :, 2]
    return warped, moved


def homogeneous(affine: torch.Tensor) -> torch.Tensor:
    """[B, 2, 3] affine maps as [B, 3, 3] matrices (last row 0, 0, 1), to compose and invert."""
    last = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=affine.dtype).expand(affine.shape[0], 1, 3)
    return torch.cat([affine, last], 1)


def _projective_warp(image, points, matrix, out_size):
    _, _, h, w = image.shape
    m = matrix.to(image.dtype)[:, :, :, None, None]  # [B, 3, 3, 1, 1]
    centres = torch.arange(out_size, dtype=image.dtype) + 0.5
    x, y, z = (m[:, i, 0] * centres + (m[:, i, 1] * centres[:, None] + m[:, i, 2]) for i in range(3))
    grid = torch.stack([2 * x / (z * w) - 1, 2 * y / (z * h) - 1], -1)  # [B, H, W, 2]
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inverse = torch.linalg.inv(matrix.double())
    moved = points.double() @ inverse[:, :, :2].transpose(1, 2) + inverse[:, None, :, 2]
    return warped, (moved[..., :2] / moved[..., 2:]).to(points.dtype)


class RandomAffine:
    """Rotate, scale and shift about the centre, cropping the centre ``out_size`` square.

    rotation in degrees (+-), shift as a share of ``out_size`` (+-), scale as
    (low, high) zoom factors. With all three at rest it is a centre crop. ``perspective`` tilts
    the face's plane about the crop's vertical and horizontal middle lines, as a head turned or
    nodded looks: one edge of the crop is magnified by up to 1 + perspective and the opposite
    edge shrunk to 1 - perspective.
    """

    def __init__(self, out_size: int, rotation: float = 0.0, shift: float = 0.0,
                 scale: tuple[float, float] = (1.0, 1.0), perspective: float = 0.0):
        self.out_size, self.rotation, self.shift, self.scale = out_size, rotation, shift, scale
        self.perspective = perspective

    def matrices(self, batch: int, in_size: tuple[int, int], generator=None) -> torch.Tensor:
        def uniform(low, high):
            return low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)

        angle = uniform(-self.rotation, self.rotation) * math.pi / 180
        zoom = uniform(*self.scale)
        shift = uniform(-self.shift, self.shift), uniform(-self.shift, self.shift)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        half = self.out_size / 2
        centre_x = in_size[0] / 2 - shift[0] * self.out_size
        centre_y = in_size[1] / 2 - shift[1] * self.out_size
        # input = centre + R(angle) / zoom * (output - half)
        row0 = torch.stack([cos, -sin, centre_x - cos * half + sin * half], -1)
        row1 = torch.stack([sin, cos, centre_y - sin * half - cos * half], -1)
        affine = torch.stack([row0, row1], 1)
        if not self.perspective:
            return affine.float()
        # Output point p, centred and in half-sides (u = (p - half) / half), shows the point
        # u / (1 + t . u) before the affine map: the crop's edge that t points to is magnified
        # by 1 + |t| there, the opposite edge shrunk to 1 - |t|. As a homography about the centre:
        # I + [half, half, 1] (outer) [t / half, -t . 1].
        tilt = torch.stack([uniform(-self.perspective, self.perspective),
                            uniform(-self.perspective, self.perspective)], -1)
        row = torch.cat([tilt / half, -tilt.sum(-1, keepdim=True)], -1)  # [B, 3]
        column = torch.tensor([half, half, 1.0], dtype=torch.float64)
        keystone = torch.eye(3, dtype=torch.float64) + column[None, :, None] * row[:, None, :]
        return (homogeneous(affine) @ keystone).float()

    def __call__(self, image, points, generator=None):
        matrix = self.matrices(image.shape[0], (image.shape[-1], image.shape[-2]), generator)
        return affine_warp(image, points, matrix, self.out_size)


class ColorJitter:
    """Scale brightness and contrast by random factors in [1 - amount, 1 + amount].

    Works on images in [0, 255]; points are unchanged.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0):
        self.brightness, self.contrast = brightness, contrast

    def __call__(self, image, points, generator=None):
        b = image.shape[0]
        shape = (b,) + (1,) * (image.dim() - 1)
        if self.contrast:
            factor = 1 + self.contrast * (2 * torch.rand(b, generator=generator) - 1)
            mean = image.mean(dim=tuple(range(1, image.dim())), keepdim=True)
            image = (image - mean) * factor.view(shape) + mean
        if self.brightness:
            factor = 1 + self.brightness * (2 * torch.rand(b, generator=generator) - 1)
            image = image * factor.view(shape)
        return image.clamp(0, 255), points


def random_rectangles(u: torch.Tensor, h: int, w: int, area, aspect):
    """One rectangle a sample from uniform numbers ``u`` [B, 4]: covering ``area`` (low, high)
    shares of an h x w image, at an aspect (height / width) in ``aspect`` (low, high) drawn
    log-uniform. Returns [B] tops, lefts, heights, widths."""
    size = (area[0] + (area[1] - area[0]) * u[:, 0]) * h * w
    log_aspect = math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * u[:, 1]
    ratio = torch.exp(log_aspect)
    heights = torch.sqrt(size * ratio).clamp(1, h).long()
    widths = torch.sqrt(size / ratio).clamp(1, w).long()
    tops = (u[:, 2] * (h - heights + 1)).long()
    lefts = (u[:, 3] * (w - widths + 1)).long()
    return tops, lefts, heights, widths


class RandomErasing:
    """Occlusion: with probability ``p`` a sample gets one rectangle of random noise covering
    2 to 20 % of it (aspect 0.3 to 3.3), as a hand, hair or glasses might; points stay."""

    def __init__(self, p: float = 0.5, area=(0.02, 0.2), aspect=(0.3, 3.3)):
        self.p, self.area, self.aspect = p, area, aspect

    def __call__(self, image, points, generator=None):
        b, c, h, w = image.shape
        chosen = torch.rand(b, generator=generator) < self.p
        if not chosen.any():
            return image, points
        u = torch.rand(b, 5, generator=generator)  # the fifth column, unused, keeps seeded runs as they were
        top, left, eh, ew = random_rectangles(u[:, :4], h, w, self.area, self.aspect)
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        mask = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
                & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None]) & chosen[:, None, None])
        noise = torch.rand(image.shape, generator=generator) * 255
        return torch.where(mask[:, None], noise, image), points


class RandomPatchOcclusion:
    """Occlusion by things rather than noise: with probability ``p`` a sample gets one rectangle
    (2 to 20 % of it, aspect 0.3 to 3.3) cut from anywhere in another sample of the batch, so the
    occluder has the texture of skin, hair, clothes or background; points stay."""

    def __init__(self, p: float = 0.5, area=(0.02, 0.2), aspect=(0.3, 3.3)):
        self.p, self.area, self.aspect = p, area, aspect

    def __call__(self, image, points, generator=None):
        b, _, h, w = image.shape
        chosen = torch.rand(b, generator=generator) < self.p
        u = torch.rand(b, 6, generator=generator)
        top, left, eh, ew = random_rectangles(u[:, :4], h, w, self.area, self.aspect)
        source_top = (u[:, 4] * (h - eh + 1)).long()
        source_left = (u[:, 5] * (w - ew + 1)).long()
        source = torch.randint(1, max(b, 2), (b,), generator=generator)  # an offset, so never the sample itself
        if b < 2 or not chosen.any():
            return image, points
        occluded = image.clone()
        for i in torch.nonzero(chosen).flatten().tolist():
            j = (i + int(source[i])) % b
            rh, rw = int(eh[i]), int(ew[i])
            st, sl = int(source_top[i]), int(source_left[i])
            occluded[i, :, top[i]:top[i] + rh, left[i]:left[i] + rw] = image[j, :, st:st + rh, sl:sl + rw]
        return occluded, points


class RandomLowResolution:
    """Small or blurred faces: with probability ``p`` a sample is shrunk to a random side of
    ``sizes`` pixels (area averaging) and brought back to its size (bilinear); points stay."""

    def __init__(self, p: float = 0.3, sizes=(16, 48)):
        self.p, self.sizes = p, sizes

    def __call__(self, image, points, generator=None):
        b, _, h, w = image.shape
        chosen = torch.rand(b, generator=generator) < self.p
        sides = torch.randint(self.sizes[0], self.sizes[1] + 1, (b,), generator=generator)
        if not chosen.any():
            return image, points
        image = image.clone()
        for i in torch.nonzero(chosen).flatten().tolist():
            side = int(sides[i])
            small = F.interpolate(image[i:i + 1], size=(side, side), mode="area")
            image[i:i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return image, points


class RandomEdgeCut:
    """A face at the picture's edge: its crop is clamped there, so the face sits off-centre and
    stretched. With probability ``p`` a sample loses a strip of up to ``most`` of its side on one
    side, and the rest is stretched back to its size; points move with the pixels."""

    def __init__(self, p: float = 0.3, most: float = 0.25):
        self.p, self.most = p, most

    def __call__(self, image, points, generator=None):
        b, _, h, w = image.shape
        u = torch.rand(b, 2, generator=generator, dtype=torch.float64)
        side = torch.randint(0, 4, (b,), generator=generator)  # left, right, top, bottom
        chosen = torch.rand(b, generator=generator) < self.p
        if not chosen.any():
            return image, points
        cut = self.most * u[:, 0] * chosen
        matrix = torch.zeros(b, 2, 3, dtype=torch.float64)  # output pixel -> input pixel
        across = side < 2  # a left or right strip: x is stretched
        matrix[:, 0, 0] = torch.where(across, 1 - cut, torch.ones_like(cut))
        matrix[:, 1, 1] = torch.where(across, torch.ones_like(cut), 1 - cut)
        matrix[:, 0, 2] = torch.where(side == 0, cut * w, torch.zeros_like(cut))
        matrix[:, 1, 2] = torch.where(side == 2, cut * h, torch.zeros_like(cut))
        warped, moved = affine_warp(image, points, matrix.float(), w)
        keep = ~chosen
        warped[keep], moved[keep] = image[keep], points[keep]
        return warped, moved


class Compose:
    def __init__(self, steps):
        self.steps = list(steps)

    def __call__(self, image, points, generator=None):
        for step in self.steps:
            image, points = step(image, points, generator)
        return image, points


def _setting(default: float, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class AugmentSettings:
    """What training augmentation does; all off means plain crops."""

    flip: float = _setting(0.0, "probability of a horizontal flip with left/right swap")
    rotation: float = _setting(0.0, "max rotation in degrees (a face detector run turns half its crops)")
    shift: float = _setting(0.0, "max shift as a share of the crop")
    scale: float = _setting(0.0, "max zoom change, e.g. 0.1 for 0.9-1.1")
    perspective: float = _setting(0.0, "max tilt of the face's plane, as a turned or nodded head: one edge of "
                                       "the crop magnified by up to 1 + this, the opposite shrunk to 1 - this")
    brightness: float = _setting(0.0, "max brightness change")
    contrast: float = _setting(0.0, "max contrast change")
    erase: float = _setting(0.0, "probability of an occluding rectangle of noise (random erasing)")
    occlude: float = _setting(0.0, "probability of an occluding rectangle cut from another crop of the batch "
                                   "(an object's texture rather than noise)")
    lowres: float = _setting(0.0, "probability of shrinking a crop to 16-48 px and back (small, blurred faces)")
    edge: float = _setting(0.0, "probability of cutting a strip (up to --edge-most of the crop) off one side and "
                                "stretching the rest back (a face at the picture's edge, its crop clamped)")
    edge_most: float = _setting(0.25, "the widest strip --edge cuts, as a share of the crop's side")

    @property
    def geometric(self) -> bool:
        return bool(self.rotation or self.shift or self.scale or self.perspective)

    @property
    def enabled(self) -> bool:
        return bool(self.flip or self.geometric or self.brightness or self.contrast or self.erase or self.occlude
                    or self.lowres or self.edge)

    def light(self) -> AugmentSettings:
        """These settings made closer to a test crop, for a run's last epochs (``--light-epochs``):
        no occluding, shrinking or cutting, half the rotation, shift, zoom and tilt; flip and colour
        as they are."""
        return replace(self, rotation=self.rotation / 2, shift=self.shift / 2, scale=self.scale / 2,
                       perspective=self.perspective / 2, erase=0.0, occlude=0.0, lowres=0.0, edge=0.0)


def build_augmentation(settings: AugmentSettings, out_size: int, flip_permutation=None) -> Compose:
    """The training pipeline for crops cut with a margin around the ``out_size`` crop."""
    steps = [RandomAffine(out_size, settings.rotation, settings.shift,
                          (1 - settings.scale, 1 + settings.scale), settings.perspective)]
    if settings.flip:
        steps.append(RandomHorizontalFlip(flip_permutation, settings.flip))
    if settings.brightness or settings.contrast:
        steps.append(ColorJitter(settings.brightness, settings.contrast))
    if settings.erase:
        steps.append(RandomErasing(settings.erase))
    if settings.occlude:
        steps.append(RandomPatchOcclusion(settings.occlude))
    if settings.lowres:
        steps.append(RandomLowResolution(settings.lowres))
    if settings.edge:
        steps.append(RandomEdgeCut(settings.edge, settings.edge_most))
    return Compose(steps)


# What --augment switches on; each can still be set alone.
STANDARD_AUGMENT = AugmentSettings(flip=0.5, rotation=15.0, shift=0.05, scale=0.1, brightness=0.2, contrast=0.2)
