"""Stage-1 training throughput: a course-style per-sample pipeline against ours.

(a) course style: a Dataset that opens the JPEG with PIL, crops, resizes and
    converts every sample of every epoch (augmentation per sample with PIL);
(b) ours: crops decoded once into memory, augmentation on whole batches.
Both train the same stage-1 net with the same batch size on the same machine.

    python scripts/bench_train.py --list lists/split/train.txt [--augment] [--full]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landmarks.config import Config
from landmarks.data import FaceLandmarksDataset
from landmarks.detector import STANDARD_AUGMENT
from landmarks.engine import forward_step
from landmarks.geometry import flip_points
from landmarks.labels import read_list
from landmarks.net import build_net


class CourseStyleDataset(torch.utils.data.Dataset):
    """What the course's reference code does: everything per sample, every time."""

    def __init__(self, entries, size=112, augment=False):
        self.entries, self.size, self.augment = entries, size, augment

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, index):
        entry = self.entries[index]
        image = Image.open(entry.image).convert("L")
        x1, y1, x2, y2 = (int(v) for v in entry.box)
        crop = image.crop((x1, y1, x2, y2))
        points = entry.points.copy()
        if self.augment:
            if random.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                points = flip_points(points, x2 - x1)
            angle = random.uniform(-15, 15)
            crop = crop.rotate(angle, resample=Image.BILINEAR, center=((x2 - x1) / 2, (y2 - y1) / 2))
            centre = np.array([(x2 - x1) / 2, (y2 - y1) / 2])
            a = math.radians(-angle)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            points = (points - centre) @ rot.T + centre
        points = points * np.array([self.size / (x2 - x1), self.size / (y2 - y1)])
        crop = crop.resize((self.size, self.size), Image.BILINEAR)
        array = np.asarray(crop, dtype=np.float32)
        array = (array - array.mean()) / (array.std() + 1e-6)
        return {"image": torch.from_numpy(array)[None], "points": torch.from_numpy(points).float(),
                "is_face": torch.tensor(True), "index": torch.tensor(index)}


def train_steps(model, batches, config, max_samples):
    """Train on batches until ``max_samples``; -> (samples, seconds)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen, start = 0, time.perf_counter()
    for batch in batches:
        out = forward_step(model, batch, config, torch.device("cpu"))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        seen += len(batch["index"])
        if seen >= max_samples:
            break
    return seen, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, default=Path("lists/split/train.txt"), help="(default: %(default)s)")
    parser.add_argument("--augment", action="store_true", help="flip + rotation in (a), the standard set in (b)")
    parser.add_argument("--samples", type=int, default=0, help="samples to time each way (default: one epoch)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for (a) (default: 0, as the course)")
    parser.add_argument("--full", action="store_true",
                        help="also time a whole default stage-1 training run (configs/stage1.toml) on --list")
    args = parser.parse_args(argv)
    entries = read_list(args.list).entries
    samples = args.samples or len(entries)
    config = Config()
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{len(entries)} faces in {args.list}; augmentation {'on' if args.augment else 'off'}")

    torch.manual_seed(0)
    course = CourseStyleDataset(entries, augment=args.augment)
    loader = torch.utils.data.DataLoader(course, batch_size=config.batch_size, shuffle=True, num_workers=args.workers)
    n_a, t_a = train_steps(build_net("stage1"), loader, config, samples)

    torch.manual_seed(0)
    start = time.perf_counter()
    ours = FaceLandmarksDataset(entries, augment=STANDARD_AUGMENT if args.augment else None)
    decode = time.perf_counter() - start
    batches = ours.batches(config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    n_b, t_b = train_steps(build_net("stage1"), batches, config, samples)

    rate_a, rate_b = n_a / t_a, n_b / t_b
    print(f"(a) course style: {rate_a:8.0f} samples/s, {len(entries) / rate_a:6.2f} s/epoch")
    print(f"(b) ours:         {rate_b:8.0f} samples/s, {len(entries) / rate_b:6.2f} s/epoch "
          f"(+ {decode:.1f} s once to decode and crop)")
    print(f"speed-up: {rate_b / rate_a:.1f}x")
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "landmarks.detector", "--phase", "train", "--config", "configs/stage1.toml",
                       "--train-list", str(args.list), "--test-list", str(Path(tmp) / "none.txt"),
                       "--runs-dir", tmp, "--cache-dir", str(Path(tmp) / "cache"), "--quiet"]
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=Path(__file__).resolve().parents[1])
            print(f"full stage-1 training ({Config().epochs} epochs, decoding included, no cache): "
                  f"{time.perf_counter() - start:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
