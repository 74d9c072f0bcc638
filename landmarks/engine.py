"""Training and evaluation loops, shared by every phase."""

from __future__ import annotations

import csv
import ctypes
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import read_checkpoint, save_checkpoint
from .config import DEFAULT_LR, Config
from .data import FaceLandmarksDataset
from .errors import TrainingDiverged, UsageError
from .files import atomic_write
from .losses import point_loss, stage3_loss
from .metrics import landmark_metrics
from .net import split_output

log = logging.getLogger("landmarks")
# A crop is called a face when the classifier's face probability reaches this.
FACE_THRESHOLD = 0.5


# ---------------------------------------------------------------- devices and ranks

def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back.

    A training step frees and re-allocates the same activation buffers, megabytes
    each; by default glibc returns them to the OS and the next step page-faults
    them back in (about 4,000 faults a step for stage 1). Returns False where the
    C library is not glibc, which changes nothing.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 256 << 20) and mallopt(m_trim_threshold, 256 << 20))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"--device must be cpu, cuda or auto, got {name!r}")
    return torch.device(name)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: dict, device) -> dict:
        """Add numeric ``values`` across ranks."""
        if self.world_size == 1:
            return values
        keys = sorted(values)
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return dict(zip(keys, tensor.tolist()))


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun set up (WORLD_SIZE > 1), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


# ---------------------------------------------------------------- optimisation

def optimizer_kind(config: Config, epoch: int) -> str:
    if config.sgd_after and epoch >= config.sgd_after:
        return "sgd"
    return config.optimizer


def make_optimizer(kind: str, params, config: Config, base_lr: float) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter, instead of a dozen small ops per tensor.
    if kind == "sgd":
        return torch.optim.SGD(params, lr=base_lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, fused=True)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=base_lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.Adam(params, lr=base_lr, weight_decay=config.weight_decay, fused=True)


