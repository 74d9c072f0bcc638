"""Score the stage-2 runs on the fixed test split and write docs/results.md and docs/ced.png.

Each run's last.pt (not the best epoch: choosing that on the test faces would
flatter it) is tested on lists/split/test.txt in original-image pixels.

    docs/experiments/stage2_experiments.sh && python docs/experiments/results_table.py
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from landmarks.checkpoint import load_model
from landmarks.data import FaceLandmarksDataset, read_list
from landmarks.metrics import cumulative_error_curve, interocular_normaliser, nme
from landmarks.net import count_parameters
from landmarks.train import LandmarkTask

# run name -> (what it shows, the flags after `--phase train --list-dir lists/split`)
ROWS = [
    ("stage1-split", "stage 1: plain net, MSE, Adam, no augmentation", "--config configs/stage1.toml", False),
    ("stage1-nonorm", "stage 1 without per-image normalization", "--config configs/stage1.toml --no-normalize", False),
    ("stage1-aug", "stage 1 + augmentation", "--config configs/stage1.toml --augment", False),
    ("stage1-aug-cosine", "stage 1 + augmentation + cosine schedule", "--config configs/stage1.toml --augment --schedule cosine", False),
    ("bn-mse", "batch norm + aug + warm-up/cosine, MSE", "--config configs/stage2_bn.toml --loss mse", False),
    ("bn-l1", "same, L1", "--config configs/stage2_bn.toml --loss l1", False),
    ("bn-smoothl1", "same, Smooth L1", "--config configs/stage2_bn.toml --loss smooth_l1", False),
    ("bn-wing", "same, Wing", "--config configs/stage2_bn.toml --loss wing", False),
    ("bn-wing-sgd", "same, Wing, SGD + momentum", "--config configs/stage2_bn.toml --optimizer sgd --lr 0.01 --grad-clip 10", False),
    ("bn-wing-adam-sgd", "same, Wing, Adam then SGD from epoch 40", "--config configs/stage2_bn.toml --sgd-after 40 --grad-clip 10", False),
    ("heatmap", "heatmap target (28x28, soft-argmax), Wing", "--config configs/stage2_heatmap.toml", False),
    ("mobilenet", "compact MobileNetV2-style net, Wing", "--config configs/stage2_mobilenet.toml", False),
    ("resnet18", "ResNet-18 body from scratch, Wing", "--config configs/stage2_resnet18.toml", False),
    ("stage2-split", "2x wide BN net + aug + Wing + cosine", "--config configs/stage2_regression.toml --no-test-flip", False),
    ("stage2-split", "**stage 2**: same, test-time flip averaging", "--config configs/stage2_regression.toml", True),
]
CED_RUNS = ["stage1-split", "stage1-aug", "bn-wing", "heatmap", "stage2-split +flip"]


def cpu_ms_per_face(models: list, rounds: int = 7, calls: int = 40) -> list[float]:
    """Per (model, config), the median call time of its calmest block. The models take turns,
    block by block, so a shared machine's busy spells fall on all of them alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    inputs = [torch.randn(1, c.channels, c.input_size, c.input_size) for _, c in models]
    best = [math.inf] * len(models)
    with torch.inference_mode():
        for (model, _), x in zip(models, inputs):
            for _ in range(10):
                model(x)
        for _ in range(rounds):
            for i, ((model, _), x) in enumerate(zip(models, inputs)):
                times = []
                for _ in range(calls):
                    start = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - start)
                best[i] = min(best[i], statistics.median(times))
    torch.set_num_threads(threads)
    return [t * 1000 for t in best]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="(default: %(default)s)")
    parser.add_argument("--test-list", type=Path, default=Path("lists/split/test.txt"), help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="(default: %(default)s)")
    args = parser.parse_args(argv)
    entries = read_list(args.test_list).entries
    truth = np.array([e.points for e in entries])
    table, models, curves = [], [], {}
    for name, what, flags, flip in ROWS:
        run = args.runs_dir / name
        if not (run / "last.pt").is_file():
            print(f"skipping {name}: no {run / 'last.pt'}")
            continue
        loaded = load_model(run / "last.pt")
        spec, config = loaded.spec, loaded.config
        dataset = FaceLandmarksDataset(entries, num_points=spec.num_points, size=config.input_size,
                                       channels=config.channels, normalize=config.normalize)
        task = LandmarkTask(spec, spec.codec(loaded.net))
        metrics, predictions = task.evaluate(loaded.net, dataset, torch.device("cpu"), test_flip=flip)
        model = spec.inference_model(loaded.net, flip)
        name = f"{name} +flip" if flip else name
        curves[name] = nme(predictions["points"], truth, interocular_normaliser(truth, spec.scheme.interocular))
        history = list(csv.DictReader(open(run / "history.csv")))
        minutes = sum(float(r["seconds"]) for r in history) / 60
        table.append((name, what, flags, metrics, count_parameters(model), minutes, len(history)))
        models.append((model.eval(), config))
        print(f"{name}: NME_box {metrics['nme_box']:.2f}%")
    table = [(*row[:5], ms, *row[5:]) for row, ms in zip(table, cpu_ms_per_face(models))]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Stage-2 results",
        "",
        f"All rows: trained on `lists/split/train.txt` ({sum(1 for _ in open(args.test_list.parent / 'train.txt'))} faces), "
        f"tested on `{args.test_list}` ({len(entries)} faces of images never seen in training), the 90/10 split by image "
        "with seed 0 of `../shared/course-data`. The model scored is each run's `last.pt`. Errors in original-image "
        "pixels, as defined in the course-data README. CPU ms/face: eager PyTorch, batch 1, one thread, the median "
        "call in the calmest of 7 blocks of 40, the models taking turns block by block (x86-64, 2 cores). Training time: one CPU thread, while another run used the other core.",
        "",
        "Made by `docs/experiments/stage2_experiments.sh` (each row: `python -m landmarks.detector --phase train "
        "--list-dir lists/split --run-name NAME` plus the flags shown) and `python docs/experiments/results_table.py`.",
        "",
        "| run | what | flags | NME_box % | NME_io % | FR@0.10 % | AUC@0.10 | params | CPU ms/face | epochs | train min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, what, flags, m, params, ms, minutes, epochs in table:
        lines.append(f"| {name} | {what} | `{flags}` | {m['nme_box']:.2f} | {m['nme_io']:.2f} | {m['fr_io@0.1']:.1f} | "
                     f"{m['auc_io@0.1']:.3f} | {params / 1e6:.2f} M | {ms:.2f} | {epochs} | {minutes:.1f} |")
    lines += ["", "![Cumulative error curves](ced.png)", ""]
    (args.out / "results.md").write_text("\n".join(lines))
    (args.out / "results.json").write_text(json.dumps(
        {name: {**m, "params": params, "cpu_ms_per_face": ms, "train_minutes": minutes, "flags": flags}
         for name, _, flags, m, params, ms, minutes, _ in table}, indent=2) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for name in CED_RUNS:
        if name in curves:
            xs, ys = cumulative_error_curve(curves[name], 0.10)
            ax.plot(xs * 100, ys * 100, label=f"{name} (AUC {np.trapezoid(ys, xs) / 0.1:.3f})")
    ax.set_xlabel("NME_io (%)")
    ax.set_ylabel("faces with NME_io at most x (%)")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"Cumulative error on {len(entries)} test faces")
    fig.tight_layout()
    fig.savefig(args.out / "ced.png")
    print(f"wrote {args.out / 'results.md'} and {args.out / 'ced.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
