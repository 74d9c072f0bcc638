"""Face crops cut on one side, as a picture's edge cuts the crop of a face lying against it.

The list builder clamps each crop to its picture, so a face at the edge sits off-centre in a
crop narrower on one side, which is also what a partial-face non-face looks like. This writes
such crops from a list's faces, to check that the face branch keeps them:

    python scripts/tools/edge_crops.py --list lists/tune3f/val.txt --out lists/tune3f/val_edge.txt
    python -m landmarks.detector --phase test --model stage3 --test-list lists/tune3f/val_edge.txt

Each face line (non-faces are left out) has one side of its crop box, chosen at random, moved
inwards by ``--cut`` of the crop's side (default 5-25 %: the expansion's margin is a sixth of
the crop); its points are given again relative to the new box.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from landmarks.cli import DefaultsHelpFormatter, run_cli
from landmarks.data.labels import read_list, write_list
from landmarks.files import Outputs


def cut_crop(box: np.ndarray, points: np.ndarray, side: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Move one side of a crop box (0 left, 1 right, 2 top, 3 bottom) inwards by ``share`` of
    that side's length -> (new box, points relative to it)."""
    box, points = box.astype(np.float64).copy(), points.astype(np.float64).copy()
    axis = 0 if side < 2 else 1
    amount = np.round(share * (box[axis + 2] - box[axis]))
    if side in (0, 2):
        box[axis] += amount
        points[:, axis] -= amount
    else:
        box[axis + 2] -= amount
    return box, points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="a list with faces (stage 1 or 3)")
    parser.add_argument("--out", type=Path, required=True, help="the list of cut face crops to write")
    parser.add_argument("--cut", type=float, nargs=2, default=[0.05, 0.25], metavar=("LOW", "HIGH"),
                        help="share of the crop's side cut off")
    parser.add_argument("--seed", type=int, default=0, help="fixes the sides and the cuts")
    args = parser.parse_args(argv)

    def job():
        outputs = Outputs()
        outputs.reads("--list", args.list)
        outputs.check("--out", args.out)
        rng = np.random.default_rng(args.seed)
        cut = []
        for entry in read_list(args.list).entries:
            if entry.is_face:
                box, points = cut_crop(entry.box, entry.points, int(rng.integers(4)), rng.uniform(*args.cut))
                cut.append(dataclasses.replace(entry, box=box, points=points))
        write_list(args.out, cut, labelled=True)
        print(f"{args.out}: {len(cut)} face crops cut on one side")
    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())
