"""Leave points of a list unlabelled, as annotators do with hidden or cut-off points, to measure
what training with unlabelled points costs (docs/own-data.md).

    python scripts/tools/drop_points.py --list lists/split/train.txt --out lists/drop20/train.txt --share 0.2
    python scripts/tools/drop_points.py --list lists/split/train.txt --out lists/drop20f/train.txt --share 0.2 --drop-faces

Each face point is left out (written ``nan nan``) with probability ``--share``; with
``--drop-faces`` a face that would lose a point is dropped whole instead, as a tool that
cannot mask points would have to. The lists.json beside the list is copied along.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import numpy as np

from landmarks.cli import DefaultsHelpFormatter, run_cli
from landmarks.data.labels import read_list, write_list
from landmarks.files import Outputs


def drop_points(points: list[np.ndarray], share: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Each [K, 2] face with each point NaN with probability ``share`` (at least one point kept)."""
    dropped = []
    for face in points:
        gone = rng.random(len(face)) < share
        if gone.all():
            gone[rng.integers(len(face))] = False
        dropped.append(np.where(gone[:, None], np.nan, face))
    return dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="a list of faces (stage 1 or 3)")
    parser.add_argument("--out", type=Path, required=True, help="the list to write")
    parser.add_argument("--share", type=float, default=0.2, help="probability that a point is left out")
    parser.add_argument("--drop-faces", action="store_true", help="drop a face that loses a point instead")
    parser.add_argument("--seed", type=int, default=0, help="fixes which points go")
    args = parser.parse_args(argv)

    def job():
        outputs = Outputs()
        info = args.list.parent / "lists.json"
        outputs.reads("--list", args.list, info if info.is_file() else None)
        outputs.check("--out", args.out)
        outputs.check("--out", args.out.parent / "lists.json")
        data = read_list(args.list)
        faces = [e for e in data.entries if e.is_face]
        points = drop_points([e.points for e in faces], args.share, np.random.default_rng(args.seed))
        kept = [dataclasses.replace(e, points=p) for e, p in zip(faces, points)
                if not (args.drop_faces and np.isnan(p).any())]
        write_list(args.out, kept + [e for e in data.entries if not e.is_face], labelled=data.stage == 3)
        if info.is_file():
            shutil.copy(info, args.out.parent / "lists.json")
        left = sum(int(np.isnan(e.points).any(-1).sum()) for e in kept)
        print(f"{args.out}: {len(kept)} of {len(faces)} faces, {left} points unlabelled")
    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())