def lr_factor(config: Config, epoch: int) -> float:
    """Learning-rate multiplier for 0-based ``epoch``: warm-up, then the schedule."""
    factor = 1.0
    if epoch < config.warmup_epochs:
        factor = (epoch + 1) / (config.warmup_epochs + 1)
    if config.schedule == "step":
        factor *= config.gamma ** (epoch // max(config.step_size, 1))
    elif config.schedule == "cosine":
        factor *= 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    return factor


def base_lr(config: Config, kind: str) -> float:
    # Switching from Adam to SGD uses SGD's own default rate, scaled like the chosen one.
    if kind != config.optimizer:
        return DEFAULT_LR[kind] * config.learning_rate / DEFAULT_LR[config.optimizer]
    return config.learning_rate


# ---------------------------------------------------------------- one step, one epoch

@dataclass
class Step:
    """What one forward pass gives, with the losses and counts for the log."""

    loss: torch.Tensor
    points: torch.Tensor  # [B, 21, 2] crop pixels
    face_prob: torch.Tensor | None  # [B]
    cls_loss: float = 0.0
    landmark_loss: float = 0.0


def forward_step(model, batch: dict, config: Config, device) -> Step:
    image = batch["image"].to(device, non_blocking=True)
    if not image.is_contiguous(memory_format=torch.channels_last):  # .to(memory_format=...) would always copy
        image = image.contiguous(memory_format=torch.channels_last)
    target = batch["points"].to(device, non_blocking=True)
    is_face = batch["is_face"].to(device, non_blocking=True)
    points, logits = split_output(model(image))
    points = points.float().reshape(-1, target.shape[1], 2) * config.input_size
    logits = None if logits is None else logits.float()
    loss_fn = point_loss(config.loss, config.wing_width, config.wing_curvature)
    if logits is None:
        loss = loss_fn(points, target)
        return Step(loss, points, None, 0.0, float(loss.detach()))
    per_sample = loss_fn(points, target, reduction="none")
    weights = torch.tensor(config.class_weights, dtype=torch.float32)
    total, cls, landmark = stage3_loss(per_sample, logits, is_face, config.cls_weight,
                                       config.landmark_weight, weights)
    prob = torch.softmax(logits.detach().float(), 1)[:, 1]
    return Step(total, points, prob, float(cls.detach()), float(landmark.detach()))


def class_counts(face_prob, is_face, threshold: float = FACE_THRESHOLD) -> dict:
    """Correct/total counts for faces and non-faces (summed over batches, then divided)."""
    predicted = face_prob >= threshold
    is_face = is_face.to(predicted.device)
    return {"face_correct": int((predicted & is_face).sum()), "faces": int(is_face.sum()),
            "nonface_correct": int((~predicted & ~is_face).sum()), "nonfaces": int((~is_face).sum())}


def accuracies(counts: dict) -> dict:
    total = counts["faces"] + counts["nonfaces"]
    if not total:
        return {}
    return {"acc": (counts["face_correct"] + counts["nonface_correct"]) / total,
            "acc_face": counts["face_correct"] / counts["faces"] if counts["faces"] else float("nan"),
            "acc_nonface": counts["nonface_correct"] / counts["nonfaces"] if counts["nonfaces"] else float("nan")}


def train_one_epoch(model, dataset: FaceLandmarksDataset, config: Config, optimizer, epoch: int,
                    device, ranks: Distributed, max_steps: int = 0, progress: bool = True) -> dict:
    """One pass over ``dataset``; returns mean losses (and accuracies when classifying)."""
    model.train()
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    steps = dataset.steps(config.batch_size, ranks.world_size)
    if max_steps:
        steps = min(steps, max_steps)
    sums = {"loss": 0.0, "cls_loss": 0.0, "landmark_loss": 0.0, "samples": 0,
            "face_correct": 0, "faces": 0, "nonface_correct": 0, "nonfaces": 0}
    bar = None
    if progress and ranks.main:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                   leave=False, dynamic_ncols=True, disable=None)
    batches = dataset.batches(config.batch_size, shuffle=True, generator=generator,
                              rank=ranks.rank, world_size=ranks.world_size)
    # bfloat16 needs no loss scaling; on a CPU autocast would only slow these small nets.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")
    for step, batch in enumerate(batches):
        if step >= steps:
            break
        with autocast:
            out = forward_step(model, batch, config, device)
        if not torch.isfinite(out.loss):
            raise TrainingDiverged(f"loss became {float(out.loss.detach())} at epoch {epoch + 1}, step {step + 1}; "
                                   "try a lower --lr or --grad-clip")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        n = len(batch["index"])
        sums["loss"] += float(out.loss.detach()) * n
        sums["cls_loss"] += out.cls_loss * n
        sums["landmark_loss"] += out.landmark_loss * n
        sums["samples"] += n
        if out.face_prob is not None:
            for key, value in class_counts(out.face_prob, batch["is_face"]).items():
                sums[key] += value
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss'] / sums['samples']:.4g}")
    if bar:
        bar.close()
    sums = ranks.sum(sums, device)
    result = {"loss": sums["loss"] / max(sums["samples"], 1)}
    if config.classify:
        result.update(cls_loss=sums["cls_loss"] / max(sums["samples"], 1),
                      landmark_loss=sums["landmark_loss"] / max(sums["samples"], 1),
                      **accuracies(sums))
    return result


@torch.no_grad()
def predict_batches(model, dataset: FaceLandmarksDataset, config: Config, device,
                    batch_size: int = 256, max_steps: int = 0):
    """Run the model over a dataset -> (points [N, 21, 2] crop px, face prob [N] or None, loss sums)."""
    model.eval()
    points, probs = [], []
    loss_sum, cls_sum, landmark_sum, seen = 0.0, 0.0, 0.0, 0
    for step, batch in enumerate(dataset.batches(batch_size)):
        if max_steps and step >= max_steps:
            break
        out = forward_step(model, batch, config, device)
        n = len(batch["index"])
        loss_sum += float(out.loss) * n
        cls_sum += out.cls_loss * n
        landmark_sum += out.landmark_loss * n
        seen += n
        points.append(out.points.cpu())
        if out.face_prob is not None:
            probs.append(out.face_prob.cpu())
    points = torch.cat(points).double().numpy() if points else np.zeros((0, 21, 2))
    prob = torch.cat(probs).numpy() if probs else None
    return points, prob, {"loss": loss_sum / max(seen, 1), "cls_loss": cls_sum / max(seen, 1),
                          "landmark_loss": landmark_sum / max(seen, 1), "samples": seen}


