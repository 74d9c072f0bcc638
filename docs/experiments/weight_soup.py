"""A model soup: the weights of several runs of one net averaged (batch-norm statistics too), and
scored on a list beside each run.

    python docs/experiments/weight_soup.py --test-list lists/w300/val.txt --models runs/w300-m192-300/last.pt \
        runs/w300-m192-lr2/last.pt runs/w300-m192-s3/last.pt
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from landmarks.checkpoint import load_model, resolve_model
from landmarks.data.labels import read_list
from landmarks.errors import UsageError
from landmarks.train.run import Job, make_dataset
from landmarks.train.tasks import LandmarkTask


def averaged(states: list[dict]) -> dict:
    """The mean of each floating-point tensor over ``states``; counters (integers) from the first."""
    return {key: (sum(s[key].float() for s in states) / len(states)).to(value.dtype)
            if value.is_floating_point() else value for key, value in states[0].items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="checkpoints of one net and scheme")
    parser.add_argument("--test-list", type=Path, required=True, help="a list of faces to score")
    args = parser.parse_args(argv)
    loaded = [load_model(resolve_model(path)) for path in args.models]
    spec = loaded[0].spec
    if any(m.spec.num_points != spec.num_points or m.spec.config.head != spec.config.head for m in loaded):
        raise UsageError("--models: every model must have the first one's head and points")
    dataset = make_dataset(read_list(args.test_list, num_points=spec.num_points), spec, Job(progress=False), False)

    def nme_io(net) -> float:
        metrics, _ = LandmarkTask(spec, spec.codec(net)).evaluate(net, dataset, torch.device("cpu"))
        return metrics["nme_io"]

    for path, model in zip(args.models, loaded):
        print(f"{path}: NME_io {nme_io(model.net):.3f}%")
    soup = copy.deepcopy(loaded[0].net)
    soup.load_state_dict(averaged([m.net.state_dict() for m in loaded]))
    print(f"the {len(loaded)} averaged: NME_io {nme_io(soup):.3f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
