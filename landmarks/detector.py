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

from .augment import AugmentSettings
from .checkpoint import default_model, load_model, resolve_model
from .cli import run_cli
from .config import Config, config_from_dict, load_config_file
from . import native
from .data import FaceLandmarksDataset, build_lists, check_list_stage
from .engine import (FACE_THRESHOLD, Distributed, evaluate, fit, init_distributed, keep_freed_memory,
                     resolve_device)
from .errors import DataError, UsageError
from .export import FORMATS, export_model
from .files import default_cache_dir
from .labels import read_list
from .net import NETS, build_net, count_parameters, freeze, inference_net
from .losses import LOSSES

log = logging.getLogger("landmarks")
PHASES = ("train", "test", "finetune", "predict", "export")
DEFAULTS = Config()
AUGMENT_DEFAULTS = AugmentSettings()
# What --augment switches on; each can still be set alone.
STANDARD_AUGMENT = AugmentSettings(flip=0.5, rotation=15.0, shift=0.05, scale=0.1, brightness=0.2, contrast=0.2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landmarks.detector",
        description="Train, test, finetune, export and run 21-point facial landmark nets.")
    p.add_argument("--phase", required=True, choices=PHASES, help="what to do")
    p.add_argument("--config", type=Path, help="preset file (.toml or .json, e.g. configs/stage1.toml); "
                   "flags given here override it (default: built-in stage-1 settings)")

    d = p.add_argument_group("data")
    d.add_argument("--data-dir", type=Path, default=Path("data"),
                   help="folder with I/, II/ and their label.txt, used to build lists that are missing (default: data)")
    d.add_argument("--list-dir", type=Path, default=Path("lists"),
                   help="folder of train.txt and test.txt (default: lists)")
    d.add_argument("--train-list", type=Path, help="training list (default: <list-dir>/train.txt)")
    d.add_argument("--test-list", type=Path, help="test/validation list (default: <list-dir>/test.txt)")
    d.add_argument("--test-ratio", type=float, default=0.1,
                   help="share of images held out when lists are built here (default: 0.1)")
    d.add_argument("--strict", action="store_true", help="stop at the first bad line or image (default: skip and count)")
    d.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help=f"where decoded crops are cached, keyed by list content (default: {default_cache_dir()})")
    d.add_argument("--no-cache", action="store_true", help="decode images every run (default: use the cache)")

    m = p.add_argument_group("model and training (defaults: the stage-1 settings)")
    m.add_argument("--model", help="checkpoint file or shipped model name, for test, finetune, predict, export "
                   "(default for test/predict/export: the best shipped model)")
    m.add_argument("--net", choices=sorted(NETS), help=f"net to train (default: {DEFAULTS.net})")
    m.add_argument("--channels", type=int, choices=(1, 3), help=f"1 = grayscale, 3 = RGB (default: {DEFAULTS.channels})")
    m.add_argument("--input-size", type=int, help=f"crop size in pixels (default: {DEFAULTS.input_size})")
    m.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help=f"per-image mean/std normalization (default: {DEFAULTS.normalize})")
    m.add_argument("--classify", action=argparse.BooleanOptionalAction, default=None,
                   help=f"add the face/non-face branch, for stage-3 lists (default: {DEFAULTS.classify})")
    m.add_argument("--loss", choices=sorted(LOSSES), help=f"landmark loss (default: {DEFAULTS.loss})")
    m.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), help=f"(default: {DEFAULTS.optimizer})")
    m.add_argument("--lr", type=float, help="learning rate (default: 1e-3 for adam, 1e-2 for sgd; "
                   "finetune: a tenth of the model's)")
    m.add_argument("--momentum", type=float, help=f"SGD momentum (default: {DEFAULTS.momentum})")
    m.add_argument("--weight-decay", type=float, help=f"(default: {DEFAULTS.weight_decay})")
    m.add_argument("--schedule", choices=("none", "step", "cosine"), help=f"(default: {DEFAULTS.schedule})")
    m.add_argument("--step-size", type=int, help=f"epochs between step decays (default: {DEFAULTS.step_size})")
    m.add_argument("--gamma", type=float, help=f"step decay factor (default: {DEFAULTS.gamma})")
    m.add_argument("--warmup-epochs", type=int, help=f"linear warm-up epochs (default: {DEFAULTS.warmup_epochs})")
    m.add_argument("--sgd-after", type=int, help=f"switch Adam to SGD after this epoch, 0 never (default: {DEFAULTS.sgd_after})")
    m.add_argument("--epochs", type=int, help=f"(default: {DEFAULTS.epochs})")
    m.add_argument("--batch-size", type=int, help=f"(default: {DEFAULTS.batch_size})")
    m.add_argument("--seed", type=int, help=f"fixes the split and the training run (default: {DEFAULTS.seed})")
    m.add_argument("--grad-clip", type=float, help=f"max gradient norm, 0 off (default: {DEFAULTS.grad_clip})")
    m.add_argument("--cls-weight", type=float, help=f"a, weight of the classification loss (default: {DEFAULTS.cls_weight})")
    m.add_argument("--landmark-weight", type=float, help=f"b, weight of the landmark loss (default: {DEFAULTS.landmark_weight})")
    m.add_argument("--class-weights", help="cross-entropy weights non-face,face (default: 1,1)")
    m.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help=f"bfloat16 autocast when training on CUDA (default: {DEFAULTS.amp})")
    m.add_argument("--test-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="test/predict/export: average each crop with its mirror image (default: as the model was "
                        f"trained to be used; built-in {DEFAULTS.test_flip})")
    m.add_argument("--freeze", help="finetune: comma-separated layers to keep fixed, e.g. conv1,conv2 (default: none)")

    a = p.add_argument_group("augmentation (training only; default: all off)")
    a.add_argument("--augment", action="store_true", help=f"switch on the standard set: {STANDARD_AUGMENT}")
    a.add_argument("--flip", type=float, help="probability of a horizontal flip with left/right swap (default: 0)")
    a.add_argument("--rotation", type=float, help="max rotation in degrees (default: 0)")
    a.add_argument("--shift", type=float, help="max shift as a share of the crop (default: 0)")
    a.add_argument("--scale", type=float, help="max zoom change, e.g. 0.1 for 0.9-1.1 (default: 0)")
    a.add_argument("--brightness", type=float, help="max brightness change (default: 0)")
    a.add_argument("--contrast", type=float, help="max contrast change (default: 0)")

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
    t.add_argument("--predictions-out", type=Path,
                   help="write predictions in label.txt form, image-pixel coordinates (default: none)")

    q = p.add_argument_group("predict and export")
    q.add_argument("--image", type=Path, help="picture or folder of pictures to predict on")
    q.add_argument("--box", help="face box x1,y1,x2,y2 (default: find faces with OpenCV's Haar cascade)")
    q.add_argument("--out", type=Path, help="predict: picture or folder to write (default: predictions/); "
                   "export: the file to write")
    q.add_argument("--json", action="store_true", help="print predictions as JSON lines (default: text)")
    q.add_argument("--min-face-prob", type=float, default=FACE_THRESHOLD,
                   help=f"stage 3: drop candidates the classifier scores below this (default: {FACE_THRESHOLD})")
    q.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="predict with PyTorch or an exported ONNX file given as --model (default: torch)")
    q.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default: onnx)")
    return p


