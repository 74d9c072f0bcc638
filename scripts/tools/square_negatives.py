"""Non-face crops sampled another way than the list builder does, to check that the face branch
holds on non-faces it never sampled itself: squares of 0.9-2.4x a face's size, anywhere in the
picture, with IoU < 0.3 between the square itself (the crop the model sees, not expanded) and
every face box. Such a square may hold a whole face that fills too little of it.

Writes a stage-3 list of non-faces (kind ``square``) for ``--phase test``:

    python scripts/tools/square_negatives.py --pictures lists/split/test_pictures.txt --out lists/split/square.txt
    python -m landmarks.detector --phase test --model stage3 --test-list lists/split/square.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from landmarks.data.images import image_size
from landmarks.data.labels import ListEntry, read_picture_list, write_list
from landmarks.cli import run_cli
from landmarks.files import Outputs
from landmarks.geometry import box_scale, iou, snap_box_outward


def square_negatives(face_boxes: np.ndarray, width: int, height: int, per_face: int, max_iou: float,
                     rng: np.random.Generator, scales=(0.9, 2.4), tries: int = 100) -> list[np.ndarray]:
    """Up to ``per_face`` squares per face of ``scales`` times that face's size, IoU < ``max_iou``
    with every face; whole pixels."""
    found = []
    for face in range(len(face_boxes)):
        for _ in range(per_face):
            for _ in range(tries):
                side = box_scale(face_boxes[face]) * rng.uniform(*scales)
                if side >= min(width, height):
                    continue
                x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
                square = snap_box_outward(np.array([x, y, x + side, y + side]))
                if iou(square, face_boxes).max() < max_iou:
                    found.append(square)
                    break
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, required=True, help="picture list (every face of each picture)")
    parser.add_argument("--out", type=Path, required=True, help="the stage-3 list to write")
    parser.add_argument("--per-face", type=int, default=2, help="squares per face")
    parser.add_argument("--max-iou", type=float, default=0.3, help="IoU below which a square is a non-face")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return run_cli(lambda: write_squares(args))


def write_squares(args) -> int:
    rng = np.random.default_rng(args.seed)
    pictures, _ = read_picture_list(args.pictures)
    outputs = Outputs()
    outputs.reads("--pictures", args.pictures)
    outputs.check("--out", args.out)
    entries = []
    for picture in pictures:
        width, height = image_size(picture.image)
        for square in square_negatives(picture.boxes, width, height, args.per_face, args.max_iou, rng):
            entries.append(ListEntry(picture.image, square, None, attributes={"negative": "square"}))
    write_list(args.out, entries, labelled=True)
    print(f"{args.out}: {len(entries)} non-face squares from {len(pictures)} pictures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
