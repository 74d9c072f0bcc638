"""Whole pictures with the face finder also looking at the picture's mirror image, as test-time
flip does for the landmarks. Two ways to join the two looks:

- ``union``: the shipped finder's looks, plus one at the mirror image at the finder's own size;
  the candidates of both, overlaps removed (faces.merge_looks, NMS at IoU 0.5);
- ``maps-mean``, ``maps-logit``, ``maps-max``: each look of the finder runs the net on the picture
  and its mirror, turns the mirror's maps back and averages them (the face probabilities' mean,
  the logits' mean or the probabilities' maximum; box sizes and offsets averaged) before the boxes
  are read.

Found and false faces for each, against the shipped finder (``none``):

    python docs/experiments/finder_flip.py --pictures lists/tune/val_pictures.txt
    python docs/experiments/finder_flip.py --pictures lists/tune/val_pictures.txt --rules union --min-face-prob 0.7
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from landmarks.checkpoint import load_model, resolve_model
from landmarks.data.labels import read_picture_list
from landmarks.data.pictures import fit_picture, normalise_pictures
from landmarks.inference.evaluate import evaluate_pictures
from landmarks.inference.faces import NetFinder, lift_dark, merge_looks
from landmarks.inference.landmarker import Landmarker

RULES = ("none", "union", "maps-mean", "maps-logit", "maps-max")


def mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """[N, 4] boxes of a mirror image of ``width`` pixels -> the same boxes on the picture."""
    flipped = boxes.copy()
    flipped[:, [0, 2]] = width - boxes[:, [2, 0]]
    return flipped


class FlipFinder(NetFinder):
    def __init__(self, loaded, rule: str, **settings):
        super().__init__(loaded, **settings)
        self.rule = rule

    def __call__(self, image):
        boxes, scores = super().__call__(image)
        if self.rule != "union":
            return boxes, scores
        rgb = lift_dark(image if image.shape[2] == 3 else np.repeat(image, 3, 2), self.dark_floor, self.dark_target)
        mirrored, mirrored_scores, _ = super().look(np.ascontiguousarray(rgb[:, ::-1]), self.size)
        return merge_looks(np.concatenate([boxes, mirror_boxes(mirrored, rgb.shape[1])]),
                           np.concatenate([scores, mirrored_scores]))

    def look(self, rgb, size):
        if not self.rule.startswith("maps"):
            return super().look(rgb, size)
        canvas, scale = fit_picture(rgb, size)
        batch = normalise_pictures(canvas[None])
        with torch.inference_mode():
            raw, mirror = self.net(batch), self.net(torch.flip(batch, dims=[3]).contiguous())
            back = {key: torch.flip(value.float(), dims=[3]) for key, value in mirror.items()}
            # A centre at x cells lies at (width - x) in the mirror: its offset in its cell is 1 - offset.
            back["offset"] = torch.stack([1 - back["offset"][:, 0], back["offset"][:, 1]], 1)
            heat, heat_back = raw["heat"].float(), back["heat"]
            if self.rule == "maps-logit":
                heat = (heat + heat_back) / 2
            else:
                p, p_back = torch.sigmoid(heat), torch.sigmoid(heat_back)
                joined = (p + p_back) / 2 if self.rule == "maps-mean" else torch.maximum(p, p_back)
                heat = torch.logit(joined.clamp(1e-6, 1 - 1e-6))
            joined_raw = {"heat": heat, "size": (raw["size"].float() + back["size"]) / 2,
                          "offset": (raw["offset"].float() + back["offset"]) / 2}
            boxes, scores = self.codec.decode(joined_raw, threshold=self.threshold)[0]
        return boxes.double().numpy() / scale, scores.double().numpy(), scale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", required=True, help="a pictures list (lists/*/val_pictures.txt)")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES,
                        help="how the mirror's look joins (default: all)")
    parser.add_argument("--detector", default="faces", help="the face finder (default: %(default)s)")
    parser.add_argument("--detector-threshold", type=float, default=0.2, help="finder score (default: %(default)s)")
    parser.add_argument("--min-face-prob", type=float, default=None,
                        help="the face branch's threshold (default: the landmark model's own)")
    args = parser.parse_args(argv)
    pictures = read_picture_list(args.pictures)[0]
    loaded = load_model(resolve_model(args.detector), expect_task="faces")
    for rule in args.rules:
        # Candidates down to 0.05 for the AP, as --phase test --test-pictures; the threshold decides.
        finder = FlipFinder(loaded, rule, threshold=0.05, backend="auto")
        marker = Landmarker(detector=finder, min_face_prob=args.min_face_prob)
        metrics, _ = evaluate_pictures(marker, pictures, args.detector_threshold)
        false = round(metrics["false_per_picture"] * len(pictures))
        print(f"{rule}: found {metrics['found']:.3f}  false faces {false} ({metrics['false_per_picture']:.3f} a "
              f"picture)  AP@0.5 {metrics['detector_ap']:.3f}  detector {metrics['ms_detector']:.1f} ms a picture",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