# ---------------------------------------------------------------- config from flags

def config_overrides(args) -> dict:
    """The settings given on the command line, as Config fields."""
    names = [f.name for f in dataclasses.fields(Config) if f.name not in ("augment", "class_weights")]
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if args.class_weights is not None:
        try:
            values["class_weights"] = tuple(float(v) for v in args.class_weights.split(","))
        except ValueError:
            raise UsageError(f"--class-weights takes two numbers like 1,2, got {args.class_weights!r}") from None
    augment = dataclasses.asdict(STANDARD_AUGMENT) if args.augment else {}
    for name in (f.name for f in dataclasses.fields(AugmentSettings)):
        if getattr(args, name) is not None:
            augment[name] = getattr(args, name)
    if augment:
        values["augment"] = augment
    return values


def training_config(args, base: Config | None = None) -> Config:
    config = load_config_file(args.config, base) if args.config else (base or Config())
    return config_from_dict(config_overrides(args), config, "command line")


# ---------------------------------------------------------------- lists and datasets

def list_paths(args) -> tuple[Path, Path]:
    return (args.train_list or args.list_dir / "train.txt", args.test_list or args.list_dir / "test.txt")


def ensure_lists(args, seed: int, ranks: Distributed | None = None) -> tuple[Path, Path]:
    """Build the lists from --data-dir when they are missing (rank 0 only; the others wait)."""
    train_list, test_list = list_paths(args)
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


