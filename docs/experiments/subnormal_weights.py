"""How many numbers of a run's last checkpoint sit under float32's normal range (1.2e-38), in
the weights and in Adam's moments, beside the run's seconds an epoch averaged over each fifth of
its epochs: a CPU takes a slow path for each product with such a number.

    python docs/experiments/subnormal_weights.py runs/w300-b8-i128 runs/w300-i128-all
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from landmarks.checkpoint import read_checkpoint

TINY = torch.finfo(torch.float32).tiny


def subnormal_count(tensors) -> int:
    return sum(int(((t.abs() > 0) & (t.abs() < TINY)).sum()) for t in tensors
               if torch.is_tensor(t) and t.is_floating_point())


def seconds_by_fifths(history: Path) -> list[float]:
    seconds = [float(row["seconds"]) for row in csv.DictReader(history.open())]
    step = max(1, len(seconds) // 5)
    return [sum(part) / len(part) for part in (seconds[i:i + step] for i in range(0, step * 5, step)) if part]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (last.pt and history.csv)")
    args = parser.parse_args(argv)
    print("| run | epochs | weights under the normal range | Adam's moments under it | s an epoch, each fifth |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        payload = read_checkpoint(run / "last.pt")
        moments = [m for state in payload["optimizer"]["state"].values() for m in state.values()]
        fifths = ", ".join(f"{s:.1f}" for s in seconds_by_fifths(run / "history.csv"))
        print(f"| {run.name} | {payload['epoch'] + 1} | {subnormal_count(payload['model'].values()):,} "
              f"| {subnormal_count(moments):,} | {fifths} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
