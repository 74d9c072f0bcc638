"""Score a `--predictions-out` file of 68-point faces against the .pts files of its pictures, with
numpy alone: a check of the package's own NME_io from what it writes, as an outside scorer reads it.

Each line of the predictions is a path, a box and 136 coordinates in 0-based image pixels; its .pts
is found by the picture's file name under --pts-dir (300-W counts from 1). NME_io divides each
face's mean point error by its outer eye corners' distance (points 37 and 46, 1-based).

    python docs/experiments/score_predictions.py --predictions P --pts-dir FOLDER
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def read_pts(path: Path) -> np.ndarray:
    body = path.read_text().split("{")[1].split("}")[0]
    return np.array(body.split(), dtype=float).reshape(-1, 2) - 1.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, required=True, help="a --predictions-out file")
    parser.add_argument("--pts-dir", type=Path, required=True, help="folder holding the pictures' .pts files")
    args = parser.parse_args(argv)
    pts_files = {p.stem: p for p in args.pts_dir.rglob("*.pts")}
    errors = []
    for line in args.predictions.read_text().splitlines():
        path, *numbers = line.split()
        predicted = np.array(numbers[4:], dtype=float).reshape(-1, 2)
        if Path(path).stem not in pts_files:
            raise SystemExit(f"{args.predictions}: {path}: no {Path(path).stem}.pts under {args.pts_dir}")
        truth = read_pts(pts_files[Path(path).stem])
        eyes = np.linalg.norm(truth[36] - truth[45])
        errors.append(np.linalg.norm(predicted - truth, axis=1).mean() / eyes)
    errors = np.array(errors)
    print(f"{len(errors)} faces of {len(pts_files)} .pts files: NME_io {100 * errors.mean():.2f} %, "
          f"FR@0.10 {100 * (errors > 0.1).mean():.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