def make_dataset(path: Path, config: Config, args, train: bool) -> FaceLandmarksDataset:
    data = read_list(path, strict=args.strict)
    dataset = FaceLandmarksDataset(
        data.entries, size=config.input_size, channels=config.channels, normalize=config.normalize,
        augment=config.augment if train else None, cache_dir=None if args.no_cache else args.cache_dir,
        strict=args.strict, progress=not args.quiet,
        pin_memory=resolve_device(args.device).type == "cuda")
    dataset.list = data
    skipped = data.report.skipped + dataset.report.skipped
    log.info("%s: %d crops (%d faces, %d non-faces)%s", path, len(dataset), int(dataset.is_face.sum()),
             int((~dataset.is_face).sum()), f", {skipped} skipped" if skipped else "")
    return dataset


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

def load_for_inference(args):
    """The model of --model (or the default) as test, predict and export run it."""
    model, config, _ = load_model(resolve_model(args.model or default_model()))
    if args.test_flip is not None:
        config = dataclasses.replace(config, test_flip=args.test_flip)
    return inference_net(model, config.test_flip), config


def phase_train(args, finetune: bool = False) -> int:
    device = resolve_device(args.device)
    keep_freed_memory()
    ranks = init_distributed(device)
    if ranks.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    resume = args.resume is not None
    init_model = None
    if resume:
        if not (args.resume / "config.json").is_file():
            raise UsageError(f"{args.resume}: not a run folder (no config.json); pass the folder of an earlier run")
        config = load_config_file(args.resume / "config.json")
        if args.epochs is not None:  # the one setting a resumed run may change: how long it goes on
            config = dataclasses.replace(config, epochs=args.epochs)
        if not (args.resume / "last.pt").is_file():
            raise UsageError(f"{args.resume}: no last.pt to resume from")
        run_dir = args.resume
    elif finetune:
        if not args.model:
            raise UsageError("--phase finetune needs --model CHECKPOINT (or a shipped model name)")
        init_model, base, _ = load_model(resolve_model(args.model), add_classifier=bool(args.classify))
        base = dataclasses.replace(base, lr=base.learning_rate / 10)
        config = training_config(args, base)
    else:
        config = training_config(args)
    train_list, test_list = ensure_lists(args, config.seed, ranks)
    if not resume:
        run_dir = new_run_dir(args, config, ranks)
    if ranks.main:
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        log.info("config: %s", json.dumps(config.to_dict()))
    train_set = make_dataset(train_list, config, args, train=True)
    check_list_stage(train_set.list, config.classify)
    val_set = None
    if test_list.is_file() and test_list.read_text().strip():
        val_set = make_dataset(test_list, config, args, train=False)
        check_list_stage(val_set.list, config.classify)
    torch.manual_seed(config.seed)
    model = init_model if init_model is not None else build_net(config.net, config.channels, config.input_size, config.classify)
    if finetune and args.freeze:
        frozen = freeze(model, [n.strip() for n in args.freeze.split(",") if n.strip()])
        log.info("frozen layers: %s", ", ".join(frozen))
    elif args.freeze:
        raise UsageError("--freeze is for --phase finetune")
    if ranks.main:
        log.info("%s: %s net, %d parameters, run folder %s", "finetune" if finetune else "train",
                 config.net, count_parameters(model), run_dir)
        if device.type == "cpu":
            log.info("%s", native.kernels().note)
    result = fit(model, config, train_set, val_set, run_dir, device, resume=resume, max_steps=args.max_steps,
                 progress=not args.quiet, ranks=ranks,
                 extra_state={"frozen": args.freeze or ""})
    if ranks.main:
        best = result.best
        if "val_nme_box" in best:
            print(f"best epoch {best['epoch']}: NME_box {best['val_nme_box']:.2f}%  NME_io "
                  f"{best['val_nme_io']:.2f}%  FR@0.1 {best['val_fr_io@0.1']:.1f}%  AUC@0.1 {best['val_auc_io@0.1']:.3f}")
        elif "epoch" in best:
            print(f"no validation list; lowest training loss {best['train_loss']:.4g} at epoch {best['epoch']}")
        print(f"run folder: {run_dir} (best.pt, last.pt, loss.png, history.csv, train.log, tensorboard/)")
    if ranks.world_size > 1:
        torch.distributed.destroy_process_group()
    return 0


