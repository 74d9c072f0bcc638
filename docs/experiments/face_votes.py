"""Whole pictures with the face finder's vote beside the face branch's, found and false faces per rule.

The pipeline keeps a face when the face branch's probability on its last look reaches 0.5, with
two exceptions, each set by a rule here:

- ``small:PX:P:S``: a face under PX pixels (the square root of its box's area) that the finder
  scores S or more is kept from P on (``Landmarker.SMALL_FACE``, ``SMALL_FACE_SCORE`` and
  ``--small-face-prob``): the branch sees a 20 px face blown up to its input and doubts it
  more than the finder, which saw it at its own size. ``small:1:1:1`` never applies.
- ``unsure:L:P``: candidates the finder scores from L up to its threshold (0.2) go on too and
  are kept from P on (``Landmarker.UNSURE_SHARE`` times the threshold, and ``--unsure-face-prob``):
  a sure branch outweighs a finder in doubt. ``unsure:0.2:1`` lets none go on.

A rule sets its own exception and leaves the other as shipped.

    python docs/experiments/face_votes.py --pictures lists/tune/val_pictures.txt \\
        --rules small:1:1:1 small:24:0.2:0.4 unsure:0.2:1 unsure:0.15:0.95
"""

from __future__ import annotations

import argparse
from pathlib import Path

from landmarks.inference.evaluate import evaluate_pictures, for_model_scheme, proposing_for_pr_curve, read_pictures
from landmarks.inference.landmarker import Landmarker


def marker_for(rule: str) -> Landmarker:
    kind, *values = rule.split(":")
    numbers = [float(v) for v in values]
    if kind == "small":
        below_px, min_prob, min_score = numbers
        marker = Landmarker(small_face_prob=min_prob)
        marker.SMALL_FACE, marker.SMALL_FACE_SCORE = below_px, min_score
        return marker
    if kind == "unsure":
        low, min_prob = numbers
        marker = Landmarker(unsure_face_prob=min_prob)
        if min_prob < 1:
            marker.finder.threshold = low
        return marker
    raise SystemExit(f"{rule}: a rule is small:PX:P:S or unsure:L:P")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, required=True, help="a pictures list (lists/*/val_pictures.txt)")
    parser.add_argument("--rules", nargs="+", default=["small:1:1:1"], help="rules (default: %(default)s)")
    args = parser.parse_args(argv)
    pictures, scheme = read_pictures(args.pictures, strict=False)
    for rule in args.rules:
        marker = marker_for(rule)
        floor = proposing_for_pr_curve(marker)  # as --phase test --test-pictures does
        seen, _ = for_model_scheme(args.pictures, pictures, scheme, marker.scheme)
        metrics, _ = evaluate_pictures(marker, seen, floor)
        false = round(metrics["false_per_picture"] * len(seen))
        print(f"{args.pictures} {rule}: found {metrics['found']:.4f}  false faces {false} ({metrics['false_per_picture']:.3f} a "
              f"picture)  <24 px found {metrics['by_size'].get('<24 px', {}).get('found', float('nan')):.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
