"""Small-face pictures from a picture list: four pictures in each, every one fitted into a
quarter of the canvas, so their faces are half as large against the picture as before.

The course's validation pictures hold few crowds; mosaics of them show how a face finder
setting does on small faces without looking at the test pictures. Writes the mosaics (JPEG)
and their picture list (every face, in mosaic pixels) to --out-dir.

    python scripts/tools/make_mosaics.py --pictures lists/tune/val_pictures.txt --out-dir lists/tune-mosaics
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from landmarks.data.images import load_image
from landmarks.data.labels import Picture, read_picture_list, write_picture_list
from landmarks.files import Outputs


def mosaic(pictures: list[Picture], images: list[np.ndarray], width: int, height: int,
           fill: int = 124) -> tuple[np.ndarray, Picture]:
    """Up to four pictures in the quarters of a ``width`` x ``height`` canvas, each shrunk to fit
    its quarter (top-left aligned) -> (RGB canvas, the faces in canvas pixels; image unset)."""
    canvas = np.full((height, width, 3), fill, np.uint8)
    boxes, points = [], []
    for k, (picture, image) in enumerate(zip(pictures, images)):
        h, w = image.shape[:2]
        scale = min(width // 2 / w, height // 2 / h)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        x0, y0 = (k % 2) * (width // 2), (k // 2) * (height // 2)
        canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        sx, sy = small.shape[1] / w, small.shape[0] / h
        boxes += [np.asarray(b) * [sx, sy, sx, sy] + [x0, y0, x0, y0] for b in picture.boxes]
        points += [np.asarray(p) * [sx, sy] + [x0, y0] for p in picture.points]
    num_points = next((p.points.shape[1] for p in pictures if len(p.points)), 0)
    return canvas, Picture(Path(), np.array(boxes).reshape(-1, 4), np.array(points).reshape(-1, num_points, 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, default=Path("lists/tune/val_pictures.txt"),
                        help="picture list to draw from (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path("lists/tune-mosaics"),
                        help="where the mosaics and mosaics.txt go (default: %(default)s)")
    parser.add_argument("--size", default="800x600", help="mosaic width x height (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="which pictures go together (default: %(default)s)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    pictures, _ = read_picture_list(args.pictures)
    outputs = Outputs()
    outputs.reads("--pictures", args.pictures, *(p.image for p in pictures))
    order = np.random.default_rng(args.seed).permutation(len(pictures))
    count = len(order) // 4
    for path in [args.out_dir / f"mosaic{m:03d}.jpg" for m in range(count)] + [args.out_dir / "mosaics.txt"]:
        outputs.check("--out-dir", path)
    made = []
    for m in range(count):
        group = [pictures[i] for i in order[4 * m:4 * m + 4]]
        canvas, faces = mosaic(group, [load_image(p.image, 3) for p in group], width, height)
        path = args.out_dir / f"mosaic{m:03d}.jpg"
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        outputs.write_bytes("--out-dir", path, jpeg.tobytes())
        faces.image = path
        made.append(faces)
    write_picture_list(args.out_dir / "mosaics.txt", made)
    print(f"{args.out_dir / 'mosaics.txt'}: {len(made)} mosaics of {width}x{height}, "
          f"{sum(len(p.boxes) for p in made)} faces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
