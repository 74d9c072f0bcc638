"""The one entry point: ``python -m landmarks.detector --phase train|test|finetune|predict|export``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import default_model, load_model, read_checkpoint, resolve_model
from .cli import run_cli
from .config import Config, add_config_flags, config_from_dict, config_overrides, load_config_file
from .data.dataset import FaceLandmarksDataset, check_list_stage
from .data.labels import LandmarkList, read_list
from .data.lists import build_lists
from .errors import DataError, UsageError
from .files import default_cache_dir
from .inference.export import FORMATS, export_model
from .net import count_parameters, freeze
from .net import native
from .inference.smoothing import OneEuroSettings
from .spec import ModelSpec, resolve_scheme, spec_from_dict
from .train import (Distributed, LandmarkTask, fit, init_distributed, keep_freed_memory, resolve_device,
                    threshold_sweep)

log = logging.getLogger("landmarks")
PHASES = ("train", "test", "finetune", "predict", "export")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landmarks.detector",
        description="Train, test, finetune, export and run facial landmark nets (any landmark scheme).")
    p.add_argument("--phase", required=True, choices=PHASES, help="what to do")
    p.add_argument("--config", type=Path, help="preset file (.toml or .json, e.g. configs/stage1.toml); "
                   "flags given here override it (default: built-in stage-1 settings)")

    d = p.add_argument_group("data")
    d.add_argument("--data-dir", type=Path, default=Path("data"),
                   help="folder with I/, II/ and their label.txt, used to build lists that are missing (default: data)")
    d.add_argument("--list-dir", type=Path, default=Path("lists"),
                   help="folder of train.txt and test.txt (default: lists)")
    d.add_argument("--train-list", type=Path, help="training list (default: <list-dir>/train.txt)")
    d.add_argument("--test-list", type=Path, help="test/validation list (default: <list-dir>/test.txt; training "
                   "validates on <list-dir>/val.txt where the lists have one)")
    d.add_argument("--test-ratio", type=float, default=0.1,
                   help="share of images held out when lists are built here (default: 0.1)")
    d.add_argument("--strict", action="store_true", help="stop at the first bad line or image (default: skip and count)")
    d.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help=f"where decoded crops are cached, keyed by list content (default: {default_cache_dir()})")
    d.add_argument("--no-cache", action="store_true", help="decode images every run (default: use the cache)")

    m = p.add_argument_group("model")
    m.add_argument("--model", help="checkpoint file or shipped model name, for test, finetune, predict, export "
                   "(default: stage2 for test and export, stage3 for predict)")
    m.add_argument("--freeze", help="finetune: comma-separated layers to keep fixed, e.g. conv1,conv2 (default: none)")
    add_config_flags(p)

    r = p.add_argument_group("runs")
    r.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go (default: runs)")
    r.add_argument("--run-name", help="run folder name (default: <net>-<date>-<time>)")
    r.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    r.add_argument("--max-steps", type=int, default=0, help="dry run: at most this many batches per epoch (default: 0, all)")
    r.add_argument("--quiet", action="store_true", help="no progress bars (default: shown)")
    r.add_argument("--debug", action="store_true", help="show tracebacks (default: one line per error)")

    t = p.add_argument_group("test")
    t.add_argument("--metrics-json", type=Path, help="write the test metrics here (default: print only)")
    t.add_argument("--test-pictures", type=Path,
                   help="whole-picture test: a picture list (test_pictures.txt) or a folder of label folders; "
                        "finds the faces with --detector, then landmarks (default: crops of --test-list)")
    t.add_argument("--pr-plot", type=Path, help="whole-picture test: the face finder's precision-recall plot "
                   "(default: none)")
    t.add_argument("--predictions-out", type=Path,
                   help="write predictions in label.txt form (path, crop box, K points in image pixels) for crops "
                        "the model calls faces (default: none)")

    q = p.add_argument_group("predict and export")
    q.add_argument("--image", type=Path, help="picture or folder of pictures to predict on")
    q.add_argument("--video", type=Path, help="video file to predict on: faces are tracked frame to frame")
    q.add_argument("--camera", type=int, metavar="N", help="camera N (0 for the first): a window where OpenCV has "
                   "one, else annotated frames to --out; stop with q or Ctrl-C")
    q.add_argument("--box", help="face box x1,y1,x2,y2 (default: find the faces)")
    q.add_argument("--detector", default="default",
                   help="face finder: a detector checkpoint or shipped name, or haar for OpenCV's cascade "
                        "(default: the shipped detector, faces)")
    q.add_argument("--detector-threshold", type=float, default=None,
                   help="score from which a candidate goes on to the landmark model (default: the detector's own; "
                        "the shipped one's is 0.2)")
    q.add_argument("--detector-size", type=int, default=None,
                   help="longer side in pixels that pictures are resized to for the face detector; larger finds "
                        "smaller faces, at more time (default: the detector's own; the shipped one's is 448)")
    q.add_argument("--detector-zoom-below", type=float, default=None, metavar="PX",
                   help="look again at twice --detector-size when a face the detector is sure of is smaller "
                        "than this many pixels at that size (a crowd); 0: one look (default: 24)")
    q.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                   help="look at each face again, cropped from the box its points give (default: on)")
    q.add_argument("--turn-above", type=float, default=20.0, metavar="DEG",
                   help="on that second look, crop a head tilted by more than this many degrees (its eye line) "
                        "turned upright; 0: never (default: 20)")
    q.add_argument("--out", type=Path, help="predict: picture or folder (video: .mp4 file) to write (default: "
                   "predictions/); export: the file to write")
    q.add_argument("--json", action="store_true",
                   help="print one JSON object per picture on stdout, and nothing else there (default: text)")
    q.add_argument("--json-out", type=Path, help="also write the JSON objects to this JSON lines file (default: none)")
    q.add_argument("--align-out", type=Path, metavar="DIR",
                   help="write each face's aligned crop (eye centres, nose tip, mouth corners at fixed places) "
                        "here (default: none)")
    q.add_argument("--align-size", type=int, default=112, help="side of the aligned crops in pixels (default: 112)")
    v = p.add_argument_group("video and camera")
    v.add_argument("--detect-every", type=int, default=10,
                   help="run the face finder every this many frames for new faces; it also runs when a face is "
                        "lost (default: 10)")
    v.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                   help="smooth each face's points over time with the One Euro filter (default: on)")
    v.add_argument("--min-cutoff", type=float, default=OneEuroSettings.min_cutoff,
                   help="One Euro filter cut-off at rest, Hz: lower is steadier (default: %(default)s)")
    v.add_argument("--beta", type=float, default=OneEuroSettings.beta,
                   help="One Euro filter speed coefficient: higher lags less on fast moves (default: %(default)s)")
    q.add_argument("--min-face-prob", type=float, default=None,
                   help="models with a face branch: a crop is a face from this probability on, in test "
                        "(crops and pictures), predict and --predictions-out (default: the model's face_threshold)")
    q.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="predict with PyTorch or an exported ONNX file given as --model (default: torch)")
    q.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default: onnx)")
    return p


# ---------------------------------------------------------------- config, lists, datasets

def training_config(args, base: Config | None = None) -> Config:
    config = load_config_file(args.config, base) if args.config else (base or Config())
    return config_from_dict(config_overrides(args), config, "command line")


def list_paths(args) -> tuple[Path, Path]:
    return (args.train_list or args.list_dir / "train.txt", args.test_list or args.list_dir / "test.txt")


def picture_list_paths(args) -> tuple[Path, Path]:
    return (args.train_list or args.list_dir / "train_pictures.txt",
            args.test_list or args.list_dir / "test_pictures.txt")


def ensure_lists(args, seed: int, ranks: Distributed | None = None, pictures: bool = False,
                 validation: bool = False) -> tuple[Path, Path]:
    """The train and test lists (``pictures``: the picture lists), built from --data-dir when the
    list folder has none (rank 0 only; the others wait). ``validation`` (training): where the
    folder has a validation part (built with --val-ratio) and no --test-list is given, it is the
    held-out list, so that a run's best.pt is not chosen on the test faces."""
    train_list, test_list = picture_list_paths(args) if pictures else list_paths(args)
    val_list = args.list_dir / ("val_pictures.txt" if pictures else "val.txt")
    if validation and args.test_list is None and val_list.is_file():
        log.info("validating on %s, the lists' validation part (--test-list picks another)", val_list)
        test_list = val_list
    ranks = ranks or Distributed()
    if ranks.world_size > 1 and not ranks.main:
        torch.distributed.barrier()
        return train_list, test_list
    if not train_list.is_file() and args.train_list is None:
        log.info("no %s: building lists from %s", train_list, args.data_dir)
        summary = build_lists(args.data_dir, args.list_dir, test_ratio=args.test_ratio, seed=seed,
                              strict=args.strict)
        log.info("%s; %d train and %d test lines in %s", summary["summary"], summary["train_lines"],
                 summary["test_lines"], args.list_dir)
    if ranks.world_size > 1:
        torch.distributed.barrier()
    return train_list, test_list


