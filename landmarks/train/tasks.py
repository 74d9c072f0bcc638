"""What a model learns, for the one training loop: the loss of a batch, how per-batch sums
become epoch figures, and the evaluation on a validation or test set.

:class:`LandmarkTask` covers stages 1 to 3 and auxiliary attributes (TCDCN): the codec's
landmark loss, the face/non-face branch (loss masked to faces) and one cross entropy per
attribute, each attribute stopping early on its own validation loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import FaceLandmarksDataset
from ..metrics import landmark_metrics
from ..net.inference import face_probability, flip_average
from ..spec import ModelSpec
from ..net.losses import eye_distance_weights, hard_face_weights, point_loss, stage3_loss

log = logging.getLogger("landmarks")


@dataclass
class StepOutput:
    """A batch's loss to minimise and additive figures for the log (sums over its samples)."""

    loss: torch.Tensor
    sums: dict[str, float] = field(default_factory=dict)
    points: torch.Tensor | None = None  # [B, K, 2] decoded, shares of the crop
    face_prob: torch.Tensor | None = None  # [B]
    face_logits: torch.Tensor | None = None  # [B, 2]
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)


def class_counts(face_prob, is_face, threshold: float) -> dict:
    """Correct/total counts for faces and non-faces (summed over batches, then divided)."""
    predicted = face_prob >= threshold
    is_face = is_face.to(predicted.device)
    return {"face_correct": int((predicted & is_face).sum()), "faces": int(is_face.sum()),
            "nonface_correct": int((~predicted & ~is_face).sum()), "nonfaces": int((~is_face).sum())}


def accuracies(counts: dict) -> dict:
    total = counts.get("faces", 0) + counts.get("nonfaces", 0)
    if not total:
        return {}
    return {"acc": (counts["face_correct"] + counts["nonface_correct"]) / total,
            "acc_face": counts["face_correct"] / counts["faces"] if counts["faces"] else float("nan"),
            "acc_nonface": counts["nonface_correct"] / counts["nonfaces"] if counts["nonfaces"] else float("nan")}


def threshold_sweep(face_prob, is_face, thresholds=(0.1, 0.3, 0.5, 0.7, 0.9)) -> dict[float, tuple[float, float]]:
    """Accuracy on faces and on non-faces at each face threshold: face_prob [N], is_face [N] ->
    {threshold: (acc_face, acc_nonface)} (NaN for a class with no crop), to choose --min-face-prob."""
    prob, faces = torch.as_tensor(np.asarray(face_prob)), torch.as_tensor(np.asarray(is_face, dtype=bool))
    sweep = {}
    for threshold in thresholds:
        found = accuracies(class_counts(prob, faces, threshold))
        sweep[threshold] = (found.get("acc_face", float("nan")), found.get("acc_nonface", float("nan")))
    return sweep


def evaluation_steps(task, net, dataset, device, batch_size: int, max_steps: int, sums: dict):
    """``task.step`` over ``dataset`` in batches (at most ``max_steps``, 0: all), its loss sums
    added into ``sums``; yields (batch, StepOutput)."""
    for step, batch in enumerate(dataset.batches(batch_size)):
        if max_steps and step >= max_steps:
            break
        out = task.step(net, batch, device)
        for key, value in out.sums.items():
            sums[key] = sums.get(key, 0.0) + value
        yield batch, out


