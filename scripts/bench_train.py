"""Stage-1 training throughput: the course's design against ours.

(a) course style: a Dataset that opens the JPEG with PIL, crops, resizes and
    converts every sample of every epoch (augmentation per sample with PIL),
    feeding the stage-1 net in stock PyTorch modules (nn.PReLU, NCHW tensors)
    and a stock Adam;
(b) ours: crops decoded once into memory, augmentation on whole batches,
    feeding the same net as the train phase runs it (fused C kernels for the
    first layer, PReLU and pooling, channels-last tensors, fused Adam, freed
    memory kept for reuse);
(c) our data path feeding (a)'s net: what the data path alone gains.
Same architecture, batch size, loss and machine. Each pipeline runs in its own
process (so (a) keeps the C library's default allocator), and they take turns in
slices so that a machine that changes speed during the run affects all alike.
Each slice starts with one untimed batch: the first step after another process
ran is slower (cold caches, idle threads) and a real training run has no such
switches.

    python scripts/bench_train.py --list lists/split/train.txt [--augment] [--full]
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
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
from landmarks.data import FaceLandmarksDataset, load_scheme, read_list
from landmarks.data.augment import STANDARD_AUGMENT
from landmarks.geometry import flip_points
from landmarks.net import PReLU, native
from landmarks.spec import ModelSpec
from landmarks.train import LandmarkTask, keep_freed_memory
from landmarks.train.optim import make_optimizer

SCHEME = load_scheme("course21")
SPEC = ModelSpec(Config(scheme="course21"), SCHEME)


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
                points = flip_points(points, x2 - x1, SCHEME.flip_permutation)
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


def stock_stage1_net() -> torch.nn.Module:
    """The stage-1 net as the course writes it: torch's own PReLU, NCHW tensors."""
    net = SPEC.build()
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, PReLU):
                stock = torch.nn.PReLU(child.num_parameters)
                stock.weight = child.weight
                setattr(module, name, stock)
    return net.to(memory_format=torch.contiguous_format)


class Trainer:
    """Stage-1 training fed by an endless stream of batches, timed in slices."""

    def __init__(self, batch_epochs, config, ours: bool):
        self.model = (SPEC.build() if ours else stock_stage1_net()).train()
        self.task = LandmarkTask(SPEC, SPEC.codec(self.model))
        self.optimizer = (make_optimizer("adam", self.model.parameters(), config, 1e-3) if ours
                          else torch.optim.Adam(self.model.parameters(), lr=1e-3))
        self.batches = itertools.chain.from_iterable(batch_epochs)
        self.config = config

    def train(self, samples: int, step: bool = True) -> tuple[int, float]:
        """Train on at least ``samples`` samples (only make their batches when not ``step``);
        -> (samples, seconds)."""
        seen, start = 0, time.perf_counter()
        while seen < samples:
            batch = next(self.batches)
            if step:
                out = self.task.step(self.model, batch, torch.device("cpu"))
                self.optimizer.zero_grad()
                out.loss.backward()
                self.optimizer.step()
            seen += len(batch["index"])
        return seen, time.perf_counter() - start


def build_trainer(kind: str, list_path: Path, augment: bool, workers: int) -> tuple[Trainer, float]:
    """Pipeline ``kind`` (a, b or c, see the module text); -> (trainer, seconds spent decoding up front)."""
    config = Config()
    entries = read_list(list_path).entries
    torch.manual_seed(0)
    if kind == "a":
        course = CourseStyleDataset(entries, augment=augment)
        loader = torch.utils.data.DataLoader(course, batch_size=config.batch_size, shuffle=True, num_workers=workers)
        return Trainer(itertools.repeat(loader), config, ours=False), 0.0
    keep_freed_memory()  # as the train phase does
    start = time.perf_counter()
    dataset = FaceLandmarksDataset(entries, augment=STANDARD_AUGMENT if augment else None,
                                   flip_permutation=SCHEME.flip_permutation)
    decode = time.perf_counter() - start
    generator = torch.Generator().manual_seed(0)
    epochs = (dataset.batches(config.batch_size, shuffle=True, generator=generator) for _ in itertools.count())
    return Trainer(epochs, config, ours=kind == "b"), decode


def serve(kind: str, list_path: Path, augment: bool, workers: int, connection) -> None:
    """A pipeline's own process: build it, warm it up, then train (or only batch) as many samples
    as asked and send the time; None ends it."""
    trainer, decode = build_trainer(kind, list_path, augment, workers)
    trainer.train(2 * trainer.config.batch_size)  # first-call set-up is not throughput
    connection.send(decode)
    while (request := connection.recv()) is not None:
        samples, step = request
        trainer.train(1, step)  # warm-up after the other pipelines' turns, not timed
        connection.send(trainer.train(samples, step))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, default=Path("lists/split/train.txt"), help="(default: %(default)s)")
    parser.add_argument("--augment", action="store_true", help="flip + rotation in (a), the standard set in (b)")
    parser.add_argument("--samples", type=int, default=0, help="samples to time each way (default: one epoch)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="the pipelines take turns in this many slices, so a machine that speeds up or "
                             "slows down during the run affects them alike (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for (a) (default: 0, as the course)")
    parser.add_argument("--full", action="store_true",
                        help="also time a whole default stage-1 training run (configs/stage1.toml) on --list")
    args = parser.parse_args(argv)
    faces = len(read_list(args.list).entries)
    samples = args.samples or faces
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{faces} faces in {args.list}; augmentation {'on' if args.augment else 'off'}; "
          f"{native.kernels().note}")

    # Each pipeline runs in its own fresh process, as it would in use; only one works at a time.
    context = multiprocessing.get_context("spawn")
    pipelines, decode = {}, {}
    for kind in "abc":
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(kind, args.list, args.augment, args.workers, theirs))
        process.start()
        pipelines[kind] = (process, ours)
        decode[kind] = ours.recv()  # built and warmed up before the next one starts

    totals = {kind: [0, 0.0] for kind in pipelines}
    ratios = []
    for _ in range(args.rounds):
        rates = {}
        for kind, (_, connection) in pipelines.items():
            connection.send((max(1, samples // args.rounds), True))
            n, seconds = connection.recv()
            totals[kind][0] += n
            totals[kind][1] += seconds
            rates[kind] = n / seconds
        ratios.append(rates["b"] / rates["a"])
    connection = pipelines["b"][1]
    connection.send((samples, False))
    n, seconds = connection.recv()
    data_ms = 1000 * seconds / n
    for process, connection in pipelines.values():
        connection.send(None)
        process.join()

    rate = {kind: n / seconds for kind, (n, seconds) in totals.items()}
    print(f"(a) course style: {rate['a']:8.0f} samples/s, {faces / rate['a']:6.2f} s/epoch")
    print(f"(b) ours:         {rate['b']:8.0f} samples/s, {faces / rate['b']:6.2f} s/epoch "
          f"(+ {decode['b']:.1f} s once to decode and crop)")
    print(f"speed-up (b)/(a): {rate['b'] / rate['a']:.1f}x "
          f"(per round: {min(ratios):.1f}x to {max(ratios):.1f}x over {args.rounds} rounds)")
    print(f"(b)'s data path alone (batches made, no training): {data_ms:.3f} ms a sample, "
          f"so (b)'s net step takes {1000 / rate['b'] - data_ms:.3f} ms")
    print(f"(c) our data path feeding (a)'s net: {rate['c']:8.0f} samples/s, {rate['c'] / rate['a']:.1f}x (a)")
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