def make_dataset(data: LandmarkList, spec: ModelSpec, args, train: bool) -> FaceLandmarksDataset:
    config = spec.config
    dataset = FaceLandmarksDataset(
        data.entries, num_points=spec.num_points, size=config.input_size, channels=config.channels,
        normalize=config.normalize, augment=config.augment if train else None,
        flip_permutation=spec.scheme.flip_permutation, attributes=tuple(spec.aux_classes),
        cache_dir=None if args.no_cache else args.cache_dir, strict=args.strict, progress=not args.quiet,
        pin_memory=resolve_device(args.device).type == "cuda")
    skipped = data.report.skipped + dataset.report.skipped
    log.info("%s: %d crops (%d faces, %d non-faces)%s", data.path, len(dataset), int(dataset.is_face.sum()),
             int((~dataset.is_face).sum()), f", {skipped} skipped" if skipped else "")
    return dataset


def read_list_for(path: Path, spec: ModelSpec, args) -> LandmarkList:
    """A list to test or validate ``spec``'s model on: same scheme and crop expansion."""
    data = read_list(path, strict=args.strict, num_points=spec.num_points or None)
    scheme = data.info.scheme
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


def writable_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A uniquely named probe: runs started together in one folder must not race.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"{folder}: cannot write here ({error.strerror or error})") from None
    return folder