class LandmarkTask:
    """Landmarks on crops, with the optional face branch and attribute heads."""

    best_metric = "nme_box"
    best_mode = "min"
    plotted = ("val_nme_box", "validation NME_box (%)")

    def __init__(self, spec: ModelSpec, codec):
        self.spec, self.config, self.codec = spec, spec.config, codec
        self.point_loss = point_loss(self.config.loss, self.config.wing_width, self.config.wing_curvature)
        self.aux_weights = spec.config.aux_weights()
        # Early stopping of each auxiliary task: best validation loss, epochs without a better one.
        self.aux_state = {name: {"best": float("inf"), "waited": 0, "stopped": 0} for name in self.aux_weights}

    # ------------------------------------------------------------ training

    def active_aux(self) -> dict[str, float]:
        return {name: w for name, w in self.aux_weights.items() if not self.aux_state[name]["stopped"]}

    def step(self, net, batch: dict, device) -> StepOutput:
        image = batch["image"].to(device, non_blocking=True)
        if not image.is_contiguous(memory_format=torch.channels_last):  # .to(memory_format=...) would always copy
            image = image.contiguous(memory_format=torch.channels_last)
        target = batch["points"].to(device, non_blocking=True)
        is_face = batch["is_face"].to(device, non_blocking=True)
        out = net(image)
        raw = out["points"]
        size = self.config.input_size
        n = len(image)
        logits = out.get("face_logits")
        teacher = batch.get("teacher")
        per_sample = self.codec.loss(raw, target, size, self.point_loss, reduction="none")
        if teacher is not None:
            per_sample = per_sample + self.config.distill_weight * self.codec.loss(
                raw, teacher.to(device, non_blocking=True), size, self.point_loss, reduction="none")
        if self.config.eye_weight:
            per_sample = per_sample * eye_distance_weights(target, self.spec.scheme.interocular, self.config.eye_weight)
        if self.config.hard_weight:
            per_sample = per_sample * hard_face_weights(per_sample, is_face, self.config.hard_weight)
        if logits is None:
            landmark = per_sample.mean()
            loss, sums = landmark, {"landmark_loss": float(landmark.detach()) * n}
            prob = None
        else:
            weights = torch.tensor(self.config.class_weights, dtype=torch.float32)
            loss, cls, landmark = stage3_loss(per_sample, logits.float(), is_face, self.config.cls_weight,
                                              self.config.landmark_weight, weights)
            prob = face_probability(logits.detach())
            sums = {"cls_loss": float(cls.detach()) * n, "landmark_loss": float(landmark.detach()) * n,
                    **class_counts(prob, is_face, self.config.face_threshold)}
        aux_logits = out.get("aux", {})
        if aux_logits:
            labels = batch["attributes"].to(device, non_blocking=True)
            active = self.active_aux()
            for column, name in enumerate(self.spec.aux_classes):
                target_class = labels[:, column]
                known = target_class >= 0
                if not known.any():
                    continue
                logit = aux_logits[name].float()
                aux_loss = F.cross_entropy(logit[known], target_class[known])
                if name in active:
                    loss = loss + active[name] * aux_loss
                sums[f"aux_{name}_loss"] = float(aux_loss.detach()) * int(known.sum())
                sums[f"aux_{name}_seen"] = int(known.sum())
                sums[f"aux_{name}_correct"] = int((logit[known].argmax(1) == target_class[known]).sum())
        sums["loss"] = float(loss.detach()) * n
        sums["samples"] = n
        with torch.no_grad():
            decoded = self.codec.decode(raw).float()
        return StepOutput(loss, sums, decoded, prob, None if logits is None else logits.detach(), aux_logits)

    def epoch_figures(self, sums: dict) -> dict:
        """Summed step figures -> means and accuracies."""
        n = max(sums.get("samples", 0), 1)
        figures = {"loss": sums.get("loss", 0.0) / n}
        if self.config.classify:
            figures.update(cls_loss=sums.get("cls_loss", 0.0) / n, landmark_loss=sums.get("landmark_loss", 0.0) / n,
                           **accuracies(sums))
        for name in self.aux_weights:
            seen = sums.get(f"aux_{name}_seen", 0)
            if seen:
                figures[f"aux_{name}_loss"] = sums[f"aux_{name}_loss"] / seen
                figures[f"aux_{name}_acc"] = sums[f"aux_{name}_correct"] / seen
        return figures

    # ------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, net, dataset: FaceLandmarksDataset, device, max_steps: int = 0,
                 test_flip: bool | None = None, batch_size: int = 256) -> tuple[dict, dict]:
        """Average loss and accuracy metrics (original-image pixels) -> (metrics, predictions).

        predictions: ``points`` [N, K, 2] relative to each crop box in image pixels,
        ``face_prob`` [N] or None, ``indices`` [N] into ``dataset``.
        """
        net.eval()
        flip = self.config.test_flip if test_flip is None else test_flip
        permutation = self.spec.scheme.flip_permutation
        sums: dict[str, float] = {}
        points, probs = [], []
        for batch, out in evaluation_steps(self, net, dataset, device, batch_size, max_steps, sums):
            decoded, prob = out.points, out.face_prob
            if flip:
                mirror = batch["image"].flip(-1).to(device).contiguous(memory_format=torch.channels_last)
                other = net(mirror)
                decoded = flip_average(decoded, self.codec.decode(other["points"]).float(), permutation)
                if prob is not None:
                    prob = face_probability((out.face_logits + other["face_logits"]) / 2)
            points.append(decoded.cpu())
            if prob is not None:
                probs.append(prob.cpu())
        k = self.spec.num_points
        shares = torch.cat(points).double().numpy() if points else np.zeros((0, k, 2))
        prob = torch.cat(probs).numpy() if probs else None
        n = len(shares)
        boxes = dataset.boxes[:n].numpy()
        is_face = dataset.is_face[:n].numpy()
        pred = shares * (boxes[:, None, 2:] - boxes[:, None, :2])  # image pixels, relative to the box
        truth = np.array([e.points if e.is_face else np.zeros((k, 2)) for e in dataset.entries[:n]])
        figures = self.epoch_figures(sums)
        metrics = {key: value for key, value in figures.items() if not key.startswith("acc")}
        metrics.update(landmark_metrics(pred[is_face], truth[is_face], self.spec.scheme.interocular))
        if prob is not None:
            threshold = self.config.face_threshold
            metrics.update(accuracies(class_counts(torch.from_numpy(prob), torch.from_numpy(is_face), threshold)))
            kinds = np.array([e.attributes.get("negative", "") for e in dataset.entries[:n]])
            for kind in sorted(set(kinds[~is_face]) - {""}):
                chosen = kinds == kind
                metrics[f"acc_nonface_{kind}"] = float((prob[chosen] < threshold).mean())
        return metrics, {"points": pred, "face_prob": prob, "indices": np.arange(n)}

    # ------------------------------------------------------------ between epochs

    def after_validation(self, epoch: int, metrics: dict) -> list[str]:
        """Stop each auxiliary task whose validation loss has not improved for ``aux_patience``
        epochs (its weight becomes 0); returns what changed, for the log."""
        notes = []
        patience = self.config.aux_patience
        for name, state in self.aux_state.items():
            value = metrics.get(f"aux_{name}_loss")
            if state["stopped"] or value is None:
                continue
            if value < state["best"]:
                state["best"], state["waited"] = value, 0
            else:
                state["waited"] += 1
                if patience and state["waited"] >= patience:
                    state["stopped"] = epoch + 1
                    notes.append(f"auxiliary task {name} stops after epoch {epoch + 1}: its validation loss has not "
                                 f"improved for {patience} epochs")
        return notes

    def state_dict(self) -> dict:
        return {"aux_state": self.aux_state}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.get("aux_state", {}).items():
            if name in self.aux_state:
                self.aux_state[name] = dict(value)

    def describe(self, row: dict) -> str:
        if "val_loss" not in row:
            return ""
        text = f"  val loss {row['val_loss']:.4g}  NME_box {row.get('val_nme_box', float('nan')):.2f}%"
        text += f"  NME_io {row.get('val_nme_io', float('nan')):.2f}%"
        if "val_acc" in row:
            text += f"  acc {row['val_acc']:.3f} (face {row['val_acc_face']:.3f}, non-face {row['val_acc_nonface']:.3f})"
        for name in self.aux_weights:
            if f"val_aux_{name}_acc" in row:
                text += f"  {name} acc {row[f'val_aux_{name}_acc']:.3f}"
        return text


