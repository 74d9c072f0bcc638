"""A training or test run from start to end: lists, spec, net, datasets, run folder, the loop,
and what is printed. ``--phase train|finetune|test`` (on crops) call these."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model, read_checkpoint, resolve_model
from ..config import Config, load_config_file
from ..data.dataset import FaceLandmarksDataset, balanced_weights, check_list_stage
from ..data.images import image_size
from ..data.labels import LandmarkList, predictions_text, read_list, read_list_info, read_picture_list
from ..data.lists import ensure_lists
from ..data.pictures import ZOOM_RANGE, PictureAugment, PictureDataset
from ..data.pose import entry_yaws, face_yaws
from ..data.scheme import regions_of
from ..errors import UsageError
from ..files import Outputs
from ..metrics import YAW_BINS, bin_counts, bin_of, interocular_normaliser, landmark_metrics, nme
from ..net import count_parameters, freeze, native
from ..spec import ModelSpec, check_list_for, finetune_spec, spec_from_dict, training_spec
from .distill import teacher_points
from .reports import ced_chart, failure_report
from .loop import fit
from .runtime import Distributed, denormals_flushed, init_distributed, keep_freed_memory, resolve_device
from .tasks import FaceTask, LandmarkTask, threshold_sweep

log = logging.getLogger("landmarks")


@dataclass(frozen=True)
class Job:
    """Where a run reads and writes, and how it shows its progress (the data and runs flags)."""

    data_dir: Path = Path("data")
    list_dir: Path = Path("lists")
    train_list: Path | None = None
    test_list: Path | None = None
    test_ratio: float = 0.1
    strict: bool = False
    cache_dir: Path | None = None  # None: decode the images every run
    runs_dir: Path = Path("runs")
    run_name: str | None = None
    device: str = "auto"
    max_steps: int = 0
    progress: bool = True


def lists_of(job: Job, seed: int, ranks: Distributed | None = None, *, pictures: bool = False,
             validation: bool = False) -> tuple[Path, Path]:
    """``ensure_lists`` for the job, built by the main process while the others wait."""
    ranks = ranks or Distributed()
    if ranks.world_size > 1 and not ranks.main:
        torch.distributed.barrier()
    paths = ensure_lists(job.list_dir, job.data_dir, train_list=job.train_list, test_list=job.test_list,
                         test_ratio=job.test_ratio, seed=seed, strict=job.strict, pictures=pictures,
                         validation=validation, build=ranks.main)
    if ranks.world_size > 1 and ranks.main:
        torch.distributed.barrier()
    return paths


def make_dataset(data: LandmarkList, spec: ModelSpec, job: Job, train: bool) -> FaceLandmarksDataset:
    config = spec.config
    dataset = FaceLandmarksDataset(
        data.entries, num_points=spec.num_points, size=config.input_size, channels=config.channels,
        normalize=config.normalize, augment=config.augment if train else None,
        flip_permutation=spec.scheme.flip_permutation, attributes=tuple(spec.aux_classes),
        cache_dir=job.cache_dir, strict=job.strict, progress=job.progress,
        pin_memory=resolve_device(job.device).type == "cuda")
    skipped = data.report.skipped + dataset.report.skipped
    log.info("%s: %d crops (%d faces, %d non-faces)%s", data.path, len(dataset), int(dataset.is_face.sum()),
             int((~dataset.is_face).sum()), f", {skipped} skipped" if skipped else "")
    if train and config.pose_balance:
        dataset.set_draw_weights(crop_pose_weights(dataset, spec.scheme, config.pose_balance))
    return dataset


def pose_weights(yaws: np.ndarray, power: float) -> np.ndarray:
    """Draw weights of ``--pose-balance`` for faces of ``yaws`` [N] (degrees, NaN: no pose): each
    weighed by how rare its yaw bin is (``balanced_weights``; a face of no pose weighs 1), in the
    bins the whole-picture test reports."""
    bins = bin_of(yaws, YAW_BINS)
    counts = bin_counts(bins, YAW_BINS)
    log.info("pose balance %g: training faces by yaw %s", power, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return balanced_weights(bins, power)


def crop_pose_weights(dataset: FaceLandmarksDataset, scheme, power: float) -> np.ndarray:
    """``pose_weights`` for a crop dataset's faces, their yaw taken in their pictures; non-faces weigh 1."""
    faces = np.flatnonzero([e.is_face for e in dataset.entries])
    weights = np.ones(len(dataset.entries))
    if len(faces):
        weights[faces] = pose_weights(entry_yaws([dataset.entries[i] for i in faces], scheme), power)
    return weights


