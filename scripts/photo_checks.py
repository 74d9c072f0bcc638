"""Pictures unlike the course's, made from its annotated ones: close-ups, tilted heads and faces
cut by the picture's edge.

The course's pictures mostly show upright faces at a tenth to a third of the picture's side;
web photos and selfies often do not.

- ``closeup``: from each annotated face of at least ``--min-face`` pixels, square pictures
  centred on it, the face box taking ``--fractions`` of the side (only where the square lies
  inside the picture), scaled to ``--side`` pixels.
- ``tilt``: each picture turned about its centre by each of ``--angles`` degrees (the corners
  filled with black); faces with a point turned out of the picture are left out.
- ``edge``: for each annotated face of at least ``--min-face`` pixels and each side, the picture
  cut along a line through that face's box, ``--shares`` of the box's width (or height) beyond
  the new edge, as a photo framed tight on a person at its edge. Only that face counts; it is
  found when a face's points lie within 10 % of the true face's size (NME_box's normaliser)
  on average over its points left in the picture.
- ``dark``: each picture underexposed by each of ``--stops`` (light halved per stop, in linear
  light: sRGB decoded, scaled, encoded again), as a photo taken indoors or at dusk.

The whole-picture pipeline runs on each with every finder of ``--detectors``. Reported per
setting and finder: the faces, the share found (a predicted face with NME_box < 10 %), and the
other faces reported, matched to no counted face, by where they are: on a counted face whose
points are 10 % off or more, on an annotated face not counted (another person of a close-up,
a face a turn took partly out of the picture), or elsewhere (a false face, or a face nobody
annotated).

    python scripts/photo_checks.py closeup --pictures lists/split/test_pictures.txt
    python scripts/photo_checks.py tilt --pictures lists/split/test_pictures.txt
    python scripts/photo_checks.py edge --pictures lists/split/test_pictures.txt
    python scripts/photo_checks.py dark --pictures lists/split/test_pictures.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from landmarks.data.images import load_image
from landmarks.data.labels import read_picture_list
from landmarks.inference.faces import DARK_FLOOR, mean_light
from landmarks.geometry import affine_points, box_centre, box_size, iou
from landmarks.inference.evaluate import FOUND_NME
from landmarks.inference.landmarker import Landmarker, LandmarkerSettings
from landmarks.metrics import box_normaliser, match_faces


def closeup(image: np.ndarray, box: np.ndarray, fraction: float, side: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The square around ``box`` whose side the box's longer side is ``fraction`` of, scaled to
    ``side`` pixels -> (picture, affine [2, 3] from the image to it); None if it leaves the image."""
    h, w = image.shape[:2]
    extent = box_size(box).max() / fraction
    cx, cy = box_centre(box)
    x1, y1 = cx - extent / 2, cy - extent / 2
    if x1 < 0 or y1 < 0 or x1 + extent > w or y1 + extent > h:
        return None
    scale = side / extent
    matrix = np.array([[scale, 0.0, -x1 * scale], [0.0, scale, -y1 * scale]])
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR), matrix


def tilted(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned by ``angle`` degrees (counter-clockwise) about its centre, same size ->
    (picture, affine [2, 3] from the image to it)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), matrix


SIDES = ("left", "right", "top", "bottom")


def cut_at(image: np.ndarray, box: np.ndarray, side: str, share: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``image`` cut along a line through ``box``, ``share`` of the box's width (height for top and
    bottom) left beyond the new edge on ``side``, the rest of the picture kept -> (picture, affine
    [2, 3] from the image to it); None where that line is not inside the picture."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    line = {"left": x1 + share * (x2 - x1), "right": x2 - share * (x2 - x1),
            "top": y1 + share * (y2 - y1), "bottom": y2 - share * (y2 - y1)}[side]
    line = int(round(line))
    if line <= 0 or line >= (w if side in ("left", "right") else h):
        return None
    left, top = (line if side == "left" else 0), (line if side == "top" else 0)
    right, bottom = (line if side == "right" else w), (line if side == "bottom" else h)
    return image[top:bottom, left:right], np.array([[1.0, 0.0, -left], [0.0, 1.0, -top]])


