"""False faces on face-free pictures: the background of annotated pictures, cut away from every face.

From each picture of a picture list, the largest of the four strips (left, right, above, below)
that no face box (expanded by half its size) reaches is cut out, kept when at least
``--min-side`` pixels each way; the default pipeline then runs on it. Reported: pictures, the
false faces found, and the share of pictures with any. Annotations miss some faces (small,
turned, in posters), so a "false" face here may be a real one; the pictures with faces are
written to ``--out`` to look at.

    python scripts/face_free_check.py --pictures lists/split/test_pictures.txt --out face-free
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from landmarks.cli import run_cli
from landmarks.data.images import load_image
from landmarks.data.labels import read_picture_list
from landmarks.files import Outputs
from landmarks.inference.landmarker import Landmarker, LandmarkerSettings
from landmarks.inference.predict import draw_faces, write_picture


def face_free_strip(height: int, width: int, boxes: np.ndarray, margin: float = 0.5) -> tuple[int, int, int, int]:
    """The largest strip along one side of the picture that no expanded face box reaches."""
    if len(boxes) == 0:
        return 0, 0, width, height
    size = boxes[:, 2:] - boxes[:, :2]
    grown = np.concatenate([boxes[:, :2] - margin * size, boxes[:, 2:] + margin * size], axis=1)
    left = int(max(0, grown[:, 0].min()))
    right = int(min(width, grown[:, 2].max()))
    top = int(max(0, grown[:, 1].min()))
    bottom = int(min(height, grown[:, 3].max()))
    strips = [(0, 0, left, height), (right, 0, width, height), (0, 0, width, top), (0, bottom, width, height)]
    return max(strips, key=lambda s: (s[2] - s[0]) * (s[3] - s[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, default=Path("lists/split/test_pictures.txt"),
                        help="picture list (default: %(default)s)")
    parser.add_argument("--min-side", type=int, default=120, help="smallest strip side kept (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write the strips where faces were found here (default: none)")
    parser.add_argument("--small-face-prob", type=float, default=LandmarkerSettings.small_face_prob, metavar="P",
                        help="the pipeline's setting of that name (default: %(default)s)")
    parser.add_argument("--detector", default=LandmarkerSettings.detector,
                        help="face finder: a detector checkpoint or shipped name (default: the shipped one)")
    args = parser.parse_args(argv)
    return run_cli(lambda: check(args))


def check(args) -> int:
    marker = Landmarker(small_face_prob=args.small_face_prob, detector=args.detector)
    pictures, _ = read_picture_list(args.pictures)
    outputs = Outputs()
    outputs.reads("--pictures", args.pictures, *(p.image for p in pictures))
    outputs.reads("--detector", *([args.detector] if Path(args.detector).is_file() else []))
    used, found, with_any = 0, 0, 0
    for picture in pictures:
        rgb = load_image(picture.image, 3)
        x1, y1, x2, y2 = face_free_strip(*rgb.shape[:2], np.asarray(picture.boxes).reshape(-1, 4))
        if min(x2 - x1, y2 - y1) < args.min_side:
            continue
        strip = np.ascontiguousarray(rgb[y1:y2, x1:x2])
        faces = [f for f in marker.detect(strip) if f.is_face]
        used += 1
        found += len(faces)
        with_any += bool(faces)
        if faces and args.out:
            write_picture(args.out / f"{picture.image.stem}.png", draw_faces(strip, faces, marker.scheme.lines),
                          outputs)
    print(f"{used} face-free strips of {args.pictures} (of {len(pictures)} pictures): {found} false faces, "
          f"{with_any} strips with any ({with_any / max(used, 1):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
