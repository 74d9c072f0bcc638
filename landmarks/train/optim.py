"""The optimizer and the learning-rate schedule."""

from __future__ import annotations

import math

import torch

from ..config import DEFAULT_LR, Config


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
