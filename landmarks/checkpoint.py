"""Checkpoints: dicts of state, written atomically, checked when read."""

from __future__ import annotations

import io
import pickle
import zipfile
from importlib import resources
from pathlib import Path

import torch

from .config import Config, config_from_dict
from .errors import DataError, UsageError
from .files import atomic_write
from .net import LandmarkNet, build_net

FORMAT = "landmarks-checkpoint"
VERSION = 1


def save_checkpoint(path, model: torch.nn.Module, config: Config, **state) -> None:
    """Write ``{format, version, model, config, ...state}`` to a temporary file, then
    rename it, so a killed run never leaves a half-written checkpoint."""
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {"format": FORMAT, "version": VERSION, "model": model.state_dict(),
               "config": config.to_dict(), **state}
    with atomic_write(path) as handle:
        torch.save(payload, handle)


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


# The default for test and predict: the most accurate landmark model that is shipped.
# stage3 (with the face/non-face branch) is chosen by name, for real scenes.
DEFAULT_ORDER = ("stage2", "stage1")


def default_model() -> str:
    names = shipped_models()
    for name in DEFAULT_ORDER:
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


def load_model(path, expect_net: str | None = None, add_classifier: bool = False
               ) -> tuple[LandmarkNet, Config, dict]:
    """Rebuild the net a checkpoint describes and load its weights -> (model, config, payload).

    ``add_classifier`` grows a new face/non-face branch on a landmark-only model
    (stage 2 -> stage 3 finetuning); every other weight must still fit.
    """
    payload = read_checkpoint(path)
    config = config_from_dict(payload["config"], where=str(path))
    if expect_net and config.net != expect_net:
        raise UsageError(f"{path}: holds a {config.net!r} net, but --net {expect_net} was asked for")
    grow = add_classifier and not config.classify
    if grow:
        config = config_from_dict({"classify": True}, config, str(path))
    model = build_net(config.net, config.channels, config.input_size, config.classify)
    try:
        missing, unexpected = model.load_state_dict(payload["model"], strict=not grow)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise DataError(f"{path}: weights do not fit a {config.net!r} net ({first})") from None
    if grow and (unexpected or any(not key.startswith("face_head.") for key in missing)):
        raise DataError(f"{path}: weights do not fit a {config.net!r} net "
                        f"(unexpected {unexpected[:3]}, missing {missing[:3]})")
    return model, config, payload


def checkpoint_bytes(model: torch.nn.Module, config: Config) -> bytes:
    """A weights-only checkpoint, for shipping: no optimizer state."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "model": model.state_dict(),
                "config": config.to_dict()}, buffer)
    return buffer.getvalue()
