"""A picture to check lists by eye: crops with their numbered points and the scheme's lines."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..draw import RED, draw_points
from ..errors import DataError
from ..files import Outputs
from ..geometry import to_crop
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
