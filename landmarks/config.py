"""Training configuration: defaults in code, presets in configs/, flags on top."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .augment import AugmentSettings
from .errors import UsageError

DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}


@dataclass
class Config:
    """Everything that defines a training run (and so a model's preprocessing)."""

    net: str = "stage1"
    channels: int = 1
    input_size: int = 112
    normalize: bool = True  # per-image mean/std normalization
    classify: bool = False  # face/non-face branch (stage 3)
    loss: str = "mse"
    wing_width: float = 10.0  # Wing loss w, in pixels of the crop
    wing_curvature: float = 2.0  # Wing loss epsilon
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR)
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"  # none | step | cosine
    step_size: int = 10
    gamma: float = 0.1
    warmup_epochs: int = 0
    sgd_after: int = 0  # switch from Adam to SGD after this epoch (0: never)
    epochs: int = 40
    batch_size: int = 64
    seed: int = 0
    grad_clip: float = 0.0  # max gradient norm (0: off)
    amp: bool = False  # bfloat16 autocast on CUDA
    test_flip: bool = False  # test and predict average the crop and its mirror image
    cls_weight: float = 1.0  # a: weight of the classification loss
    landmark_weight: float = 1.0  # b: weight of the landmark loss
    class_weights: tuple[float, float] = (1.0, 1.0)  # cross-entropy weights (non-face, face)
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def config_from_dict(values: dict, base: Config | None = None, where: str = "config") -> Config:
    """A new Config: ``base`` (or the defaults) with ``values`` on top; unknown keys are errors."""
    values = dict(values)
    unknown = set(values) - _field_names(Config)
    if unknown:
        raise UsageError(f"{where}: unknown setting {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted(_field_names(Config)))}")
    base = base or Config()
    augment = values.pop("augment", None)
    if augment is not None:
        bad = set(augment) - _field_names(AugmentSettings)
        if bad:
            raise UsageError(f"{where}: unknown augment setting {', '.join(sorted(bad))}; "
                             f"valid: {', '.join(sorted(_field_names(AugmentSettings)))}")
        values["augment"] = dataclasses.replace(base.augment, **augment)
    if "class_weights" in values:
        values["class_weights"] = tuple(float(v) for v in values["class_weights"])
    config = dataclasses.replace(base, **values)
    validate(config, where)
    return config


def validate(config: Config, where: str = "config") -> None:
    from .losses import LOSSES
    from .net import NETS

    choices = {"net": NETS, "loss": LOSSES, "optimizer": DEFAULT_LR,
               "schedule": ("none", "step", "cosine")}
    for name, valid in choices.items():
        if getattr(config, name) not in valid:
            raise UsageError(f"{where}: {name} {getattr(config, name)!r} is not one of "
                             f"{', '.join(sorted(valid))}")
    if config.epochs < 1 or config.batch_size < 1:
        raise UsageError(f"{where}: epochs and batch_size must be at least 1")
    if len(config.class_weights) != 2:
        raise UsageError(f"{where}: class_weights takes two numbers (non-face, face)")


def load_config_file(path, base: Config | None = None) -> Config:
    """Read a preset (.toml or .json; a run folder's config.json works too)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(path.read_text())
        else:
            values = json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not a valid config file ({error})") from None
    return config_from_dict(values, base, str(path))
