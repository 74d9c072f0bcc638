"""Whole pictures with the face branch's verdict taken from both looks at a face: the shipped
pipeline keeps a face when the branch's probability on its second look (cropped from the box its
first look's points give) reaches the threshold; here the first look's probability (at the
finder's box) joins it: their maximum, mean or geometric mean. Found and false faces per rule.

    python docs/experiments/face_prob_fusion.py --pictures lists/tune/val_pictures.txt \
        --rules second:0.5 max:0.5 max:0.7 mean:0.5 mean:0.4 geometric:0.5
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from landmarks.data.labels import read_picture_list
from landmarks.inference.evaluate import evaluate_pictures
from landmarks.inference.landmarker import Landmarker, merge_duplicates

RULES = {
    "second": lambda first, second: second,
    "max": max,
    "mean": lambda first, second: (first + second) / 2,
    "geometric": lambda first, second: float(np.sqrt(first * second)),
}


class FusedLandmarker(Landmarker):
    """The shipped pipeline's looks (first, second, third where the points moved), the face kept
    by ``rule`` over the first and the last look's probabilities."""

    def __init__(self, rule: str, threshold: float, **settings):
        super().__init__(**settings)
        self.rule, self.threshold = RULES[rule], threshold

    def _faces_at(self, image, boxes, scores=None):
        pixels = self._pixels(image)
        first, looked, first_boxes = self._first_look(pixels, boxes, scores)
        if not looked:
            return first
        self.min_face_prob = 0.0  # every face looked at again; the rule decides below
        faces = self._look_from_points(pixels, [f.points for f in looked], [f.score for f in looked])
        faces = self._settled(pixels, faces, first_boxes)
        fused = []
        for before, after in zip(looked, faces):
            prob = self.rule(before.face_prob, after.face_prob)
            fused.append(dataclasses.replace(after, face_prob=prob,
                                             points=after.points if prob >= self.threshold else None))
        return merge_duplicates(fused)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", required=True, help="a pictures list (lists/*/val_pictures.txt)")
    parser.add_argument("--rules", nargs="+", default=["second:0.5"],
                        help=f"RULE:THRESHOLD, RULE one of {', '.join(RULES)} (default: %(default)s)")
    parser.add_argument("--detector-threshold", type=float, default=0.2, help="finder score (default: %(default)s)")
    args = parser.parse_args(argv)
    pictures = read_picture_list(args.pictures)[0]
    for rule in args.rules:
        name, threshold = rule.split(":")
        marker = FusedLandmarker(name, float(threshold))
        metrics, _ = evaluate_pictures(marker, pictures, args.detector_threshold)
        false = round(metrics["false_per_picture"] * len(pictures))
        print(f"{name} >= {threshold}: found {metrics['found']:.3f}  false faces {false} "
              f"({metrics['false_per_picture']:.3f} a picture)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
