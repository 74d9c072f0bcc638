"""Other ways to read a point from a SimCC head's bins, on a list, against the expected position
under the softmax that ``landmarks.codecs.SimCC.decode`` uses: the expected position inside a
window of bins around the most likely bin (a far second mode then pulls nothing), and the
expected position under a sharper softmax (logits multiplied by a temperature).

    python docs/experiments/simcc_decoding.py --model runs/w300-m192-lr2/best.pt --test-list lists/w300/val.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from landmarks.checkpoint import load_model, resolve_model
from landmarks.codecs import grid_centres
from landmarks.data.labels import read_list
from landmarks.train.run import Job, make_dataset
from landmarks.train.tasks import LandmarkTask


def windowed(logits: torch.Tensor, window: int) -> torch.Tensor:
    """[..., bins] -> expected position (share of the side) over the bins within ``window`` of the top one."""
    p = torch.softmax(logits.float(), -1)
    near = (torch.arange(p.shape[-1]) - p.argmax(-1, keepdim=True)).abs() <= window
    q = p * near
    return (q * grid_centres(p.shape[-1], p)).sum(-1) / q.sum(-1)


def sharpened(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    p = torch.softmax(logits.float() * temperature, -1)
    return (p * grid_centres(p.shape[-1], p)).sum(-1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a checkpoint with a SimCC head")
    parser.add_argument("--test-list", type=Path, required=True, help="a list of faces to score")
    args = parser.parse_args(argv)
    loaded = load_model(resolve_model(args.model))
    spec = loaded.spec
    dataset = make_dataset(read_list(args.test_list, num_points=spec.num_points), spec, Job(progress=False), False)
    readers = {"expected position (today)": None}
    readers.update({f"window of ±{w} bins": (windowed, w) for w in (2, 4, 6, 10, 16)})
    readers.update({f"temperature {t:g}": (sharpened, t) for t in (1.5, 2, 3)})
    for name, reader in readers.items():
        codec = spec.codec(loaded.net)
        if reader is not None:
            read, value = reader
            codec.decode = lambda raw, read=read, value=value: torch.stack([read(raw["x"], value),
                                                                            read(raw["y"], value)], -1)
        metrics, _ = LandmarkTask(spec, codec).evaluate(loaded.net, dataset, torch.device("cpu"))
        print(f"{name:28s} NME_io {metrics['nme_io']:.3f}%  NME_box {metrics['nme_box']:.3f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
