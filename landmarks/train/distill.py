"""Distillation: a teacher model's points on the training crops, as a second target."""

from __future__ import annotations

import logging

import torch

from ..checkpoint import Loaded
from ..data.dataset import FaceLandmarksDataset
from ..errors import UsageError
from ..spec import ModelSpec

log = logging.getLogger("landmarks")


@torch.no_grad()
def teacher_points(teacher: Loaded, student: ModelSpec, dataset: FaceLandmarksDataset, cache_dir=None,
                   device=torch.device("cpu"), batch_size: int = 128) -> torch.Tensor:
    """The teacher's points [N, K, 2] (shares of the crop) on every crop of ``dataset``, seen as
    the teacher was trained to see them (its size, channels, normalisation, flip averaging).
    A teacher of another scheme teaches when the run's scheme derives from it (a 21-point model
    teaches a five-point run): its points are converted as the scheme file says."""
    t = teacher.spec
    same = t.scheme.name == student.scheme.name and t.num_points == student.num_points
    if not same and t.scheme.name not in student.scheme.derive:
        raise UsageError(f"--teacher: predicts {t.scheme.name} ({t.num_points} points), the run learns "
                         f"{student.scheme.name} ({student.num_points}), which does not derive from it")
    if abs(t.config.crop_expand - student.config.crop_expand) > 1e-9:
        raise UsageError(f"--teacher: crops expanded by {t.config.crop_expand}, the run's by "
                         f"{student.config.crop_expand}")
    crops = FaceLandmarksDataset(dataset.entries, num_points=student.num_points, size=t.config.input_size,
                                 channels=t.config.channels, normalize=t.config.normalize, cache_dir=cache_dir)
    if len(crops) != len(dataset):
        raise UsageError("--teacher: could not read every training crop for the teacher")
    model = t.inference_model(teacher.net).to(device)
    shares = []
    for batch in crops.batches(batch_size):
        image = batch["image"].to(device).contiguous(memory_format=torch.channels_last)
        output = model(image)
        shares.append((output[0] if isinstance(output, tuple) else output).float().cpu())
    log.info("teacher %s (%s): points for %d training crops", t.config.net, t.scheme.name, len(dataset))
    points = torch.cat(shares)
    if same:
        return points
    return torch.from_numpy(student.scheme.convert(points.numpy(), t.scheme)).float()
