"""The face finder's look at a smaller size, swept: for each share of the detector size and each
score the first look must reach to count as sure of a face (below it, the second look is taken),
the whole-picture test's found, false faces and misses on a picture list (any scheme the model
derives from, as ``--phase test --test-pictures`` takes it), and how many pictures took the look.

    python docs/experiments/zoom_out_sweep.py --pictures lists/tune/val_pictures.txt
    python docs/experiments/zoom_out_sweep.py --pictures lists/lfpw68/train_pictures.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from landmarks.inference.evaluate import evaluate_pictures, for_model_scheme, read_pictures
from landmarks.inference.landmarker import Landmarker, LandmarkerSettings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, required=True, help="a picture list")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.6, 0.7],
                        help="sizes of the second look, as shares of the detector's (default: %(default)s)")
    parser.add_argument("--sure", type=float, nargs="+", default=[0.3, 0.5, 0.7],
                        help="first-look scores that count as sure of a face (default: %(default)s)")
    parser.add_argument("--first-look-grow", type=float, default=1.0,
                        help="the landmarks' first look at a close-up's box (default: %(default)s, as the sweep "
                             "was first run)")
    args = parser.parse_args(argv)
    pictures, scheme = read_pictures(args.pictures, strict=False)
    # Candidates down to 0.05, as --phase test takes them (for the detector's AP); 0.2 goes on.
    marker = Landmarker(None, LandmarkerSettings(detector_threshold=0.05, first_look_grow=args.first_look_grow))
    pictures, _ = for_model_scheme(args.pictures, pictures, scheme, marker.scheme)
    print(f"{args.pictures}: {len(pictures)} pictures, {sum(len(p.boxes) for p in pictures)} faces")
    finder, sizes = marker.finder, []
    look = finder.look
    finder.look = lambda rgb, size: sizes.append(size) or look(rgb, size)
    for share, sure in [(0.0, 0.5)] + [(share, sure) for share in args.shares for sure in args.sure]:
        finder.zoom_out, finder.zoom_out_sure = share, sure
        sizes.clear()
        metrics, _ = evaluate_pictures(marker, pictures, finder.default_threshold)
        looked = sum(size < finder.size for size in sizes)
        causes = ", ".join(f"{cause} {count}" for cause, count in metrics["missed_by_cause"].items())
        setting = "never" if not share else f"share {share:g}, sure {sure:g}"
        print(f"{setting:22s} found {metrics['found']:.3f}  false faces a picture {metrics['false_per_picture']:.3f}"
              f"  missed: {causes}  pictures looked at again smaller: {looked}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
