"""The whole-picture test: face finder, face branch and landmarks on every annotated picture.

Reported (metrics JSON and log):
- found: the share of annotated faces some predicted face finds, a pair counting when its
  points' NME_box is below 10 % (each prediction finds at most one face);
- false faces per picture: predicted faces (with landmarks) that find no annotated face;
- nme_box_found: NME_box (%) of the faces found;
- detector_ap: box AP at IoU 0.5 of the face finder's candidates (its precision-recall curve
  is the plot); detector_recall: the share of faces it proposes (IoU >= 0.5, operating point);
- ms per picture (median): decoding, detector, landmarks (branch, refinement, merging);
- crop_*: the landmark metrics of the same faces from their annotated boxes, which shows what
  the face finder costs;
- by_yaw, by_size: found, NME_io of the found and the crop figures per bin of head yaw (from the
  annotated points) and of face size (metrics.YAW_BINS, SIZE_BINS);
- missed (each face not found, with its size, yaw and why: ``why_missed``), missed_by_cause,
  and false (each false face, with its face probability and finder score).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.formats import read_source
from ..data.images import load_image
from ..data.labels import Picture, Report, group_pictures, read_list_info, read_picture_list
from ..data.pose import face_yaws
from ..data.scheme import Scheme
from ..errors import UsageError
from ..files import Outputs
from ..geometry import box_scale, iou
from ..metrics import (SIZE_BINS, YAW_BINS, average_precision, bin_of, box_normaliser, breakdown,
                       interocular_normaliser, landmark_metrics, match_boxes, match_faces, nme, precision_recall)
from .landmarker import Landmarker, LandmarkerSettings

FOUND_NME = 0.10
PR_CURVE_FROM = 0.05  # the lowest finder score on the precision-recall curve


MISS_CAUSES = ("not proposed", "refused", "points off")


def why_missed(truth_box, truth_points, candidates, kept: list) -> tuple[str, float]:
    """Why a face no kept face found: (cause, figure). ``candidates`` [N, 4]: the finder's boxes
    that went on to the landmarks; ``kept``: the picture's kept faces (box, points).
    - points off: a kept face overlaps it (IoU >= 0.3), with points too far (figure: their NME_box);
    - refused: a candidate proposed it (IoU >= 0.5), but no face was kept there (the face branch
      said no, or it merged into another face; figure: the candidate's IoU);
    - not proposed: no candidate overlaps it by 0.5 (figure: the best IoU)."""
    near = [nme(points[None], truth_points[None], box_normaliser(truth_points[None]))[0]
            for box, points in kept if iou(truth_box, box)[0] >= 0.3]
    if near:
        return "points off", float(min(near))
    overlap = float(iou(truth_box, candidates).max(initial=0.0))
    return ("refused" if overlap >= 0.5 else "not proposed"), overlap


def evaluate_pictures(marker: Landmarker, pictures: list[Picture], operating_threshold: float,
                      progress: bool = False) -> tuple[dict, dict]:
    """``marker``'s finder must propose candidates down to a low score (for the AP);
    those scoring ``operating_threshold`` or more go on, as in use -> (metrics, curves)."""
    times = {"decode": [], "detector": [], "landmarks": []}
    scores, hits, proposed = [], [], 0
    found_nmes, found_io, false_faces, faces_total = [], [], 0, 0
    crop_pred, crop_truth, crop_rejected = [], [], 0
    yaws, sizes, misses, false_list = [], [], [], []
    iterator = pictures
    if progress:
        iterator = tqdm(pictures, desc="pictures", unit="pic", leave=False, disable=None)
    for picture in iterator:
        start = time.perf_counter()
        rgb = load_image(picture.image, 3)
        decoded = time.perf_counter()
        boxes, score = marker.find(rgb)
        detected = time.perf_counter()
        operating = score >= operating_threshold
        faces = [f for f in marker._faces_at(rgb, boxes[operating], score[operating]) if f.is_face]
        done = time.perf_counter()
        times["decode"].append(decoded - start)
        times["detector"].append(detected - decoded)
        times["landmarks"].append(done - detected)
        scores.append(score)
        hits.append(match_boxes(boxes, score, picture.boxes))
        proposed += int(match_boxes(boxes[operating], score[operating], picture.boxes).sum())
        nmes, used = match_faces([f.points for f in faces], picture.points, FOUND_NME)
        found_nmes.append(nmes)
        if len(picture.points):  # the same errors over the eye distance
            found_io.append(nmes * box_normaliser(picture.points)
                            / np.maximum(interocular_normaliser(picture.points, marker.scheme.interocular), 1e-12))
        false_faces += int((~used).sum())
        faces_total += len(picture.boxes)
        yaws.append(face_yaws(picture.points, marker.scheme, (rgb.shape[1], rgb.shape[0])))
        sizes.append(box_scale(picture.boxes) if len(picture.boxes) else np.zeros(0))
        kept = [(f.box, f.points) for f in faces]
        for j in np.flatnonzero(np.isnan(nmes)):
            cause, figure = why_missed(picture.boxes[j], picture.points[j], boxes[operating], kept)
            misses.append({"image": str(picture.image), "face": int(j), "size_px": round(float(sizes[-1][j]), 1),
                           "yaw": round(float(yaws[-1][j]), 1), "cause": cause, "figure": round(figure, 3)})
        false_list += [{"image": str(picture.image), "box": [round(float(v), 1) for v in f.box],
                        "face_prob": None if f.face_prob is None else round(f.face_prob, 3),
                        "score": None if f.score is None else round(f.score, 3)}
                       for f, u in zip(faces, used) if not u]
        if len(picture.boxes):
            on_truth = marker.landmarks(rgb, picture.boxes, verify=False)
            crop_pred += [f.points for f in on_truth]
            crop_truth += list(picture.points)
            crop_rejected += sum(f.face_prob is not None and f.face_prob < marker.min_face_prob for f in on_truth)
    nmes = np.concatenate(found_nmes) if found_nmes else np.zeros(0)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits) if hits else np.zeros(0, bool)
    found = ~np.isnan(nmes)
    metrics = {
        "pictures": len(pictures), "faces": faces_total,
        "found": float(found.mean()) if faces_total else float("nan"),
        "false_per_picture": false_faces / max(len(pictures), 1),
        "nme_box_found": float(nmes[found].mean() * 100) if found.any() else float("nan"),
        "nme_io_found": (float(np.nanmean(np.concatenate(found_io)) * 100) if found.any() else float("nan")),
        "detector_ap": average_precision(scores, hits, faces_total),
        "detector_recall": proposed / max(faces_total, 1),
        "ms_decode": float(np.median(times["decode"]) * 1000),
        "ms_detector": float(np.median(times["detector"]) * 1000),
        "ms_landmarks": float(np.median(times["landmarks"]) * 1000),
        "ms_picture": float(np.median(np.add(times["detector"], times["landmarks"])) * 1000),
        "missed_by_cause": {cause: sum(m["cause"] == cause for m in misses) for cause in MISS_CAUSES},
        "missed": misses, "false": false_list,
    }
    if crop_truth:
        pred, truth = np.array(crop_pred), np.array(crop_truth)
        crop = landmark_metrics(pred, truth, marker.scheme.interocular)
        metrics.update({f"crop_{k}": v for k, v in crop.items() if k != "faces"})
        metrics["crop_found"] = float((nme(pred, truth, box_normaliser(truth)) < FOUND_NME).mean())
        metrics["crop_rejected"] = crop_rejected / len(crop_truth)
        crop_io = nme(pred, truth, interocular_normaliser(truth, marker.scheme.interocular))
        found_io_all = np.concatenate(found_io) if found_io else np.zeros(0)
        for key, values, bins in (("by_yaw", np.concatenate(yaws), YAW_BINS),
                                  ("by_size", np.concatenate(sizes), SIZE_BINS)):
            metrics[key] = breakdown(bin_of(values, bins), bins, found, found_io_all, crop_io)
    precision, recall = precision_recall(scores, hits, faces_total)
    operating_recall = metrics["detector_recall"]
    return metrics, {"precision": precision, "recall": recall, "operating_recall": operating_recall}


def plot_precision_recall(curves: dict, out_png: Path, title: str, outputs: Outputs | None = None) -> Path:
    """The face finder's precision against recall (IoU 0.5), one line per named curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    for name, curve in curves.items():
        ax.plot(curve["recall"], curve["precision"], label=name)
    ax.set_xlabel("recall (IoU 0.5)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return (outputs or Outputs()).write_bytes("--pr-plot", out_png, png.getvalue())


def read_pictures(path: Path, strict: bool) -> tuple[list[Picture], Scheme | None]:
    """A picture list, or a folder of the course's label folders -> (pictures with every face,
    their scheme: None for a list with no lists.json beside it)."""
    if path.is_dir():
        source = read_source("course", path, Report(strict=strict))
        return group_pictures(source.annotations, source.scheme.num_points), source.scheme
    return read_picture_list(path, strict=strict)[0], read_list_info(path.parent).scheme


def in_scheme(pictures: list[Picture], source: Scheme, target: Scheme) -> list[Picture]:
    """Pictures annotated in ``source`` seen in ``target``, a scheme that derives from it: the
    points converted as ``target``'s scheme file says, each box framed as ``target``'s data frames
    faces (so that the finder's boxes are matched against boxes of the kind it learned)."""
    converted = []
    for picture in pictures:
        points = target.convert(picture.points, source)
        boxes = target.face_boxes(points) if len(points) else np.zeros((0, 4))
        converted.append(dataclasses.replace(picture, boxes=boxes, points=points))
    return converted


def for_model_scheme(path: Path, pictures: list[Picture], scheme: Scheme | None,
                     target: Scheme) -> tuple[list[Picture], bool]:
    """Pictures read from ``path`` (annotated in ``scheme``, None: unknown) as a model of
    ``target`` sees them -> (pictures, whether they were converted); pictures whose points
    neither match the model's nor derive to them are refused."""
    if scheme is not None and scheme.name != target.name and scheme.name in target.derive:
        return in_scheme(pictures, scheme, target), True
    count = next((p.points.shape[1] for p in pictures if len(p.points)), target.num_points)
    if count != target.num_points:
        raise UsageError(f"{path}: faces of {count} points, the model predicts {target.num_points}"
                         + (f" ({target.name}, which does not derive from {scheme.name})" if scheme else ""))
    return pictures, False


def proposing_for_pr_curve(marker: Landmarker) -> float:
    """Let ``marker``'s finder propose candidates down to PR_CURVE_FROM, which make its
    precision-recall curve -> the score from which candidates go on to the landmarks, as in use
    (evaluate_pictures' ``operating_threshold``)."""
    floor = marker.candidate_floor
    if hasattr(marker.finder, "threshold"):
        marker.finder.threshold = min(floor, PR_CURVE_FROM)
    return floor


def test_pictures(path: Path, model: str | None, settings: LandmarkerSettings, outputs: Outputs, *,
                  strict: bool = False, progress: bool = True, metrics_json: Path | None = None,
                  pr_plot: Path | None = None) -> dict:
    """``--phase test --test-pictures``: the face finder, the face branch and the landmarks
    against every annotated face of the pictures, printed and written where asked."""
    pictures, scheme = read_pictures(path, strict)
    # A folder's label files and every picture are read too.
    outputs.reads("--test-pictures", path, *sorted(path.glob("*/label.txt")), path / "label.txt",
                  *(picture.image for picture in pictures))
    for flag, out in (("--metrics-json", metrics_json), ("--pr-plot", pr_plot)):
        if out is not None:
            outputs.check(flag, out)
    marker = Landmarker(model, settings)
    floor, operating = proposing_for_pr_curve(marker), marker.finder_threshold
    pictures, converted = for_model_scheme(path, pictures, scheme, marker.scheme)
    if converted:
        print(f"{path}: {scheme.name} faces seen as {marker.scheme.name}: points derived as its scheme file "
              f"says, boxes framed as its data frames faces")
    metrics, curves = evaluate_pictures(marker, pictures, floor, progress=progress)
    name = getattr(marker.finder, "name", "finder")
    print(f"{path}: {metrics['pictures']} pictures, {metrics['faces']} faces; finder {name} "
          f"(threshold {operating:g}{f', candidates from {floor:g}' if floor != operating else ''}), "
          f"refine {'on' if settings.refine else 'off'}")
    print(f"found {metrics['found']:.3f}  false faces per picture {metrics['false_per_picture']:.3f}  "
          f"NME_box of found {metrics['nme_box_found']:.2f}% (NME_io {metrics['nme_io_found']:.2f}%)  "
          f"detector AP@0.5 {metrics['detector_ap']:.3f}  "
          f"proposed {metrics['detector_recall']:.3f}")
    print(f"ms per picture (median): detector {metrics['ms_detector']:.1f}  landmarks {metrics['ms_landmarks']:.1f}  "
          f"both {metrics['ms_picture']:.1f}  (decoding {metrics['ms_decode']:.1f})")
    if "crop_nme_box" in metrics:
        print(f"the same faces from their annotated boxes: found {metrics['crop_found']:.3f}  NME_box "
              f"{metrics['crop_nme_box']:.2f}%  NME_io {metrics['crop_nme_io']:.2f}%  FR@0.1 "
              f"{metrics['crop_fr_io@0.1']:.1f}%  rejected by the face branch {metrics['crop_rejected']:.3f}")
    causes = metrics["missed_by_cause"]
    print(f"missed {sum(causes.values())}: " + ", ".join(f"{cause} {count}" for cause, count in causes.items())
          + " (each missed and each false face: --metrics-json)")
    for key, title in (("by_yaw", "head yaw (of the annotated points)"), ("by_size", "face size (annotated box)")):
        if metrics.get(key):
            print(f"by {title}: faces, found, NME_io of found; from the annotated boxes NME_io, FR@0.1")
            for name, row in metrics[key].items():
                print(f"  {name:14s} {row['faces']:5d}  {row['found']:.3f}  {row['nme_io_found']:6.2f}%   "
                      f"{row['crop_nme_io']:6.2f}%  {row['crop_fr_io']:5.1f}%")
    if metrics_json:
        outputs.write_text("--metrics-json", metrics_json, json.dumps(metrics, indent=2) + "\n")
    if pr_plot:
        plot = plot_precision_recall({name: curves}, pr_plot, f"face finder on {metrics['pictures']} pictures",
                                     outputs)
        print(f"precision-recall plot: {plot}")
    return metrics
