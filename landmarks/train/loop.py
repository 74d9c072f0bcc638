"""The one training loop: epochs of steps, validation, checkpoints, the run record.

What is learned (landmarks on crops, faces in pictures) is the ``task``'s business
(:mod:`landmarks.train.tasks`); the loop handles the optimizer and schedule, mixed
precision, several processes, resuming, the run folder and the log.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..checkpoint import read_checkpoint, save_checkpoint
from ..errors import TrainingDiverged, UsageError
from ..spec import ModelSpec
from .optim import base_lr, lr_factor, make_optimizer, optimizer_kind
from .record import RunRecord, format_duration
from .runtime import Distributed

log = logging.getLogger("landmarks")


def train_one_epoch(net, dataset, task, optimizer, epoch: int, device, ranks: Distributed,
                    max_steps: int = 0, progress: bool = True, averaged=None) -> dict:
    """One pass over ``dataset``; returns the task's epoch figures (mean losses, accuracies).
    ``averaged``: an AveragedModel of the weights, updated after each step."""
    config = task.config
    net.train()
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    steps = dataset.steps(config.batch_size, ranks.world_size)
    if max_steps:
        steps = min(steps, max_steps)
    sums: dict[str, float] = {}
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
            out = task.step(net, batch, device)
        if not torch.isfinite(out.loss):
            # The point losses are in crop pixels while nets output shares of the crop, so gradients
            # come scaled by the crop size: Adam is indifferent to that, plain SGD needs clipping.
            hint = "a lower --lr" if config.grad_clip else "--grad-clip 10 or a lower --lr"
            raise TrainingDiverged(f"loss became {float(out.loss.detach())} at epoch {epoch + 1}, step {step + 1}; "
                                   f"try {hint}")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(net.module if hasattr(net, "module") else net)
        for key, value in out.sums.items():
            sums[key] = sums.get(key, 0.0) + value
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss'] / max(sums['samples'], 1):.4g}")
    if bar:
        bar.close()
    return task.epoch_figures(ranks.sum(sums, device))


def weight_average(model, decay: float):
    """An exponential moving average of ``model``'s weights and batch-norm statistics, or None
    for ``decay`` 0."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass
class FitResult:
    run_dir: Path
    best: dict
    last: dict
    epochs_run: int


def fit(model, spec: ModelSpec, task, train_set, val_set, run_dir: Path, device, *, resume: bool = False,
        max_steps: int = 0, progress: bool = True, ranks: Distributed | None = None,
        extra_state: dict | None = None) -> FitResult:
    """Train for ``config.epochs`` epochs, validating after each; writes the run folder."""
    config = spec.config
    ranks = ranks or Distributed()
    run_dir = Path(run_dir)
    model.to(device)
    record = RunRecord(run_dir, ranks.main, resume, task.plotted)
    # Without a validation list the best epoch is the one with the lowest training loss.
    best_key = f"val_{task.best_metric}" if val_set is not None else "train_loss"
    # Higher is better for some metrics (AP); the comparisons below work on the signed value.
    sign = -1.0 if val_set is not None and task.best_mode == "max" else 1.0
    start_epoch, best = 0, {"metric": best_key, "value": float("inf")}
    kind = optimizer_kind(config, 0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(kind, trainable, config, base_lr(config, kind))
    # With --ema the averaged weights are the ones validated and saved as the model; the
    # training weights travel beside them so that a resumed run goes on from both.
    averaged = weight_average(model, config.ema)
    kept = averaged.module if averaged is not None else model
    if resume:
        payload = read_checkpoint(run_dir / "last.pt")
        if averaged is not None:
            if "training_weights" not in payload:
                raise UsageError(f"{run_dir / 'last.pt'} was trained without --ema; resume it without")
            model.load_state_dict(payload["training_weights"])
            kept.load_state_dict(payload["model"])
            averaged.n_averaged.fill_(1)
        else:
            model.load_state_dict(payload["model"])
        start_epoch = payload["epoch"] + 1
        best = payload.get("best", best)
        kind = payload.get("optimizer_kind", kind)
        optimizer = make_optimizer(kind, trainable, config, base_lr(config, kind))
        optimizer.load_state_dict(payload["optimizer"])
        task.load_state_dict(payload.get("task", {}))
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
            if config.light_epochs and epoch == max(start_epoch, config.epochs - config.light_epochs):
                train_set.set_augment(config.augment.light())
                log.info("epoch %d: lighter augmentation for the last %d epochs", epoch + 1, config.epochs - epoch)
            lr = base_lr(config, kind) * lr_factor(config, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            epoch_start = time.time()
            train = train_one_epoch(net, train_set, task, optimizer, epoch, device, ranks, max_steps, progress,
                                    averaged)
            for name in frozen_modes:  # frozen layers keep their batch-norm statistics
                getattr(model, name).eval()
            row = {"epoch": epoch + 1, "lr": lr, **{f"train_{k}": v for k, v in train.items()}}
            notes = []
            if val_set is not None and ranks.main:
                metrics, _ = task.evaluate(kept, val_set, device, max_steps=max_steps)
                row.update({f"val_{k}": v for k, v in metrics.items() if k != "faces"})
                notes = task.after_validation(epoch, metrics)
            if ranks.world_size > 1:  # every rank follows rank 0's decisions (auxiliary tasks stopped)
                state = [task.state_dict()]
                dist.broadcast_object_list(state, src=0)
                task.load_state_dict(state[0])
            row["seconds"] = time.time() - epoch_start
            done = epoch + 1 - start_epoch
            eta = (time.time() - started) / done * (config.epochs - epoch - 1)
            if ranks.main:
                log.info("epoch %d/%d  lr %.3g  train loss %.4g%s  (%s, eta %s)", epoch + 1, config.epochs, lr,
                         train["loss"], task.describe(row), format_duration(row["seconds"]), format_duration(eta))
                for note in notes:
                    log.info("%s", note)
                record.add(row)
                score = sign * row.get(best_key, sign * float("inf"))
                state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "optimizer_kind": kind,
                         "scheduler": {"schedule": config.schedule, "epoch": epoch, "lr": lr},
                         "rng": {"torch": torch.get_rng_state()}, "task": task.state_dict(), **(extra_state or {})}
                if averaged is not None:
                    state["training_weights"] = model.state_dict()
                if score <= best["value"]:
                    best = {"metric": best_key, "value": score, **row}
                    save_checkpoint(run_dir / "best.pt", kept, spec, best=best, **state)
                save_checkpoint(run_dir / "last.pt", kept, spec, best=best, **state)
                (run_dir / "summary.json").write_text(json.dumps({"best": best, "last": row}, indent=2) + "\n")
            last = row
            if ranks.world_size > 1:
                dist.barrier()
    finally:
        record.close()
    return FitResult(run_dir, best, last, config.epochs - start_epoch)
