"""Close-ups and portraits: faces that fill much of the picture, as in web photos and selfies.

The course's pictures mostly show faces at a tenth to a third of the picture's side. From each
annotated face of at least ``--min-face`` pixels, this cuts square pictures centred on the face,
the face box taking ``--fractions`` of the side (only where the square lies inside the
picture), and scales each to ``--side`` pixels. The whole-picture pipeline then runs on each
with every finder of ``--detectors``. Reported per fraction and finder: the pictures, the share
where the face is found (a predicted face with NME_box < 10 %), and the other faces reported
(other people in the square, or false faces).

    python scripts/closeup_check.py --pictures lists/split/test_pictures.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from landmarks.data.images import load_image
from landmarks.data.labels import read_picture_list
from landmarks.geometry import box_centre
from landmarks.inference.evaluate import FOUND_NME
from landmarks.inference.landmarker import Landmarker
from landmarks.metrics import match_faces


def closeup(image: np.ndarray, box: np.ndarray, fraction: float, side: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The square around ``box`` whose side the box's longer side is ``fraction`` of, scaled to
    ``side`` pixels -> (picture, affine [2, 3] from the image to it); None if it leaves the image."""
    h, w = image.shape[:2]
    extent = max(box[2] - box[0], box[3] - box[1]) / fraction
    cx, cy = box_centre(box)
    x1, y1 = cx - extent / 2, cy - extent / 2
    if x1 < 0 or y1 < 0 or x1 + extent > w or y1 + extent > h:
        return None
    scale = side / extent
    matrix = np.array([[scale, 0.0, -x1 * scale], [0.0, scale, -y1 * scale]])
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR), matrix


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, default=Path("lists/split/test_pictures.txt"),
                        help="picture list (default: %(default)s)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9],
                        help="the face box's side as a share of the picture's (default: %(default)s)")
    parser.add_argument("--side", type=int, default=640, help="side of the square pictures (default: %(default)s)")
    parser.add_argument("--min-face", type=int, default=60, help="smallest face used, pixels (default: %(default)s)")
    parser.add_argument("--model", default="stage3", help="landmark model (default: %(default)s)")
    parser.add_argument("--detectors", nargs="+", default=["default", "haar"],
                        help="face finders to compare (default: the shipped detector and haar)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    markers = {name: Landmarker(args.model, detector=name) for name in args.detectors}
    counts = {(f, name): np.zeros(3, int) for f in args.fractions for name in markers}  # pictures, found, other
    pictures, _ = read_picture_list(args.pictures)
    for picture in pictures:
        rgb = load_image(picture.image, 3)
        for box, points in zip(picture.boxes, picture.points):
            if max(box[2] - box[0], box[3] - box[1]) < args.min_face:
                continue
            for fraction in args.fractions:
                made = closeup(rgb, box, fraction, args.side)
                if made is None:
                    continue
                square, matrix = made
                truth = points @ matrix[:, :2].T + matrix[:, 2]
                for name, marker in markers.items():
                    faces = [f for f in marker.detect(square) if f.is_face]
                    nmes, used = match_faces([f.points for f in faces], truth[None], FOUND_NME)
                    counts[fraction, name] += (1, int(not np.isnan(nmes[0])), int((~used).sum()))
    print(f"close-ups of the faces of {args.pictures} (at least {args.min_face} px), {args.side} px squares")
    print(f"{'face / side':>11s} {'finder':8s} {'pictures':>8s} {'found':>6s} {'other faces':>11s}")
    for (fraction, name), (total, found, other) in counts.items():
        label = getattr(markers[name].finder, "name", name)
        print(f"{fraction:11.2f} {label:8s} {total:8d} {found / max(total, 1):6.3f} {other:11d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