def new_run_dir(args, config: Config, ranks: Distributed) -> Path:
    name = args.run_name or f"{config.net}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = args.runs_dir / name
    if ranks.main:
        writable_folder(args.runs_dir)
        if (run_dir / "last.pt").exists():
            raise UsageError(f"{run_dir}: a run of that name exists; use --resume {run_dir} or another --run-name")
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


# ---------------------------------------------------------------- phases

def finetune_spec(old: ModelSpec, new: ModelSpec) -> ModelSpec:
    """The finetuned model: the old net with the new run's heads (face branch, scheme, attributes)."""
    if new.config.net != old.config.net:
        raise UsageError(f"--net {new.config.net}: finetuning keeps the model's net ({old.config.net})")
    return new


def phase_train(args, finetune: bool = False) -> int:
    device = resolve_device(args.device)
    keep_freed_memory()
    ranks = init_distributed(device)
    if ranks.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    resume = args.resume is not None
    model_path = None
    if resume:
        if not (args.resume / "config.json").is_file():
            raise UsageError(f"{args.resume}: not a run folder (no config.json); pass the folder of an earlier run")
        config = load_config_file(args.resume / "config.json")
        if args.epochs is not None:  # the one setting a resumed run may change: how long it goes on
            config = dataclasses.replace(config, epochs=args.epochs)
        if not (args.resume / "last.pt").is_file():
            raise UsageError(f"{args.resume}: no last.pt to resume from")
    elif finetune:
        if not args.model:
            raise UsageError("--phase finetune needs --model CHECKPOINT (or a shipped model name)")
        model_path = resolve_model(args.model)
        old = spec_from_dict(read_checkpoint(model_path), str(model_path))
        base = dataclasses.replace(old.config, scheme=old.scheme.name if old.scheme else "",
                                   lr=old.config.learning_rate / 10)
        config = training_config(args, base)
    else:
        config = training_config(args)
    prepare = prepare_faces if config.task == "faces" else prepare_landmarks
    spec, model, task, train_set, val_set = prepare(args, config, model_path, ranks)
    run_dir = args.resume if resume else new_run_dir(args, config, ranks)
    if ranks.main:
        (run_dir / "config.json").write_text(json.dumps(spec.config.to_dict(), indent=2) + "\n")
        log.info("config: %s", json.dumps(spec.config.to_dict()))
    if finetune and args.freeze:
        frozen = freeze(model, [n.strip() for n in args.freeze.split(",") if n.strip()])
        log.info("frozen layers: %s", ", ".join(frozen))
    elif args.freeze:
        raise UsageError("--freeze is for --phase finetune")
    if ranks.main:
        what = f"{spec.scheme.name} scheme ({spec.num_points} points)" if spec.scheme else "face detector"
        log.info("%s: %s net, %s, %d parameters, run folder %s", "finetune" if finetune else "train",
                 spec.config.net, what, count_parameters(model), run_dir)
        if device.type == "cpu":
            log.info("%s", native.kernels().note)
    result = fit(model, spec, task, train_set, val_set, run_dir, device, resume=resume, max_steps=args.max_steps,
                 progress=not args.quiet, ranks=ranks, extra_state={"frozen": args.freeze or ""})
    if ranks.main:
        best = result.best
        if "val_nme_box" in best:
            print(f"best epoch {best['epoch']}: NME_box {best['val_nme_box']:.2f}%  NME_io "
                  f"{best['val_nme_io']:.2f}%  FR@0.1 {best['val_fr_io@0.1']:.1f}%  AUC@0.1 {best['val_auc_io@0.1']:.3f}")
        elif "val_ap" in best:
            print(f"best epoch {best['epoch']}: AP@0.5 {best['val_ap']:.3f}  recall {best['val_recall']:.3f}  "
                  f"false faces per picture {best['val_false_per_picture']:.3f}")
        elif "epoch" in best:
            print(f"no validation list; lowest training loss {best['train_loss']:.4g} at epoch {best['epoch']}")
        print(f"run folder: {run_dir} (best.pt, last.pt, loss.png, history.csv, train.log, tensorboard/)")
    if ranks.world_size > 1:
        torch.distributed.destroy_process_group()
    return 0


