"""Checking lists before training: a picture of crops with their numbered points and the
scheme's lines, and the points that look wrong (a left-right swap, a point far from where the
face's other points put it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..draw import RED, draw_points
from ..errors import DataError
from ..files import Outputs
from ..geometry import affine_points, similarity_transform, to_crop
from .images import crop_resize, load_image
from .labels import ListEntry


def verification_picture(entries: list[ListEntry], count: int, out_png, seed: int = 0,
                         size: int = 224, columns: int = 4, lines=(), outputs: Outputs | None = None) -> Path:
    """A grid of ``count`` crops from a list with their numbered points, as a PNG (written
    through ``outputs``, which refuses the command's inputs)."""
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
            draw_points(crop, points, radius=3, numbers=True, lines=lines)
        else:
            kind = entry.attributes.get("negative", "")
            cv2.putText(crop, f"non-face {kind}".strip(), (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, RED, 1)
        tiles.append(crop)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)]
    ok, png = cv2.imencode(".png", np.vstack(rows))
    if not ok:
        raise DataError(f"{out_png}: cannot encode the picture")
    return (outputs or Outputs()).write_bytes("--verify", Path(out_png), png.tobytes())


def mean_shape(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    """The mean of faces [N, K, 2] after each is moved, turned and scaled onto it (Procrustes)."""
    shape = points[0] - points[0].mean(0)
    for _ in range(rounds):
        shape = shape / max(np.linalg.norm(shape), 1e-12)
        aligned = np.stack([affine_points(face, similarity_transform(face, shape)) for face in points])
        shape = aligned.mean(0)
    return shape / max(np.linalg.norm(shape), 1e-12)


def residuals(points: np.ndarray, shape: np.ndarray, used=None) -> np.ndarray:
    """[N, K] distance of each point from the mean shape after the face's best similarity, fitted
    on the points ``used`` [N, K] (default all)."""
    used = np.ones(points.shape[:2], bool) if used is None else used
    return np.stack([np.linalg.norm(affine_points(face, similarity_transform(face[keep], shape[keep])) - shape, axis=1)
                     for face, keep in zip(points, used)])


def suspicious_points(points: np.ndarray, flip_permutation, far: float = 6.0,
                      most: int = 3) -> list[tuple[int, int | None, str]]:
    """Annotation mistakes in faces [N, K, 2] -> [(face, point or None, what)].

    ``swap``: the face fits the mean shape far better with its left and right points exchanged
    (``flip_permutation``). Else a point is off when it lies ``far`` times further from where the
    face's other points put it than that point typically does (its median over the faces), and
    three times further than the face's own points do (a turned head is unusual all over); the
    face is fitted again without it, up to ``most`` points."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 5:
        return []  # too few faces for a typical shape
    shape = mean_shape(points)
    error = residuals(points, shape)
    swapped = residuals(points[:, list(flip_permutation)], shape)
    typical = np.maximum(np.median(error, axis=0), 1e-6)
    found = []
    for face in range(len(points)):
        if swapped[face].mean() < 0.5 * error[face].mean() and error[face].mean() > 3 * typical.mean():
            found.append((face, None, "swap"))
            continue
        used = np.ones(points.shape[1], bool)
        for _ in range(most):
            ratio = residuals(points[face:face + 1], shape, used[None])[0] / typical
            ratio[~used] = 0.0
            worst = int(ratio.argmax())
            if ratio[worst] <= far or ratio[worst] <= 3 * np.median(ratio[used]):
                break
            found.append((face, worst, f"{ratio[worst]:.0f}x"))
            used[worst] = False
    return found