def phase_test(args) -> int:
    model, config = load_for_inference(args)
    device = resolve_device(args.device)
    _, test_list = ensure_lists(args, config.seed) if args.test_list is None else (None, args.test_list)
    dataset = make_dataset(test_list, config, args, train=False)
    if dataset.list.non_faces and not config.classify:
        raise UsageError(f"{test_list}: list has non-face lines (stage 3) but the model has no "
                         "face/non-face branch; test it on a stage-1 list or use a stage-3 model")
    metrics, predictions = evaluate(model.to(device), dataset, config, device, max_steps=args.max_steps)
    metrics["skipped"] = dataset.list.report.skipped + dataset.report.skipped
    print(f"{test_list}: {metrics['faces']} faces  loss {metrics['loss']:.4g}  NME_box {metrics['nme_box']:.2f}%  "
          f"NME_io {metrics['nme_io']:.2f}%  FR@0.1 {metrics['fr_io@0.1']:.1f}%  AUC@0.1 {metrics['auc_io@0.1']:.3f}")
    if "acc" in metrics:
        print(f"face/non-face accuracy {metrics['acc']:.4f}  on faces {metrics['acc_face']:.4f}  "
              f"on non-faces {metrics['acc_nonface']:.4f}")
    if args.metrics_json:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.predictions_out:
        write_predictions(args.predictions_out, dataset, predictions)
    return 0


def write_predictions(path: Path, dataset: FaceLandmarksDataset, predictions: dict) -> None:
    """label.txt form: path as listed, the list's box, 42 predicted coordinates in image pixels."""
    lines = []
    prob = predictions["face_prob"]
    for i, points in zip(predictions["indices"], predictions["points"]):
        if prob is not None and prob[i] < FACE_THRESHOLD:
            continue  # classified as a non-face: no landmarks
        entry = dataset.entries[i]
        absolute = points + entry.box[:2]
        numbers = [f"{v:.2f}" for v in np.concatenate([entry.box, absolute.reshape(-1)])]
        lines.append(" ".join([entry.listed_as or str(entry.image)] + numbers))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    print(f"predictions: {path} ({len(lines)} lines)")


def phase_predict(args) -> int:
    from .predict import Predictor, annotate, faces_as_json, faces_as_text, image_inputs, parse_box, write_picture

    if args.image is None:
        raise UsageError("--phase predict needs --image PICTURE_OR_FOLDER")
    box = parse_box(args.box) if args.box else None
    if args.backend == "onnxruntime":
        if not args.model or not str(args.model).endswith(".onnx"):
            raise UsageError("--backend onnxruntime needs --model FILE.onnx from --phase export")
        config_path = Path(str(args.model) + ".json")
        if not config_path.is_file():
            raise UsageError(f"{config_path}: missing; it is written beside the .onnx file by --phase export")
        predictor = Predictor(load_config_file(config_path), onnx_path=Path(args.model))
    else:
        model, config = load_for_inference(args)
        predictor = Predictor(config, model)
    images = image_inputs(args.image)
    folder_out = args.image.is_dir() or (args.out is not None and args.out.suffix == "")
    out_base = args.out or Path("predictions")
    found = 0
    for image_path in images:
        out_path = out_base / f"{image_path.stem}_landmarks.png" if folder_out or args.out is None else out_base
        try:
            faces, canvas = annotate(image_path, predictor, box, args.min_face_prob)
        except DataError as error:
            if len(images) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)
            continue
        write_picture(out_path, canvas)
        found += sum(f.landmarks is not None for f in faces)
        print(faces_as_json(image_path, out_path, faces) if args.json else faces_as_text(image_path, out_path, faces))
        if not faces and not args.json:
            print(f"  no face found in {image_path}; pass --box x1,y1,x2,y2 to give one")
    return 0


def phase_export(args) -> int:
    if args.out is None:
        raise UsageError("--phase export needs --out FILE")
    model, config = load_for_inference(args)
    out = export_model(model, config, args.format, args.out)
    Path(str(out) + ".json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    print(f"exported {config.net} as {args.format}: {out} (preprocessing settings in {out}.json)")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    phases = {"train": phase_train, "finetune": lambda a: phase_train(a, finetune=True),
              "test": phase_test, "predict": phase_predict, "export": phase_export}
    return run_cli(lambda: phases[args.phase](args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
