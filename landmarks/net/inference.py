"""The net as test, predict and export run it: decoded points, face probability, flip averaging."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..codecs import Codec
from ..data.augment import mirror_points


def face_probability(logits: torch.Tensor) -> torch.Tensor:
    """[B, 2] face/non-face logits -> [B] probability of a face."""
    return torch.softmax(logits.float(), 1)[:, 1]


def flip_average(points: torch.Tensor, mirrored: torch.Tensor, permutation) -> torch.Tensor:
    """Average [B, K, 2] points (shares of the crop) with those found on the mirror image,
    mapped back: x -> 1 - x and left and right points swapped by ``permutation``."""
    return (points + mirror_points(mirrored, 1.0, permutation)) / 2


class InferenceModel(nn.Module):
    """A landmark net with its codec: image [B, C, S, S] -> points [B, K, 2] as shares of the crop,
    and, for a net with a face branch, the face probability [B].

    With ``flip_permutation`` each crop is also run mirrored and the answers averaged
    (points mapped back and re-ordered, face logits averaged)."""

    def __init__(self, net: nn.Module, codec: Codec, flip_permutation=None):
        super().__init__()
        self.net = net.eval()
        self.codec = codec
        self.flip_permutation = tuple(flip_permutation) if flip_permutation else None

    @property
    def classify(self) -> bool:
        return bool(getattr(self.net, "classify", False))

    def forward(self, x):
        b = x.shape[0]
        if self.flip_permutation:
            out = self.net(torch.cat([x, x.flip(-1)]))
            decoded = self.codec.decode(out["points"]).float()
            points = flip_average(decoded[:b], decoded[b:], self.flip_permutation)
            logits = out.get("face_logits")
            if logits is not None:
                logits = (logits[:b] + logits[b:]) / 2
        else:
            out = self.net(x)
            points = self.codec.decode(out["points"]).float()
            logits = out.get("face_logits")
        if logits is None:
            return points
        return points, face_probability(logits)


def split_inference(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(points [B, K, 2], face probability [B] or None) from an InferenceModel's output."""
    if isinstance(output, (tuple, list)):
        return output[0], output[1]
    return output, None
