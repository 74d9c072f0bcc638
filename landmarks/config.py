"""Training configuration: defaults in code, presets in configs/, flags on top.

Each setting is declared once, as a field of :class:`Config` (or :class:`AugmentSettings`)
with its help text; :func:`add_config_flags` makes the command-line flags from them. The
config also holds what a model needs at inference (scheme, crop expansion, input size,
channels, normalisation, face threshold), so it travels in every checkpoint and export.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .data.augment import STANDARD_AUGMENT, AugmentSettings
from .data.pictures import ZOOM_RANGE
from .errors import UsageError
from .geometry import EXPAND_RATIO
from .net import NETS
from .net.faces import FACE_NETS
from .net.losses import LOSSES

DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}
TASKS = ("landmarks", "faces")
SCHEDULES = ("none", "step", "cosine")


def setting(default, help: str, *, choices=None, default_text: str | None = None, flag: bool = True,
            metavar: str | None = None):
    """A settings field with its help text; ``choices`` names a fixed set or a registry key;
    ``flag``: whether the command line gets a flag for it."""
    return field(default=default, metadata={"help": help, "choices": choices, "default_text": default_text,
                                            "flag": flag, "metavar": metavar})


@dataclass
class Config:
    """Everything that defines a training run, and so a model's preprocessing."""

    task: str = setting("landmarks", "what the net learns: landmarks on face crops, or faces (boxes) in whole "
                        "pictures", choices=TASKS)
    scheme: str = setting("", "landmark scheme: course21, ibug68, wflw98, five or a scheme file (.toml); "
                          "finetune with another scheme grows a new head", default_text="as the lists say")
    expand: float | None = setting(None, "face box expansion on every side that crops are cut with",
                                   default_text="as the lists say, else 0.25")
    net: str = setting("stage1", "net to train", choices="net")
    head: str = setting("", "landmark head, and so how its output is read: regression, heatmap_offset (PIPNet-style), "
                        "simcc (coordinate classification), simcc_map (the same, each point read from its own "
                        "feature map, as RTMPose), simcc_fine (simcc_map on maps of twice the resolution) or simcc_gau "
                        "(simcc_map with RTMPose's attention between the points)",
                        default_text="the net's own")
    channels: int = setting(1, "1 = grayscale, 3 = RGB", choices=(1, 3))
    input_size: int = setting(112, "crop size in pixels (faces: the picture's longer side)")
    normalize: bool = setting(True, "per-image mean/std normalization")
    classify: bool = setting(False, "add the face/non-face branch, for stage-3 lists")
    loss: str = setting("mse", "landmark loss", choices="loss")
    simcc_features: int = setting(256, "simcc_map, simcc_fine and simcc_gau heads: length of the vector each point's "
                                  "map is read into, which the x and y bin classifiers read")
    simcc_sigma: float = setting(1.5, "simcc head: spread of the Gaussian each coordinate is taught as, in bins "
                                 "(two a pixel of the crop)")
    simcc_coord_weight: float = setting(0.0, "simcc heads: weight of --loss on the decoded points, added to the "
                                        "bins' cross entropy")
    wing_width: float = setting(10.0, "Wing loss w, in pixels of the crop")
    wing_curvature: float = setting(2.0, "Wing loss epsilon")
    optimizer: str = setting("adam", "optimizer", choices=tuple(DEFAULT_LR))
    lr: float | None = setting(None, "learning rate", default_text="1e-3 for adam, 1e-2 for sgd; finetune: a "
                               "tenth of the model's")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(0.0, "weight decay")
    schedule: str = setting("none", "learning-rate schedule", choices=SCHEDULES)
    step_size: int = setting(10, "epochs between step decays")
    gamma: float = setting(0.1, "step decay factor")
    warmup_epochs: int = setting(0, "linear warm-up epochs")
    sgd_after: int = setting(0, "switch Adam to SGD after this epoch, 0 never")
    epochs: int = setting(40, "epochs")
    batch_size: int = setting(64, "batch size")
    seed: int = setting(0, "fixes the split and the training run")
    grad_clip: float = setting(0.0, "max gradient norm, 0 off")
    light_epochs: int = setting(0, "train the last N epochs with lighter augmentation, closer to test crops: no "
                                "erasing, occlusion, low resolution or edge cuts, half the rotation, shift, zoom "
                                "and tilt; 0 off")
    ema: float = setting(0.0, "keep an exponential moving average of the weights with this decay a step (e.g. "
                         "0.999); validation and the saved model use it; 0 off")
    amp: bool = setting(False, "bfloat16 autocast when training on CUDA")
    test_flip: bool = setting(False, "test, predict and export average each crop with its mirror image")
    face_threshold: float = setting(0.5, "a crop is a face when the face branch's probability reaches this; for a "
                                    "face detector, a candidate when its score does")
    cls_weight: float = setting(1.0, "a, weight of the classification loss")
    landmark_weight: float = setting(1.0, "b, weight of the landmark loss")
    class_weights: tuple[float, float] = setting((1.0, 1.0), "cross-entropy weights non-face,face")
    teacher: str = setting("", "distillation: a landmark model (checkpoint or shipped name) of the run's scheme, "
                           "or of one it derives from, whose points on the training crops are a second "
                           "target", default_text="none")
    distill_weight: float = setting(1.0, "weight of the loss against the teacher's points")
    aux: tuple[str, ...] = setting((), "attributes to learn beside the landmarks (TCDCN), each name or "
                                   "name=weight, e.g. yaw or yaw=0.5,smile", default_text="none")
    aux_weight: float = setting(0.5, "weight of an auxiliary attribute's loss where --aux gives none")
    aux_patience: int = setting(5, "an auxiliary task stops (weight 0) after this many epochs without a "
                                "lower validation loss of its own; 0 never")
    pose_balance: float = setting(0.0, "draw training faces by head yaw (frontal <30°, 30-60°, 60°+): a face of a "
                                  "bin holding the share f of the faces weighs f^-P; 0 draws each face once an "
                                  "epoch, 1 each bin alike")
    eye_weight: float = setting(0.0, "weigh each face's landmark loss by (mean eye distance / its eye distance)^P, "
                                "capped at 4, as NME_io weighs its errors: a turned head's eyes are close; 0 off")
    hard_weight: float = setting(0.0, "weigh each face's landmark loss by (its loss / the batch's mean)^P, capped "
                                 "at 4: the faces the net gets most wrong count more, as the failure rate counts "
                                 "them; 0 off")
    picture_zoom: float = setting(ZOOM_RANGE[1], "a face detector's training crops: the largest zoom against the "
                                  f"picture fitted to the crop (the smallest is {ZOOM_RANGE[0]}); larger shows it "
                                  "close-ups")
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def crop_expand(self) -> float:
        return self.expand if self.expand is not None else EXPAND_RATIO

    def aux_weights(self) -> dict[str, float]:
        """--aux as {attribute: loss weight}."""
        weights = {}
        for item in self.aux:
            name, _, weight = item.partition("=")
            try:
                weights[name.strip()] = float(weight) if weight else self.aux_weight
            except ValueError:
                raise UsageError(f"--aux: {item!r} is not name or name=weight") from None
        return weights

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _coerce(cls, name: str, value):
    """TOML and JSON give lists for tuples."""
    kind = typing.get_type_hints(cls)[name]
    if typing.get_origin(kind) is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    return value


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
    values = {name: _coerce(Config, name, value) for name, value in values.items()}
    if "class_weights" in values:
        values["class_weights"] = tuple(float(v) for v in values["class_weights"])
    config = dataclasses.replace(base, **values)
    validate(config, where)
    return config