def prepare_landmarks(args, config: Config, model_path: Path | None, ranks: Distributed):
    """Spec, net, task and datasets of a landmark run (``model_path``: finetune from it)."""
    train_list, test_list = ensure_lists(args, config.seed, ranks, validation=True)
    train_data = read_list(train_list, strict=args.strict)
    spec = training_spec(config, train_data)
    loaded = None
    if model_path is not None:
        loaded = load_model(model_path, spec_change=lambda old: finetune_spec(old, spec))
        if loaded.new_layers:
            heads = sorted({name.split(".")[0] for name in loaded.new_layers})
            log.info("finetune: new layers (not in %s): %s", args.model, ", ".join(heads))
    train_set = make_dataset(train_data, spec, args, train=True)
    check_list_stage(train_data, spec.config.classify)
    if spec.config.teacher:
        from .train.distill import teacher_points
        teacher = load_model(resolve_model(spec.config.teacher))
        train_set.set_teacher(teacher_points(teacher, spec, train_set, None if args.no_cache else args.cache_dir,
                                             resolve_device(args.device)))
    val_set = None
    if test_list.is_file() and test_list.read_text().strip():
        val_data = read_list_for(test_list, spec, args)
        check_list_stage(val_data, spec.config.classify)
        val_set = make_dataset(val_data, spec, args, train=False)
    torch.manual_seed(spec.config.seed)
    model = (loaded.net if loaded is not None else spec.build()).to(memory_format=torch.channels_last)
    return spec, model, LandmarkTask(spec, spec.codec(model)), train_set, val_set


