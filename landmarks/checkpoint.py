"""Checkpoints: dicts of state, written atomically, checked when read.

A checkpoint holds ``{format, version, task, model (state dict), config, scheme, attributes}``
and, for a run in progress, the optimizer, schedule, epoch, best metric and random state.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from .errors import DataError, UsageError
from .files import atomic_write
from .spec import ModelSpec, spec_from_dict

FORMAT = "landmarks-checkpoint"
VERSION = 2  # 2: task, scheme and attributes beside the config
TASK_NAMES = {"landmarks": "a landmark model", "faces": "a face detector"}


def payload_of(model: torch.nn.Module, spec: ModelSpec, **state) -> dict:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {"format": FORMAT, "version": VERSION, "task": spec.task, "model": model.state_dict(),
            **spec.to_dict(), **state}


def save_checkpoint(path, model: torch.nn.Module, spec: ModelSpec, **state) -> None:
    """Write the checkpoint to a temporary file, then rename it, so a killed run never
    leaves a half-written checkpoint."""
    with atomic_write(Path(path)) as handle:
        torch.save(payload_of(model, spec, **state), handle)


def checkpoint_bytes(model: torch.nn.Module, spec: ModelSpec, half: bool = False) -> bytes:
    """A weights-only checkpoint, for shipping: no optimizer state. ``half`` stores float
    weights as float16 (half the file); loading casts them back to the net's float32."""
    payload = payload_of(model, spec)
    if half:
        payload["model"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def shipped_models() -> list[str]:
    folder = resources.files("landmarks") / "models"
    return sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt"))


def resolve_model(name_or_path) -> Path:
    """A checkpoint path, or the name of a model shipped in the package."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resources.files("landmarks") / "models" / f"{name_or_path}.pt"
    if shipped.is_file():
        return Path(str(shipped))
    raise UsageError(f"{name_or_path}: no such checkpoint file, and no shipped model of that name "
                     f"(shipped: {', '.join(shipped_models()) or 'none'})")


# Defaults, most accurate first: crops (test, export) need no face branch; whole pictures
# (predict) want the branch that drops the face finder's false candidates.
DEFAULT_CROP_MODELS = ("stage2", "stage1")
DEFAULT_PICTURE_MODELS = ("stage3", "stage2", "stage1")


def default_model(whole_pictures: bool = False) -> str:
    names = shipped_models()
    for name in DEFAULT_PICTURE_MODELS if whole_pictures else DEFAULT_CROP_MODELS:
        if name in names:
            return name
    raise UsageError("no landmark model shipped in this install; pass --model CHECKPOINT")


def read_checkpoint(path) -> dict:
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile,
            OSError, ValueError, AttributeError, ModuleNotFoundError, IndexError) as error:
        with open(path, "rb") as handle:
            # torch.save writes a zip archive; one that starts like one but fails was cut short.
            is_torch_file = handle.read(4) == b"PK\x03\x04"
        kind = "truncated or damaged (was its run killed while writing?)" if is_torch_file else "not a checkpoint"
        raise DataError(f"{path}: {kind}; expected a {FORMAT} file written by landmarks "
                        f"({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} (expected a dict with format={FORMAT!r}, "
                        "model, config; was it written by landmarks?)")
    if payload.get("version", 0) > VERSION:
        raise DataError(f"{path}: checkpoint version {payload['version']} is newer than this "
                        f"landmarks reads ({VERSION}); upgrade landmarks")
    return payload


def grey_to_colour(weight: torch.Tensor) -> torch.Tensor:
    """A first convolution's weights for one grey channel, spread evenly over three colour ones:
    a grey picture (R = G = B) then gives the features it gave, so a grey model's training carries
    over to a colour one."""
    return weight.repeat(1, 3, 1, 1) / 3


def _grey_to_colour_fits(stored: torch.Tensor, wanted: torch.Tensor) -> bool:
    return (stored.dim() == 4 and wanted.dim() == 4 and stored.shape[1] == 1 and wanted.shape[1] == 3
            and stored.shape[0] == wanted.shape[0] and stored.shape[2:] == wanted.shape[2:])


NEGLIGIBLE_WEIGHT = 1e-20  # under float32's resolution of any sum it joins, at any activation under 1e10


def without_negligible(weights: dict) -> dict:
    """``weights`` with float values under ``NEGLIGIBLE_WEIGHT`` in size set to 0. Weights that decay
    towards 0 end up there (the attention's output layer, started at 0, under weight decay). Those
    under float32's normal range (1.2e-38), and those just above it whose products with the
    activations fall under it, take the slow path of many CPUs: each made a 300-W model 2-4 times
    as slow. As numbers they are zero in all but name."""
    return {key: value.masked_fill(value.abs() < NEGLIGIBLE_WEIGHT, 0)
            if value.is_floating_point() else value for key, value in weights.items()}


@dataclass
class Loaded:
    """A checkpoint's net (weights loaded), its spec and the whole payload."""

    net: torch.nn.Module
    spec: ModelSpec
    payload: dict
    new_layers: tuple[str, ...] = ()  # parameters that did not come from the checkpoint

    @property
    def config(self):
        return self.spec.config


def load_model(path, expect_task: str | None = "landmarks", spec_change=None) -> Loaded:
    """Rebuild the net a checkpoint describes and load its weights.

    ``expect_task`` refuses a checkpoint of another kind (a face detector where a landmark
    model is wanted). ``spec_change(spec) -> spec`` adapts the model before its weights are
    loaded (finetuning: a face branch grown on a landmark model, another scheme's head);
    the weights that then fit nowhere are left as initialised and named in ``new_layers``.
    """
    path = Path(path)
    payload = read_checkpoint(path)
    spec = spec_from_dict(payload, str(path))
    if expect_task and spec.task != expect_task:
        raise UsageError(f"{path}: is {TASK_NAMES.get(spec.task, spec.task)}, but {TASK_NAMES[expect_task]} "
                         "was expected here")
    stored = spec
    if spec_change is not None:
        spec = spec_change(spec)
    net = spec.build()
    weights = without_negligible(payload["model"])
    if spec is stored:
        try:
            net.load_state_dict(weights)
        except RuntimeError as error:
            lines = str(error).splitlines()
            first = lines[1].strip() if len(lines) > 1 else str(error)
            raise DataError(f"{path}: weights do not fit a {spec.config.net!r} net ({first})") from None
        return Loaded(net, spec, payload)
    own = net.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    fitting.update({k: grey_to_colour(v) for k, v in weights.items()
                    if k in own and k not in fitting and _grey_to_colour_fits(v, own[k])})
    if len(fitting) < len(weights) // 2:
        raise DataError(f"{path}: weights do not fit a {spec.config.net!r} net "
                        f"(only {len(fitting)} of {len(weights)} tensors fit)")
    net.load_state_dict(fitting, strict=False)
    return Loaded(net, spec, payload, tuple(sorted(set(own) - set(fitting))))