def picture_pose_weights(dataset: PictureDataset, scheme, power: float) -> np.ndarray:
    """``pose_weights`` for a detector's training pictures: each weighs as its rarest face (1 if none)."""
    owners = [i for i, picture in enumerate(dataset.pictures) for _ in picture.points]
    weights = np.zeros(len(dataset.pictures))
    if owners:
        sizes = {i: image_size(dataset.pictures[i].image) for i in set(owners)}
        points = np.concatenate([picture.points for picture in dataset.pictures if len(picture.points)])
        yaws = face_yaws(points, scheme, np.array([sizes[i] for i in owners]))
        np.maximum.at(weights, owners, pose_weights(yaws, power))
    return np.where(weights > 0, weights, 1.0)


def writable_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A uniquely named probe: runs started together in one folder must not race.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"{folder}: cannot write here ({error.strerror or error})") from None
    return folder


RUN_FILES = ("config.json", "best.pt", "last.pt", "history.csv", "loss.png", "train.log", "summary.json")


def new_run_dir(job: Job, config: Config, ranks: Distributed, outputs: Outputs) -> Path:
    name = job.run_name or f"{config.net}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = job.runs_dir / name
    if ranks.main:
        for file in RUN_FILES:  # a run folder never holds the run's own inputs (its model, config, lists)
            outputs.check("--run-name", run_dir / file)
        writable_folder(job.runs_dir)
        if (run_dir / "last.pt").exists():
            raise UsageError(f"{run_dir}: a run of that name exists; use --resume {run_dir} or another --run-name")
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def resumed_config(run_dir: Path, epochs: int | None) -> Config:
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"{run_dir}: not a run folder (no config.json); pass the folder of an earlier run")
    config = load_config_file(run_dir / "config.json")
    if epochs is not None:  # the one setting a resumed run may change: how long it goes on
        config = dataclasses.replace(config, epochs=epochs)
    if not (run_dir / "last.pt").is_file():
        raise UsageError(f"{run_dir}: no last.pt to resume from")
    return config


def finetune_base(model: str) -> tuple[Path, Config]:
    """The checkpoint a finetune starts from, and its config at a tenth of its learning rate. Its
    crops are cut as the run's lists were (a finetune often moves to another scheme, framed
    otherwise), unless the config or --expand says."""
    model_path = resolve_model(model)
    old = spec_from_dict(read_checkpoint(model_path), str(model_path))
    return model_path, dataclasses.replace(old.config, scheme=old.scheme.name if old.scheme else "",
                                           lr=old.config.learning_rate / 10, expand=None)


