"""Whole pictures with small faces judged by two votes. The face branch sees a 20 px face blown up
to its input and doubts it more than the face finder, which saw it at its own size; the pipeline
keeps a face under ``Landmarker.SMALL_FACE`` pixels that the finder scores ``SMALL_FACE_SCORE`` or more
from the branch's ``--small-face-prob`` on. Each rule PX:P:S sets the three; found and false faces
per rule (1:1:1 never applies: the pipeline as before).

    python docs/experiments/small_face_votes.py --pictures lists/tune/val_pictures.txt \\
        --rules 1:1:1 24:0.2:0.5 24:0.1:0.5 32:0.2:0.5
"""

from __future__ import annotations

import argparse

from landmarks.data.labels import read_picture_list
from landmarks.inference.evaluate import evaluate_pictures
from landmarks.inference.landmarker import Landmarker


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", required=True, help="a pictures list (lists/*/val_pictures.txt)")
    parser.add_argument("--rules", nargs="+", default=["1:1:1"],
                        help="PX:P:S: faces under PX pixels kept from branch probability P where the finder's "
                             "score reaches S (default: %(default)s)")
    args = parser.parse_args(argv)
    pictures = read_picture_list(args.pictures)[0]
    for rule in args.rules:
        below_px, min_prob, min_score = (float(v) for v in rule.split(":"))
        # Candidates down to 0.05 for the finder's AP, those from its own threshold going on, as in
        # --phase test --test-pictures.
        marker = Landmarker(detector_threshold=0.05, small_face_prob=min_prob)
        marker.SMALL_FACE, marker.SMALL_FACE_SCORE = below_px, min_score
        metrics, _ = evaluate_pictures(marker, pictures, marker.finder.default_threshold)
        false = round(metrics["false_per_picture"] * len(pictures))
        print(f"{rule}: found {metrics['found']:.3f}  false faces {false} ({metrics['false_per_picture']:.3f} a "
              f"picture)  <24 px found {metrics['by_size']['<24 px']['found']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
