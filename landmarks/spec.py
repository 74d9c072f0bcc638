"""What a model is, apart from its weights: the config (net, input size, channels,
normalisation, crop expansion, face threshold), the landmark scheme and the attribute
classes. It rebuilds the net, and travels in every checkpoint and beside every export."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .codecs import Codec, build_codec
from .config import Config, config_from_dict
from .data.scheme import DEFAULT_SCHEME, Scheme, load_scheme, scheme_from_dict
from .errors import UsageError
from .net import InferenceModel, build_net


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
            from .net.faces import build_face_net
            return build_face_net(self.config)
        c = self.config
        return build_net(c.net, num_points=self.num_points, channels=c.channels, size=c.input_size,
                         classify=c.classify, aux_classes=self.aux_classes, head=c.head)

    def codec(self, net: torch.nn.Module) -> Codec:
        return build_codec(getattr(net, "codec", "regression"), self.num_points)

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