@denormals_flushed()
def train(job: Job, config: Config, outputs: Outputs, *, model_path: Path | None = None,
          resume: Path | None = None, frozen_layers: str = "") -> int:
    """A training run (``model_path``: finetune from it; ``resume``: go on in that run folder)."""
    device = resolve_device(job.device)
    keep_freed_memory()
    ranks = init_distributed(device)
    if ranks.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if config.teacher:
        outputs.reads("--teacher", resolve_model(config.teacher))
    prepare = prepare_faces if config.task == "faces" else prepare_landmarks
    spec, model, task, train_set, val_set = prepare(job, config, model_path, ranks)
    run_dir = resume if resume is not None else new_run_dir(job, config, ranks, outputs)
    if ranks.main:
        outputs.write_text("--run-name", run_dir / "config.json", json.dumps(spec.config.to_dict(), indent=2) + "\n")
        log.info("config: %s", json.dumps(spec.config.to_dict()))
    if frozen_layers:
        if model_path is None:
            raise UsageError("--freeze is for --phase finetune")
        frozen = freeze(model, [n.strip() for n in frozen_layers.split(",") if n.strip()])
        log.info("frozen layers: %s", ", ".join(frozen))
    if ranks.main:
        what = f"{spec.scheme.name} scheme ({spec.num_points} points)" if spec.scheme else "face detector"
        log.info("%s: %s net, %s, %d parameters, run folder %s", "train" if model_path is None else "finetune",
                 spec.config.net, what, count_parameters(model), run_dir)
        if device.type == "cpu":
            log.info("%s", native.kernels().note)
    result = fit(model, spec, task, train_set, val_set, run_dir, device, resume=resume is not None,
                 max_steps=job.max_steps, progress=job.progress, ranks=ranks, extra_state={"frozen": frozen_layers})
    if ranks.main:
        print_best(result.best)
        print(f"run folder: {run_dir} (best.pt, last.pt, loss.png, history.csv, train.log, tensorboard/)")
    if ranks.world_size > 1:
        torch.distributed.destroy_process_group()
    return 0


def print_best(best: dict) -> None:
    if "val_nme_box" in best:
        print(f"best epoch {best['epoch']}: NME_box {best['val_nme_box']:.2f}%  NME_io "
              f"{best['val_nme_io']:.2f}%  FR@0.1 {best['val_fr_io@0.1']:.1f}%  AUC@0.1 {best['val_auc_io@0.1']:.3f}")
    elif "val_ap" in best:
        print(f"best epoch {best['epoch']}: AP@0.5 {best['val_ap']:.3f}  recall {best['val_recall']:.3f}  "
              f"false faces per picture {best['val_false_per_picture']:.3f}")
    elif "epoch" in best:
        print(f"no validation list; lowest training loss {best['train_loss']:.4g} at epoch {best['epoch']}")


def prepare_landmarks(job: Job, config: Config, model_path: Path | None, ranks: Distributed):
    """Spec, net, task and datasets of a landmark run (``model_path``: finetune from it)."""
    if config.picture_zoom != Config.picture_zoom:
        raise UsageError("--picture-zoom: a face detector's training pictures; a landmark model's crops zoom "
                         "by --scale")
    train_list, test_list = lists_of(job, config.seed, ranks, validation=True)
    train_data = read_list(train_list, strict=job.strict)
    spec = training_spec(config, train_data)
    loaded = None
    if model_path is not None:
        torch.manual_seed(spec.config.seed)  # a finetune's new layers are drawn here
        loaded = load_model(model_path, spec_change=lambda old: finetune_spec(old, spec))
        if loaded.new_layers:
            heads = sorted({name.split(".")[0] for name in loaded.new_layers})
            log.info("finetune: new layers (not in %s): %s", model_path, ", ".join(heads))
    train_set = make_dataset(train_data, spec, job, train=True)
    check_list_stage(train_data, spec.config.classify)
    if spec.config.teacher:
        teacher = load_model(resolve_model(spec.config.teacher))
        train_set.set_teacher(teacher_points(teacher, spec, train_set, job.cache_dir, resolve_device(job.device)))
    val_set = None
    if test_list.is_file() and test_list.read_text().strip():
        val_data = check_list_for(spec, read_list(test_list, strict=job.strict, num_points=spec.num_points or None))
        check_list_stage(val_data, spec.config.classify)
        val_set = make_dataset(val_data, spec, job, train=False)
    torch.manual_seed(spec.config.seed)
    model = (loaded.net if loaded is not None else spec.build()).to(memory_format=torch.channels_last)
    return spec, model, LandmarkTask(spec, spec.codec(model)), train_set, val_set