def prepare_faces(args, config: Config, model_path: Path | None, ranks: Distributed):
    """Spec, net, task and picture datasets of a face detector run."""
    from .data.labels import read_picture_list
    from .data.pictures import PictureAugment, PictureDataset
    from .train.tasks import FaceTask

    landmark_only = [f"--{field.name.replace('_', '-')}" for field in dataclasses.fields(config.augment)
                     if field.name != "rotation" and getattr(config.augment, field.name) != field.default]
    if landmark_only:
        raise UsageError(f"{', '.join(landmark_only)}: landmark-crop augmentation; a face detector's training "
                         "pictures are zoomed, mirrored and coloured by their own recipe, and take --rotation only")
    train_path, test_path = ensure_lists(args, config.seed, ranks, pictures=True, validation=True)
    spec = ModelSpec(dataclasses.replace(config, scheme="", expand=None), None)
    pictures, report = read_picture_list(train_path, strict=args.strict)
    augment = PictureAugment(rotation=config.augment.rotation)  # --rotation turns some training crops
    train_set = PictureDataset(pictures, size=config.input_size, augment=augment, strict=args.strict,
                               progress=not args.quiet)
    log.info("%s: %d pictures, %d faces", train_path, len(train_set), sum(len(p.boxes) for p in train_set.pictures))
    val_set = None
    if test_path.is_file() and test_path.read_text().strip():
        pictures, _ = read_picture_list(test_path, strict=args.strict)
        val_set = PictureDataset(pictures, size=config.input_size, strict=args.strict, progress=not args.quiet)
        log.info("%s: %d pictures, %d faces", test_path, len(val_set), sum(len(p.boxes) for p in val_set.pictures))
    torch.manual_seed(config.seed)
    model = load_model(model_path, expect_task="faces").net if model_path else spec.build()
    return spec, model, FaceTask(spec, model), train_set, val_set


def load_for_inference(args):
    loaded = load_model(resolve_model(args.model or default_model()))
    return loaded, loaded.spec.inference_model(loaded.net, args.test_flip)


def phase_test(args) -> int:
    if args.test_pictures is not None:
        return test_pictures(args)
    loaded, _ = load_for_inference(args)
    spec = loaded.spec
    if args.min_face_prob is not None:  # the accuracy at another operating point
        spec = dataclasses.replace(spec, config=dataclasses.replace(spec.config, face_threshold=args.min_face_prob))
    device = resolve_device(args.device)
    _, test_list = ensure_lists(args, spec.config.seed) if args.test_list is None else (None, args.test_list)
    data = read_list_for(test_list, spec, args)
    if data.non_faces and not spec.config.classify:
        raise UsageError(f"{test_list}: list has non-face lines (stage 3) but the model has no "
                         "face/non-face branch; test it on a stage-1 list or use a stage-3 model")
    dataset = make_dataset(data, spec, args, train=False)
    task = LandmarkTask(spec, spec.codec(loaded.net))
    metrics, predictions = task.evaluate(loaded.net.to(device), dataset, device, max_steps=args.max_steps,
                                         test_flip=args.test_flip)
    metrics["skipped"] = data.report.skipped + dataset.report.skipped
    print(f"{test_list}: {metrics['faces']} faces  loss {metrics['loss']:.4g}  NME_box {metrics['nme_box']:.2f}%  "
          f"NME_io {metrics['nme_io']:.2f}%  FR@0.1 {metrics['fr_io@0.1']:.1f}%  AUC@0.1 {metrics['auc_io@0.1']:.3f}")
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
    if args.metrics_json:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.predictions_out:
        threshold = spec.config.face_threshold if args.min_face_prob is None else args.min_face_prob
        write_predictions(args.predictions_out, dataset, predictions, threshold)
    return 0


def accuracy_text(value: float) -> str:
    """An accuracy for the log; NaN, a class the list has no crop of, says so."""
    return "(none listed)" if value != value else f"{value:.4f}"


def read_pictures(path: Path, strict: bool):
    """A picture list, or a folder of the course's label folders -> pictures with every face."""
    from .data.formats import read_source
    from .data.labels import Report, group_pictures, read_picture_list
    if path.is_dir():
        report = Report(strict=strict)
        source = read_source("course", path, report)
        return group_pictures(source.annotations, source.scheme.num_points)
    return read_picture_list(path, strict=strict)[0]


def look_settings(args) -> dict:
    """The Landmarker settings that whole-picture test and predict take alike from the flags."""
    return dict(detector_size=args.detector_size, detector_zoom_below=args.detector_zoom_below,
                refine=args.refine, turn_above=args.turn_above or None,  # --turn-above 0: never turn
                test_flip=args.test_flip, min_face_prob=args.min_face_prob)


