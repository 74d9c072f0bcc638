"""A model soup: the weights of several runs of one net averaged (batch-norm statistics too),
scored on a list beside each run, and written as a checkpoint any phase reads.

    python docs/experiments/weight_soup.py --test-list lists/w300/val.txt --models runs/w300-m192-300/last.pt \
        runs/w300-m192-lr2/last.pt runs/w300-m192-s3/last.pt
    python docs/experiments/weight_soup.py --models faces runs/faces-pb05/best.pt --out runs/soups/faces-pb05-half.pt

``--weights`` weighs the models (normalised to sum 1): ``--models START FINETUNED --weights 0.5 0.5``
is the finetune's weights moved half-way back to where it started. A face detector's soup is
written, not scored here: score it with ``--phase test --test-pictures ... --detector SOUP``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from landmarks.checkpoint import checkpoint_bytes, load_model, resolve_model
from landmarks.cli import run_cli
from landmarks.data.labels import read_list
from landmarks.errors import UsageError
from landmarks.files import Outputs
from landmarks.train.run import Job, make_dataset
from landmarks.train.tasks import LandmarkTask


def averaged(states: list[dict], weights: list[float] | None = None) -> dict:
    """The weighted mean of each floating-point tensor over ``states`` (equal weights where
    ``weights`` is None; they are normalised to sum 1); counters (integers) from the first."""
    weights = [1.0] * len(states) if weights is None else weights
    shares = [w / sum(weights) for w in weights]
    return {key: sum(share * s[key].float() for share, s in zip(shares, states)).to(value.dtype)
            if value.is_floating_point() else value for key, value in states[0].items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True,
                        help="checkpoints (or shipped names) of one net, one kind and one scheme")
    parser.add_argument("--weights", nargs="+", type=float, help="one weight a model (default: equal)")
    parser.add_argument("--test-list", type=Path, help="a list of faces to score landmark models on")
    parser.add_argument("--out", type=Path, help="write the soup here as a checkpoint")
    args = parser.parse_args(argv)
    return run_cli(lambda: make_soup(args))


def make_soup(args) -> int:
    if args.weights is not None and len(args.weights) != len(args.models):
        raise UsageError(f"--weights: {len(args.weights)} given for {len(args.models)} --models")
    if args.weights is not None and (min(args.weights) < 0 or sum(args.weights) <= 0):
        raise UsageError("--weights: none may be negative, and not all zero")
    paths = [resolve_model(name) for name in args.models]
    outputs = Outputs()
    outputs.reads("--models", *paths)
    outputs.reads("--test-list", args.test_list)
    out = outputs.check("--out", args.out) if args.out else None
    loaded = [load_model(path, expect_task=None) for path in paths]
    spec = loaded[0].spec
    for path, model in zip(paths[1:], loaded[1:]):
        if (model.spec.task, model.spec.num_points, model.spec.config.net, model.spec.config.head) != \
                (spec.task, spec.num_points, spec.config.net, spec.config.head):
            raise UsageError(f"--models: {path} is not the first model's kind of net, head and points")
    soup = copy.deepcopy(loaded[0].net)
    soup.load_state_dict(averaged([m.net.state_dict() for m in loaded], args.weights))

    if args.test_list is not None:
        if spec.task != "landmarks":
            raise UsageError("--test-list scores landmark models; score a face detector's soup with "
                             "--phase test --test-pictures LIST --detector SOUP")
        dataset = make_dataset(read_list(args.test_list, num_points=spec.num_points), spec, Job(progress=False), False)

        def nme_io(net) -> float:
            metrics, _ = LandmarkTask(spec, spec.codec(net)).evaluate(net, dataset, torch.device("cpu"))
            return metrics["nme_io"]

        for path, model in zip(args.models, loaded):
            print(f"{path}: NME_io {nme_io(model.net):.3f}%")
        print(f"the {len(loaded)} averaged: NME_io {nme_io(soup):.3f}%")
    if out is not None:
        outputs.write_bytes("--out", out, checkpoint_bytes(soup, spec))
        print(f"soup of {len(loaded)} written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