def prepare_faces(job: Job, config: Config, model_path: Path | None, ranks: Distributed):
    """Spec, net, task and picture datasets of a face detector run."""
    landmark_only = [f"--{field.name.replace('_', '-')}" for field in dataclasses.fields(config.augment)
                     if field.name != "rotation" and getattr(config.augment, field.name) != field.default]
    if landmark_only:
        raise UsageError(f"{', '.join(landmark_only)}: landmark-crop augmentation; a face detector's training "
                         "pictures are zoomed, mirrored and coloured by their own recipe, and take --rotation only")
    if config.light_epochs:
        raise UsageError("--light-epochs: landmark-crop augmentation; a face detector's training pictures "
                         "keep their own recipe")
    train_path, test_path = lists_of(job, config.seed, ranks, pictures=True, validation=True)
    spec = ModelSpec(dataclasses.replace(config, scheme="", expand=None), None)
    pictures, _ = read_picture_list(train_path, strict=job.strict)
    # --rotation turns some training crops; --picture-zoom sets how close they come
    augment = PictureAugment(zoom=(ZOOM_RANGE[0], config.picture_zoom), rotation=config.augment.rotation)
    train_set = PictureDataset(pictures, size=config.input_size, augment=augment, strict=job.strict,
                               progress=job.progress)
    log.info("%s: %d pictures, %d faces", train_path, len(train_set), sum(len(p.boxes) for p in train_set.pictures))
    if config.pose_balance:
        if not (train_path.parent / "lists.json").is_file():
            raise UsageError(f"--pose-balance: {train_path.parent} has no lists.json to say the points' scheme")
        scheme = read_list_info(train_path.parent).scheme
        train_set.set_draw_weights(picture_pose_weights(train_set, scheme, config.pose_balance))
    val_set = None
    if test_path.is_file() and test_path.read_text().strip():
        pictures, _ = read_picture_list(test_path, strict=job.strict)
        val_set = PictureDataset(pictures, size=config.input_size, strict=job.strict, progress=job.progress)
        log.info("%s: %d pictures, %d faces", test_path, len(val_set), sum(len(p.boxes) for p in val_set.pictures))
    torch.manual_seed(config.seed)
    model = load_model(model_path, expect_task="faces").net if model_path else spec.build()
    return spec, model, FaceTask(spec, model), train_set, val_set


def accuracy_text(value: float) -> str:
    """An accuracy for the log; NaN, a class the list has no crop of, says so."""
    return "(none listed)" if value != value else f"{value:.4f}"