def registry_choices() -> dict[str, list[str]]:
    """The sets that a registry defines: nets (landmark nets and face detectors) and losses."""
    return {"net": sorted([*NETS, *FACE_NETS]), "loss": LOSSES.names()}


def validate(config: Config, where: str = "config") -> None:
    registries = registry_choices()
    for item in dataclasses.fields(Config):
        choices = item.metadata.get("choices")
        if choices is None:
            continue
        valid = registries[choices] if isinstance(choices, str) else choices
        if getattr(config, item.name) not in valid:
            raise UsageError(f"{where}: {item.name} {getattr(config, item.name)!r} is not one of "
                             f"{', '.join(str(v) for v in valid)}")
    if (config.task == "faces") != (config.net in FACE_NETS):
        wanted = "a face detector net" if config.task == "faces" else "a landmark net"
        raise UsageError(f"{where}: task {config.task} needs {wanted}; net {config.net!r} is not one")
    if config.epochs < 1 or config.batch_size < 1 or config.simcc_features < 1:
        raise UsageError(f"{where}: epochs, batch_size and simcc_features must be at least 1")
    if len(config.class_weights) != 2:
        raise UsageError(f"{where}: class_weights takes two numbers (non-face, face)")
    if config.expand is not None and config.expand < 0:
        raise UsageError(f"{where}: expand must be 0 or more, got {config.expand}")
    if config.picture_zoom < ZOOM_RANGE[0]:
        raise UsageError(f"{where}: picture_zoom must be at least {ZOOM_RANGE[0]}, the smallest zoom, "
                         f"got {config.picture_zoom}")
    if not 0.0 <= config.face_threshold <= 1.0:
        raise UsageError(f"{where}: face_threshold must be between 0 and 1, got {config.face_threshold}")
    config.aux_weights()


