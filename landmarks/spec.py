"""What a model is, apart from its weights: the config (net, input size, channels,
normalisation, crop expansion, face threshold), the landmark scheme and the attribute
classes. It rebuilds the net, and travels in every checkpoint and beside every export."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import torch

from .codecs import Codec, build_codec
from .config import Config, config_from_dict
from .data.scheme import DEFAULT_SCHEME, Scheme, load_scheme, scheme_from_dict
from .errors import UsageError
from .data.labels import LandmarkList
from .net import InferenceModel, build_net
from .net.faces import build_face_net

log = logging.getLogger("landmarks")


@dataclass
class ModelSpec:
    config: Config
    scheme: Scheme | None  # None for a face detector
    attributes: dict[str, list[str]] = field(default_factory=dict)  # learnable attribute -> class names

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def num_points(self) -> int:
        return self.scheme.num_points if self.scheme else 0

    @property
    def aux_classes(self) -> dict[str, int]:
        return {name: len(self.attributes[name]) for name in self.config.aux_weights()}

    def build(self) -> torch.nn.Module:
        """A new net of this spec, initialised from the current random state."""
        if self.task == "faces":
            return build_face_net(self.config)
        c = self.config
        return build_net(c.net, num_points=self.num_points, channels=c.channels, size=c.input_size,
                         classify=c.classify, aux_classes=self.aux_classes, head=c.head,
                         point_features=c.simcc_features)

    def codec(self, net: torch.nn.Module) -> Codec:
        c = self.config
        return build_codec(getattr(net, "codec", "regression"), self.num_points, c.simcc_sigma, c.simcc_coord_weight)

    def inference_model(self, net: torch.nn.Module, test_flip: bool | None = None) -> InferenceModel:
        """The net as test, predict and export run it; ``test_flip`` overrides the config's."""
        flip = self.config.test_flip if test_flip is None else test_flip
        return InferenceModel(net, self.codec(net), self.scheme.flip_permutation if flip else None)

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "scheme": self.scheme.to_dict() if self.scheme else None,
                "attributes": self.attributes}


def spec_from_dict(data: dict, where: str) -> ModelSpec:
    """A spec from a checkpoint payload or an export's .json (older files: the course's scheme)."""
    config = config_from_dict(data.get("config", {}), where=where)
    scheme = None
    if config.task == "landmarks":
        scheme = scheme_from_dict(data["scheme"], f"{where}: scheme") if data.get("scheme") else \
            load_scheme(config.scheme or DEFAULT_SCHEME)
    return ModelSpec(config, scheme, {str(k): list(v) for k, v in (data.get("attributes") or {}).items()})


def resolve_scheme(config: Config, list_scheme: Scheme | None) -> Scheme:
    """The scheme a run trains on: the one the lists were built with, unless the config names
    another of a different point count (an error: the lists hold other points)."""
    if config.scheme:
        named = load_scheme(config.scheme)
        if list_scheme is None:
            return named
        if named.num_points != list_scheme.num_points or named.name != list_scheme.name:
            raise UsageError(f"scheme {config.scheme} ({named.num_points} points) does not match the lists' scheme "
                             f"{list_scheme.name} ({list_scheme.num_points} points): build lists with python -m "
                             f"landmarks.data --scheme {config.scheme}, or to finetune a model onto these lists "
                             f"pass --scheme {list_scheme.name} (a new landmark head)")
        return list_scheme
    return list_scheme or load_scheme(DEFAULT_SCHEME)


def with_scheme(spec: ModelSpec, scheme: Scheme) -> ModelSpec:
    config = dataclasses.replace(spec.config, scheme=scheme.name)
    return ModelSpec(config, scheme, spec.attributes)


# ---------------------------------------------------------------- what a model and a list must share

def check_list_for(spec: ModelSpec, data: LandmarkList) -> LandmarkList:
    """A list to test or validate ``spec``'s model on: same point count and crop expansion
    (another scheme of the same count is only warned of)."""
    path, scheme = data.path, data.info.scheme
    if data.num_points is not None and data.num_points != spec.num_points:
        raise UsageError(f"{path}: holds {data.num_points}-point faces but the model predicts "
                         f"{spec.num_points} ({spec.scheme.name}); build lists with --scheme {spec.scheme.name}")
    if scheme is not None and scheme.name != spec.scheme.name:
        log.warning("%s: lists of scheme %s, the model's is %s (same point count)", path, scheme.name, spec.scheme.name)
    if data.info.expand is not None and abs(data.info.expand - spec.config.crop_expand) > 1e-9:
        raise UsageError(f"{path}: crops expanded by {data.info.expand} but the model was trained on "
                         f"{spec.config.crop_expand}; build lists with --expand {spec.config.crop_expand}")
    return data


def training_spec(config: Config, data: LandmarkList) -> ModelSpec:
    """The spec a run trains: the config with the lists' scheme, expansion and attributes."""
    scheme = resolve_scheme(config, data.info.scheme)
    if data.num_points is not None and data.num_points != scheme.num_points:
        raise UsageError(f"{data.path}: holds {data.num_points}-point faces but scheme {scheme.name} has "
                         f"{scheme.num_points}")
    expand = data.info.expand
    if config.expand is not None and expand is not None and abs(config.expand - expand) > 1e-9:
        raise UsageError(f"--expand {config.expand}: the lists in {data.path.parent} were cut with {expand}; "
                         f"build lists with python -m landmarks.data --expand {config.expand}")
    config = dataclasses.replace(config, scheme=scheme.name, expand=config.expand if expand is None else expand)
    if config.expand is None:
        config = dataclasses.replace(config, expand=config.crop_expand)
    unknown = [name for name in config.aux_weights() if name not in data.info.attributes]
    if unknown:
        have = ", ".join(data.info.attributes) or "none"
        raise UsageError(f"--aux {', '.join(unknown)}: the lists carry no such attribute (they carry: {have}); "
                         "python -m landmarks.data --yaw adds a yaw attribute")
    attributes = {name: data.info.attributes[name] for name in config.aux_weights()}
    return ModelSpec(config, scheme, attributes)


def finetune_spec(old: ModelSpec, new: ModelSpec) -> ModelSpec:
    """The finetuned model: the old net with the new run's heads (face branch, scheme, attributes)."""
    if new.config.net != old.config.net:
        raise UsageError(f"--net {new.config.net}: finetuning keeps the model's net ({old.config.net})")
    if new.scheme and old.scheme and abs(new.config.crop_expand - old.config.crop_expand) > 1e-9:
        log.warning("finetune: the model saw crops grown by %g on every side, the lists' are grown by %g",
                    old.config.crop_expand, new.config.crop_expand)
    return new