def test_crops(job: Job, model: str, outputs: Outputs, *, test_flip: bool | None = None,
               min_face_prob: float | None = None, metrics_json: Path | None = None,
               predictions_out: Path | None = None, failure_report_dir: Path | None = None,
               ced_plot: Path | None = None) -> dict:
    """``--phase test`` on a list of crops: loss, NME, FR, AUC, NME per region of the face (and the
    face branch's accuracies), with the pictures and files asked for."""
    loaded = load_model(resolve_model(model))
    spec = loaded.spec
    if min_face_prob is not None:  # the accuracy at another operating point
        spec = dataclasses.replace(spec, config=dataclasses.replace(spec.config, face_threshold=min_face_prob))
    device = resolve_device(job.device)
    _, test_list = lists_of(job, spec.config.seed) if job.test_list is None else (None, job.test_list)
    outputs.reads("--test-list", test_list)
    for flag, path in (("--metrics-json", metrics_json), ("--predictions-out", predictions_out),
                       ("--failure-report", failure_report_dir and failure_report_dir / "failures.png"),
                       ("--failure-report", failure_report_dir and failure_report_dir / "point_errors.png"),
                       ("--ced-plot", ced_plot)):
        if path is not None:
            outputs.check(flag, path)
    data = check_list_for(spec, read_list(test_list, strict=job.strict, num_points=spec.num_points or None))
    if data.non_faces and not spec.config.classify:
        raise UsageError(f"{test_list}: list has non-face lines (stage 3) but the model has no "
                         "face/non-face branch; test it on a stage-1 list or use a stage-3 model")
    dataset = make_dataset(data, spec, job, train=False)
    task = LandmarkTask(spec, spec.codec(loaded.net))
    metrics, predictions = task.evaluate(loaded.net.to(device), dataset, device, max_steps=job.max_steps,
                                         test_flip=test_flip)
    metrics["skipped"] = data.report.skipped + dataset.report.skipped
    print(f"{test_list}: {metrics['faces']} faces  loss {metrics['loss']:.4g}  NME_box {metrics['nme_box']:.2f}%  "
          f"NME_io {metrics['nme_io']:.2f}%  FR@0.1 {metrics['fr_io@0.1']:.1f}%  AUC@0.1 {metrics['auc_io@0.1']:.3f}  "
          f"FR@0.08 {metrics['fr_io@0.08']:.1f}%  AUC@0.08 {metrics['auc_io@0.08']:.3f}")
    faces = [(dataset.entries[i], points + dataset.entries[i].box[:2])
             for i, points in zip(predictions["indices"], predictions["points"]) if dataset.entries[i].is_face]
    predicted = np.array([points for _, points in faces])
    truth = np.array([entry.points + entry.box[:2] for entry, _ in faces])
    regions = regions_of(spec.scheme)
    if faces and regions:
        by_region = landmark_metrics(predicted, truth, spec.scheme.interocular, (), regions)
        metrics.update({k: v for k, v in by_region.items() if k.startswith("nme_io_")})
        print("NME_io by region: " + "  ".join(f"{name} {metrics[f'nme_io_{name}']:.2f}%" for name in regions))
    if "acc" in metrics:
        kinds = "".join(f"  {k[len('acc_nonface_'):]} {v:.4f}" for k, v in metrics.items()
                        if k.startswith("acc_nonface_"))
        print(f"face/non-face accuracy {metrics['acc']:.4f}  on faces {accuracy_text(metrics['acc_face'])}  "
              f"on non-faces {accuracy_text(metrics['acc_nonface'])}" + (f" (by kind:{kinds})" if kinds else ""))
        sweep = threshold_sweep(predictions["face_prob"], dataset.is_face[:len(predictions["face_prob"])].numpy())
        metrics["threshold_sweep"] = {f"{t:g}": list(pair) for t, pair in sweep.items()}
        print("faces / non-faces by --min-face-prob:" + "".join(
            f"  {t:g}: {accuracy_text(face)} / {accuracy_text(nonface)}" for t, (face, nonface) in sweep.items()))
    for name in spec.aux_classes:
        if f"aux_{name}_acc" in metrics:
            print(f"attribute {name}: accuracy {metrics[f'aux_{name}_acc']:.4f}")
    if metrics_json:
        outputs.write_text("--metrics-json", metrics_json, json.dumps(metrics, indent=2) + "\n")
    if ced_plot and faces:
        nmes = nme(predicted, truth, interocular_normaliser(truth, spec.scheme.interocular))
        outputs.write_bytes("--ced-plot", ced_plot, ced_chart(nmes, 0.10, f"{Path(model).name} on {test_list}: "
                                                               f"{len(faces)} faces"))
        print(f"cumulative error curve: {ced_plot}")
    if failure_report_dir and faces:
        report = failure_report([entry for entry, _ in faces], predicted, spec.scheme, failure_report_dir, outputs,
                                f"{Path(model).name} on {test_list}")
        print(f"failure report: {failure_report_dir}/failures.png, point_errors.png; worst points: " + ", ".join(
            f"{i + 1} {spec.scheme.points[i]} {report['per_point'][i]:.2f}%" for i in report["worst"]))
    if predictions_out:
        text = predictions_text(dataset.entries, predictions, spec.config.face_threshold)
        outputs.write_text("--predictions-out", predictions_out, text)
        print(f"predictions: {predictions_out} ({text.count(chr(10))} lines)")
    return metrics