def load_config_file(path, base: Config | None = None, _seen: tuple = ()) -> Config:
    """Read a preset (.toml or .json; a run folder's config.json works too).

    A preset may name another as ``base = "file.toml"`` (relative to its own folder):
    the base is read first and this preset's settings go on top.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    if path.resolve() in _seen:
        raise UsageError(f"{path}: presets include each other in a circle")
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(path.read_text())
        else:
            values = json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not a valid config file ({error})") from None
    parent = values.pop("base", None)
    if parent is not None:
        base = load_config_file(path.parent / parent, base, _seen + (path.resolve(),))
    return config_from_dict(values, base, str(path))


# ---------------------------------------------------------------- flags from fields

def _flag_type(kind):
    """The argparse type of a field's annotation (Optional unwrapped)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    return kind


def _default_text(item: dataclasses.Field, default) -> str:
    if item.metadata.get("default_text"):
        return item.metadata["default_text"]
    if isinstance(default, tuple):
        return ",".join(str(v) for v in default) or "none"
    return str(default)


def _add_field_flag(group, cls, item: dataclasses.Field, default, registries: dict) -> None:
    kind = _flag_type(typing.get_type_hints(cls)[item.name])
    help_text = item.metadata.get("help", "")
    help_text = f"{help_text} (default: {_default_text(item, default)})"
    flag = "--" + item.name.replace("_", "-")
    choices = item.metadata.get("choices")
    choices = registries.get(choices) if isinstance(choices, str) else choices
    if kind is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif typing.get_origin(kind) is tuple:
        element = typing.get_args(kind)[0]
        group.add_argument(flag, type=_comma_list(element, flag), default=None, metavar="A,B", help=help_text)
    else:
        group.add_argument(flag, type=kind, default=None, choices=choices, metavar=item.metadata.get("metavar"),
                           help=help_text)


def _comma_list(element, flag: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(element(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a comma-separated list, got {text!r}") from None
    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Config and AugmentSettings field, with its help and default."""
    registries = registry_choices()
    defaults, augment_defaults = Config(), AugmentSettings()
    group = parser.add_argument_group("model and training (defaults: the stage-1 settings)")
    for item in dataclasses.fields(Config):
        if item.name != "augment" and item.metadata.get("flag", True):
            _add_field_flag(group, Config, item, getattr(defaults, item.name), registries)
    augment = parser.add_argument_group("augmentation (training only; default: all off)")
    augment.add_argument("--augment", action="store_true",
                         help=f"switch on the standard set: {STANDARD_AUGMENT}")
    for item in dataclasses.fields(AugmentSettings):
        _add_field_flag(augment, AugmentSettings, item, getattr(augment_defaults, item.name), registries)


def add_settings_flags(group, cls) -> None:
    """One flag per field of the settings dataclass ``cls`` (made with :func:`setting`), its
    default the field's: unset flags stay None, so :func:`settings_from_flags` keeps the field's."""
    defaults = cls()
    for item in dataclasses.fields(cls):
        if item.metadata.get("flag", True):
            _add_field_flag(group, cls, item, getattr(defaults, item.name), {})


def settings_from_flags(cls, args: argparse.Namespace, **values):
    """A ``cls`` with the flags given on the command line (and ``values``) over its defaults."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
             if f.metadata.get("flag", True) and getattr(args, f.name, None) is not None}
    return cls(**{**given, **values})


def config_overrides(args: argparse.Namespace) -> dict:
    """The settings given on the command line, as Config fields."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
              if f.name != "augment" and getattr(args, f.name, None) is not None}
    augment = dataclasses.asdict(STANDARD_AUGMENT) if getattr(args, "augment", False) else {}
    for item in dataclasses.fields(AugmentSettings):
        if getattr(args, item.name, None) is not None:
            augment[item.name] = getattr(args, item.name)
    if augment:
        values["augment"] = augment
    return values