class FaceTask:
    """Faces in whole pictures: the CentreBoxes codec's loss; evaluated by box AP at IoU 0.5,
    and by recall and false faces per picture at the detector's threshold."""

    best_metric = "ap"
    best_mode = "max"
    plotted = ("val_ap", "validation AP@0.5")

    def __init__(self, spec: ModelSpec, net):
        from ..codecs import CentreBoxes
        self.spec, self.config = spec, spec.config
        self.codec = CentreBoxes(net.stride)

    def step(self, net, batch: dict, device) -> StepOutput:
        image = batch["image"].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        out = net(image)
        h, w = out["heat"].shape[-2:]
        target = {k: v.to(device, non_blocking=True) for k, v in self.codec.encode(batch["boxes"], h, w).items()}
        total, heat, size, offset = self.codec.loss(out, target)
        n = len(image)
        sums = {"loss": float(total.detach()) * n, "heat_loss": float(heat.detach()) * n,
                "size_loss": float(size.detach()) * n, "offset_loss": float(offset.detach()) * n, "samples": n}
        return StepOutput(total, sums, aux_logits={"raw": out})

    def epoch_figures(self, sums: dict) -> dict:
        n = max(sums.get("samples", 0), 1)
        return {key: sums.get(key, 0.0) / n for key in ("loss", "heat_loss", "size_loss", "offset_loss")}

    @torch.no_grad()
    def evaluate(self, net, dataset, device, max_steps: int = 0, batch_size: int = 16, **_) -> tuple[dict, dict]:
        from ..metrics import average_precision, match_boxes
        net.eval()
        sums: dict[str, float] = {}
        scores, hits, truth_count, found, false_faces, pictures = [], [], 0, 0, 0, 0
        threshold = self.config.face_threshold
        detections = {}
        for batch, out in evaluation_steps(self, net, dataset, device, batch_size, max_steps, sums):
            decoded = self.codec.decode(out.aux_logits["raw"], threshold=0.05, top_k=100)
            for (boxes, score), index, scale in zip(decoded, batch["index"].tolist(), batch["scale"].tolist()):
                boxes = boxes.cpu().double().numpy() / scale
                score = score.cpu().double().numpy()
                truth = dataset.pictures[index].boxes
                hit = match_boxes(boxes, score, truth)
                scores.append(score)
                hits.append(hit)
                truth_count += len(truth)
                confident = score >= threshold
                kept = match_boxes(boxes[confident], score[confident], truth)
                found += int(kept.sum())
                false_faces += int((~kept).sum())
                pictures += 1
                detections[index] = (boxes, score)
        scores = np.concatenate(scores) if scores else np.zeros(0)
        hits = np.concatenate(hits) if hits else np.zeros(0, bool)
        metrics = self.epoch_figures(sums)
        metrics.update(ap=average_precision(scores, hits, truth_count), recall=found / max(truth_count, 1),
                       false_per_picture=false_faces / max(pictures, 1), faces=truth_count, pictures=pictures)
        return metrics, {"detections": detections, "scores": scores, "hits": hits, "truth_count": truth_count}

    def after_validation(self, epoch: int, metrics: dict) -> list[str]:
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def describe(self, row: dict) -> str:
        if "val_loss" not in row:
            return ""
        return (f"  val loss {row['val_loss']:.4g}  AP@0.5 {row['val_ap']:.3f}  recall {row['val_recall']:.3f}  "
                f"false/picture {row['val_false_per_picture']:.3f}")