def match_visible(found: list, truth: np.ndarray, visible: np.ndarray, threshold: float) -> tuple[bool, np.ndarray]:
    """Whether one of ``found`` faces finds a face cut by the picture's edge: mean distance over the
    ``visible`` [K] of its true points ``truth`` [K, 2], over the size of all of them (NME_box's
    normaliser), below ``threshold`` -> (found, which face found it [N])."""
    used = np.zeros(len(found), bool)
    if not len(found):
        return False, used
    norm = box_normaliser(truth[None])[0]
    errors = [np.linalg.norm(f.points[visible] - truth[visible], axis=-1).mean() / norm for f in found]
    best = int(np.argmin(errors))
    used[best] = errors[best] < threshold
    return bool(used[best]), used


def underexposed(image: np.ndarray, stops: float) -> np.ndarray:
    """``image`` (uint8 sRGB) with ``stops`` fewer stops of light: halved per stop in linear light."""
    linear = (image.astype(np.float64) / 255.0) ** 2.2 * 2.0 ** -stops
    return np.clip(np.round(linear ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)


def variants(kind: str, rgb: np.ndarray, picture, args):
    """(setting, picture, every annotated face's points there [F, K, 2], which faces count [F])
    for each picture ``kind`` makes of one."""
    everyone = picture.points
    if kind == "closeup":
        for index, box in enumerate(picture.boxes):
            if box_size(box).max() < args.min_face:
                continue
            for fraction in args.fractions:
                made = closeup(rgb, box, fraction, args.side)
                if made is not None:
                    square, matrix = made
                    yield fraction, square, affine_points(everyone, matrix), np.arange(len(everyone)) == index
    elif kind == "edge":
        for index, box in enumerate(picture.boxes):
            if box_size(box).max() < args.min_face:
                continue
            for share in args.shares:
                for side in SIDES:
                    made = cut_at(rgb, box, side, share)
                    if made is not None:
                        part, matrix = made
                        yield share, part, affine_points(everyone, matrix), np.arange(len(everyone)) == index
    elif kind == "dark":
        for stops in args.stops:
            yield stops, underexposed(rgb, stops), everyone, np.ones(len(everyone), bool)
    else:
        h, w = rgb.shape[:2]
        for angle in args.angles:
            turned, matrix = tilted(rgb, angle)
            points = affine_points(everyone, matrix)
            yield angle, turned, points, ((points >= 0) & (points < [w, h])).all(axis=(1, 2))


def other_faces(found: list, points: np.ndarray, counted: np.ndarray, scheme) -> np.ndarray:
    """Faces reported but matched to no counted face, by what they overlap (IoU 0.3 or more of
    the boxes their points give) -> counts [a counted face, its points off; a face not counted;
    none: a false face or one not annotated]."""
    tally = np.zeros(3, int)
    truth_boxes = scheme.face_boxes(points) if len(points) else np.zeros((0, 4))
    for face in found:
        overlap = iou(scheme.face_boxes(face.points[None])[0], truth_boxes) if len(truth_boxes) else np.zeros(1)
        best = int(overlap.argmax())
        tally[2 if overlap[best] < 0.3 else 0 if counted[best] else 1] += 1
    return tally


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["closeup", "tilt", "edge", "dark"], help="which pictures to make")
    parser.add_argument("--pictures", type=Path, default=Path("lists/split/test_pictures.txt"),
                        help="picture list (default: %(default)s)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9],
                        help="closeup: the face box's side as a share of the square's (default: %(default)s)")
    parser.add_argument("--angles", type=float, nargs="+", default=[0, 15, 30, 45],
                        help="tilt: degrees the pictures are turned by (default: %(default)s)")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3],
                        help="edge: share of the face box beyond the picture's new edge (default: %(default)s)")
    parser.add_argument("--stops", type=float, nargs="+", default=[0, 2, 4, 5],
                        help="dark: stops of light taken away (default: %(default)s)")
    parser.add_argument("--dark-floor", type=float, default=None,
                        help="the detector lifts pictures darker than this mean linear light; 0: none "
                             "(default: landmarks.inference.faces.DARK_FLOOR)")
    parser.add_argument("--dark-target", type=float, default=None,
                        help="... to this mean linear light (default: landmarks.inference.faces.DARK_TARGET)")
    parser.add_argument("--side", type=int, default=640, help="closeup: side of the squares (default: %(default)s)")
    parser.add_argument("--min-face", type=int, default=60,
                        help="closeup, edge: smallest face used, pixels (default: %(default)s)")
    parser.add_argument("--count", type=int, default=0, help="use the first COUNT pictures (default: all)")
    parser.add_argument("--model", default="stage3", help="landmark model (default: %(default)s)")
    parser.add_argument("--detectors", nargs="+", default=["default", "haar"],
                        help="face finders to compare (default: the shipped detector and haar)")
    parser.add_argument("--turn-above", type=float, default=LandmarkerSettings.turn_above, metavar="DEG",
                        help="second look turned upright above this tilt; 0: never (default: %(default)s)")
    parser.add_argument("--min-face-prob", type=float, default=None,
                        help="face branch threshold (default: the model's own)")
    parser.add_argument("--detector-zoom-out", type=float, default=None, metavar="SHARE",
                        help="trained detectors: look again at this share of their size when sure of no face "
                             "(default: the pipeline's)")
    parser.add_argument("--first-look-grow", type=float, default=LandmarkerSettings.first_look_grow, metavar="TIMES",
                        help="crop a close-up's candidate box this many times as large on the first look "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    markers = {name: Landmarker(args.model, detector=name, turn_above=args.turn_above,
                                min_face_prob=args.min_face_prob, first_look_grow=args.first_look_grow,
                                detector_zoom_out=None if name == "haar" else args.detector_zoom_out)
               for name in args.detectors}
    for marker in markers.values():
        if args.dark_floor is not None or args.dark_target is not None:
            if not hasattr(marker.finder, "dark_floor"):
                parser.error("--dark-floor and --dark-target are for a trained face detector")
            if args.dark_floor is not None:
                marker.finder.dark_floor = args.dark_floor
            if args.dark_target is not None:
                marker.finder.dark_target = args.dark_target
    settings = {"closeup": args.fractions, "tilt": args.angles, "edge": args.shares, "dark": args.stops}[args.kind]
    # faces, found, other faces: on a counted face (points off), on a face not counted, on none
    counts = {(setting, name): np.zeros(5, int) for setting in settings for name in markers}
    pictures, _ = read_picture_list(args.pictures)
    light = []
    for picture in pictures[:args.count or None]:
        rgb = load_image(picture.image, 3)
        light.append(mean_light(rgb))
        for setting, image, points, counted in variants(args.kind, rgb, picture, args):
            for name, marker in markers.items():
                faces = [f for f in marker.detect(image) if f.is_face]
                if args.kind == "edge":
                    height, width = image.shape[:2]
                    truth = points[counted][0]
                    hit, used = match_visible(faces, truth, ((truth >= 0) & (truth < [width, height])).all(1),
                                              FOUND_NME)
                    hits = int(hit)
                else:
                    nmes, used = match_faces([f.points for f in faces], points[counted], FOUND_NME)
                    hits = (~np.isnan(nmes)).sum()
                others = other_faces([f for f, u in zip(faces, used) if not u], points, counted, marker.scheme)
                counts[setting, name] += (counted.sum(), hits, *others)
    heading = {"closeup": f"close-ups of faces of at least {args.min_face} px, {args.side} px squares",
               "tilt": "pictures turned about their centre",
               "edge": f"faces of at least {args.min_face} px cut by the picture's edge, each side",
               "dark": "pictures underexposed"}[args.kind]
    print(f"{heading}, from {args.pictures}")
    if args.kind == "dark":
        floor = DARK_FLOOR if args.dark_floor is None else args.dark_floor
        print(f"mean linear light of the {len(light)} pictures as they are: median {np.median(light):.3f}, "
              f"5th percentile {np.percentile(light, 5):.3f}; {sum(v < floor for v in light)} under the "
              f"detector's floor {floor:g}")
    column = {"closeup": "face / side", "tilt": "degrees", "edge": "box beyond", "dark": "stops"}[args.kind]
    print(f"{column:>11s} {'finder':8s} {'faces':>6s} {'found':>6s}   "
          f"other faces: {'points off':>10s} {'not counted':>11s} {'elsewhere':>9s}")
    for (setting, name), (total, found, off, uncounted, elsewhere) in counts.items():
        label = markers[name].finder.name if name in ("default", "haar") else name  # a checkpoint: its path
        print(f"{setting:11g} {label:8s} {total:6d} {found / max(total, 1):6.3f}   "
              f"{'':12s} {off:10d} {uncounted:11d} {elsewhere:9d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