def crop_to_box_pixels(points_crop: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """[N, K, 2] points in a ``size`` crop -> pixels of the original image, relative to the box."""
    scale = (boxes[:, 2:] - boxes[:, :2]) / size
    return points_crop * scale[:, None, :]


def evaluate(model, dataset: FaceLandmarksDataset, config: Config, device, max_steps: int = 0,
             face_threshold: float = FACE_THRESHOLD) -> tuple[dict, dict]:
    """Average loss and accuracy metrics (original-image pixels) -> (metrics, predictions).

    predictions: ``points`` [N, 21, 2] relative to each crop box in image pixels,
    ``face_prob`` [N] or None, ``indices`` [N] into ``dataset``.
    """
    points, prob, sums = predict_batches(model, dataset, config, device, max_steps=max_steps)
    n = len(points)
    boxes = dataset.boxes[:n].numpy()
    is_face = dataset.is_face[:n].numpy()
    pred = crop_to_box_pixels(points, boxes, config.input_size)
    truth = np.array([e.points if e.is_face else np.zeros((21, 2)) for e in dataset.entries[:n]])
    metrics = {"loss": sums["loss"]}
    metrics.update(landmark_metrics(pred[is_face], truth[is_face]))
    if prob is not None:
        metrics.update(cls_loss=sums["cls_loss"], landmark_loss=sums["landmark_loss"])
        metrics.update(accuracies(class_counts(torch.from_numpy(prob), torch.from_numpy(is_face),
                                               face_threshold)))
    return metrics, {"points": pred, "face_prob": prob, "indices": np.arange(n)}


# ---------------------------------------------------------------- the run folder

class RunRecord:
    """Log file, TensorBoard scalars, loss history (CSV) and loss-curve PNG of a run."""

    def __init__(self, run_dir: Path, active: bool, resume: bool):
        self.run_dir, self.active = Path(run_dir), active
        self.history: list[dict] = []
        self.writer = None
        self.handler = None
        if not active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.run_dir / "history.csv").is_file():
            with open(self.run_dir / "history.csv") as handle:
                self.history = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                                for row in csv.DictReader(handle)]
        self.handler = logging.FileHandler(self.run_dir / "train.log")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(self.handler)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time
            log.warning("tensorboard is not installed; no TensorBoard scalars")

    def add(self, row: dict) -> None:
        if not self.active:
            return
        self.history = [r for r in self.history if int(r["epoch"]) < int(row["epoch"])] + [row]
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        with open(self.run_dir / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        if self.writer:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    group = "train" if key.startswith("train_") else "val" if key.startswith("val_") else "misc"
                    self.writer.add_scalar(f"{group}/{key.split('_', 1)[-1] if group != 'misc' else key}",
                                           value, int(row["epoch"]))
            self.writer.flush()
        plot_history(self.history, self.run_dir / "loss.png")

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.handler:
            log.removeHandler(self.handler)
            self.handler.close()


def plot_history(history: list[dict], out_png: Path) -> None:
    """Train and validation loss per epoch, validation NME_box on a second axis, and for
    stage 3 a second panel with the accuracy on faces and on non-faces."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    accuracy_keys = [k for k in ("val_acc_face", "val_acc_nonface", "train_acc_face", "train_acc_nonface")
                     if any(k in r for r in history)]
    panels = 2 if accuracy_keys else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4), dpi=100, squeeze=False)
    ax = axes[0, 0]
    ax.plot(epochs, [r.get("train_loss", np.nan) for r in history], label="train loss", color="tab:blue")
    if any("val_loss" in r for r in history):
        ax.plot(epochs, [r.get("val_loss", np.nan) for r in history], label="validation loss", color="tab:orange")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    if any("val_nme_box" in r for r in history):
        twin = ax.twinx()
        twin.plot(epochs, [r.get("val_nme_box", np.nan) for r in history], label="validation NME_box (%)",
                  color="tab:green", linestyle="--")
        twin.set_ylabel("NME_box (%)")
        more = twin.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    ax.legend(lines, labels, loc="upper right")
    if accuracy_keys:
        acc = axes[0, 1]
        for key in accuracy_keys:
            acc.plot(epochs, [r.get(key, np.nan) for r in history], label=key.replace("_", " "),
                     linestyle="-" if key.startswith("val") else ":")
        acc.set_xlabel("epoch")
        acc.set_ylabel("accuracy")
        acc.grid(alpha=0.3)
        acc.legend(loc="lower right")
    fig.tight_layout()
    with atomic_write(out_png) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# ---------------------------------------------------------------- fit

@dataclass
class FitResult:
    run_dir: Path
    best: dict
    last: dict
    epochs_run: int


def fit(model, config: Config, train_set: FaceLandmarksDataset, val_set: FaceLandmarksDataset | None,
        run_dir: Path, device, *, resume: bool = False, max_steps: int = 0, progress: bool = True,
        ranks: Distributed | None = None, extra_state: dict | None = None) -> FitResult:
    """Train for ``config.epochs`` epochs, validating after each; writes the run folder."""
    ranks = ranks or Distributed()
    run_dir = Path(run_dir)
    model.to(device)
    record = RunRecord(run_dir, ranks.main, resume)
    # Without a validation list the best epoch is the one with the lowest training loss.
    best_key = "val_nme_box" if val_set is not None else "train_loss"
    start_epoch, best = 0, {"metric": best_key, "value": float("inf")}
    kind = optimizer_kind(config, 0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(kind, trainable, config, base_lr(config, kind))
    if resume:
        payload = read_checkpoint(run_dir / "last.pt")
        model.load_state_dict(payload["model"])
        start_epoch = payload["epoch"] + 1
        best = payload.get("best", best)
        kind = payload.get("optimizer_kind", kind)
        optimizer = make_optimizer(kind, trainable, config, base_lr(config, kind))
        optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["rng"]["torch"])
        log.info("resuming %s at epoch %d of %d", run_dir, start_epoch + 1, config.epochs)
    net = model
    if ranks.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    frozen_modes = {name: m.training for name, m in model.named_children()
                    if not any(p.requires_grad for p in m.parameters()) and any(True for _ in m.parameters())}
    started, last = time.time(), {}
    try:
        for epoch in range(start_epoch, config.epochs):
            wanted = optimizer_kind(config, epoch)
            if wanted != kind:
                kind = wanted
                optimizer = make_optimizer(kind, trainable, config, base_lr(config, kind))
                log.info("epoch %d: switching to %s", epoch + 1, kind)
            lr = base_lr(config, kind) * lr_factor(config, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            epoch_start = time.time()
            train = train_one_epoch(net, train_set, config, optimizer, epoch, device, ranks, max_steps, progress)
            for name in frozen_modes:  # frozen layers keep their batch-norm statistics
                getattr(model, name).eval()
            row = {"epoch": epoch + 1, "lr": lr, **{f"train_{k}": v for k, v in train.items()}}
            if val_set is not None and ranks.main:
                metrics, _ = evaluate(model, val_set, config, device, max_steps=max_steps)
                row.update({f"val_{k}": v for k, v in metrics.items() if k != "faces"})
            row["seconds"] = time.time() - epoch_start
            done = epoch + 1 - start_epoch
            eta = (time.time() - started) / done * (config.epochs - epoch - 1)
            if ranks.main:
                log.info("epoch %d/%d  lr %.3g  train loss %.4g%s  (%s, eta %s)", epoch + 1, config.epochs, lr,
                         train["loss"], describe_validation(row), format_duration(row["seconds"]),
                         format_duration(eta))
                record.add(row)
                score = row.get(best_key, float("inf"))
                state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "optimizer_kind": kind,
                         "scheduler": {"schedule": config.schedule, "epoch": epoch, "lr": lr},
                         "rng": {"torch": torch.get_rng_state()}, **(extra_state or {})}
                if score <= best["value"]:
                    best = {"metric": best_key, "value": score, **row}
                    save_checkpoint(run_dir / "best.pt", model, config, best=best, **state)
                save_checkpoint(run_dir / "last.pt", model, config, best=best, **state)
                (run_dir / "summary.json").write_text(json.dumps({"best": best, "last": row}, indent=2) + "\n")
            last = row
            if ranks.world_size > 1:
                dist.barrier()
    finally:
        record.close()
    return FitResult(run_dir, best, last, config.epochs - start_epoch)


def describe_validation(row: dict) -> str:
    if "val_loss" not in row:
        return ""
    text = f"  val loss {row['val_loss']:.4g}  NME_box {row.get('val_nme_box', float('nan')):.2f}%"
    text += f"  NME_io {row.get('val_nme_io', float('nan')):.2f}%"
    if "val_acc" in row:
        text += f"  acc {row['val_acc']:.3f} (face {row['val_acc_face']:.3f}, non-face {row['val_acc_nonface']:.3f})"
    return text