def test_pictures(args) -> int:
    """Whole pictures: the face finder, the face branch and the landmarks against every annotated face."""
    from .inference.evaluate import evaluate_pictures, plot_precision_recall
    from .inference.landmarker import Landmarker

    pictures = read_pictures(args.test_pictures, args.strict)
    # Candidates down to a low score make the finder's precision-recall curve; the operating
    # threshold decides what goes on to the landmarks, as in use.
    marker = Landmarker(args.model, detector=args.detector, detector_threshold=0.05, **look_settings(args))
    operating = marker.finder.default_threshold if args.detector_threshold is None else args.detector_threshold
    count = next((p.points.shape[1] for p in pictures if len(p.points)), marker.scheme.num_points)
    if count != marker.scheme.num_points:
        raise UsageError(f"{args.test_pictures}: faces of {count} points, the model predicts {marker.scheme.num_points}")
    metrics, curves = evaluate_pictures(marker, pictures, operating, progress=not args.quiet)
    name = getattr(marker.finder, "name", "finder")
    print(f"{args.test_pictures}: {metrics['pictures']} pictures, {metrics['faces']} faces; finder {name} "
          f"(threshold {operating:g}), refine {'on' if args.refine else 'off'}")
    print(f"found {metrics['found']:.3f}  false faces per picture {metrics['false_per_picture']:.3f}  "
          f"NME_box of found {metrics['nme_box_found']:.2f}%  detector AP@0.5 {metrics['detector_ap']:.3f}  "
          f"proposed {metrics['detector_recall']:.3f}")
    print(f"ms per picture (median): detector {metrics['ms_detector']:.1f}  landmarks {metrics['ms_landmarks']:.1f}  "
          f"both {metrics['ms_picture']:.1f}  (decoding {metrics['ms_decode']:.1f})")
    if "crop_nme_box" in metrics:
        print(f"the same faces from their annotated boxes: found {metrics['crop_found']:.3f}  NME_box "
              f"{metrics['crop_nme_box']:.2f}%  NME_io {metrics['crop_nme_io']:.2f}%  FR@0.1 "
              f"{metrics['crop_fr_io@0.1']:.1f}%  rejected by the face branch {metrics['crop_rejected']:.3f}")
    if args.metrics_json:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.pr_plot:
        plot = plot_precision_recall({name: curves}, args.pr_plot, f"face finder on {metrics['pictures']} pictures")
        print(f"precision-recall plot: {plot}")
    return 0


def write_predictions(path: Path, dataset: FaceLandmarksDataset, predictions: dict, min_face_prob: float) -> None:
    """label.txt form: path as listed, the list's box, 2K predicted coordinates in image pixels,
    for each crop the model calls a face (face probability at least ``min_face_prob``)."""
    lines = []
    prob = predictions["face_prob"]
    for i, points in zip(predictions["indices"], predictions["points"]):
        if prob is not None and prob[i] < min_face_prob:
            continue  # classified as a non-face: no landmarks
        entry = dataset.entries[i]
        absolute = points + entry.box[:2]
        numbers = [f"{v:.2f}" for v in np.concatenate([entry.box, absolute.reshape(-1)])]
        lines.append(" ".join([entry.listed_as or str(entry.image)] + numbers))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    print(f"predictions: {path} ({len(lines)} lines)")


def phase_predict(args) -> int:
    from .inference.landmarker import Landmarker
    from .inference.predict import predict_pictures, predict_video

    sources = [x is not None for x in (args.image, args.video, args.camera)]
    if sum(sources) != 1:
        raise UsageError("--phase predict needs one of --image PICTURE_OR_FOLDER, --video FILE, --camera N")
    marker = Landmarker(args.model, detector=None if args.box else args.detector,
                        detector_threshold=args.detector_threshold, backend=args.backend, **look_settings(args))
    if args.image is not None:
        return predict_pictures(args, marker)
    if args.box:
        raise UsageError("--box is for pictures; in a video the faces are found and tracked")
    return predict_video(args, marker)


def phase_export(args) -> int:
    if args.out is None:
        raise UsageError("--phase export needs --out FILE")
    loaded, model = load_for_inference(args)
    out = export_model(model, loaded.spec, args.format, args.out)
    print(f"exported {loaded.config.net} as {args.format}: {out} (preprocessing settings in {out}.json)")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    phases = {"train": phase_train, "finetune": lambda a: phase_train(a, finetune=True),
              "test": phase_test, "predict": phase_predict, "export": phase_export}
    return run_cli(lambda: phases[args.phase](args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
