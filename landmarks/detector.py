"""The one entry point: ``python -m landmarks.detector --phase train|test|finetune|predict|export``.

It parses the flags and hands each phase to the room that does it: training and crop tests
to ``train.run``, whole-picture tests to ``inference.evaluate``, predict to
``inference.predict``, export to ``inference.export``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checkpoint import default_model, load_model, resolve_model
from .cli import run_cli
from .config import (Config, add_config_flags, add_settings_flags, config_from_dict, config_overrides,
                     load_config_file, settings_from_flags)
from .errors import UsageError
from .data.writers import LABEL_FORMATS
from .files import Outputs, default_cache_dir
from .inference.evaluate import test_pictures
from .inference.export import FORMATS, export_model
from .inference.landmarker import Landmarker, LandmarkerSettings
from .inference.predict import predict_pictures, predict_video
from .inference.track import TrackSettings
from .train.run import Job, finetune_base, resumed_config, test_crops, train

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
    t.add_argument("--ced-plot", type=Path, help="test on crops: the cumulative error curve (NME_io to 10 %%) as a "
                   "picture (default: none)")
    t.add_argument("--failure-report", type=Path, metavar="DIR",
                   help="test on crops: the worst faces (failures.png) and the error per point (point_errors.png) "
                        "in this folder (default: none)")

    q = p.add_argument_group("predict and export")
    q.add_argument("--image", type=Path, help="picture or folder of pictures to predict on")
    q.add_argument("--video", type=Path, help="video file to predict on: faces are tracked frame to frame")
    q.add_argument("--camera", type=int, metavar="N", help="camera N (0 for the first): a window where OpenCV has "
                   "one, else annotated frames to --out; stop with q or Ctrl-C")
    q.add_argument("--box", help="face box x1,y1,x2,y2 (default: find the faces)")
    add_settings_flags(q, LandmarkerSettings)
    q.add_argument("--out", type=Path, help="predict: picture or folder (video: .mp4 file) to write (default: "
                   "predictions/); export: the file to write. Never one of the command's inputs")
    q.add_argument("--json", action="store_true",
                   help="print one JSON object per picture on stdout, and nothing else there (default: text)")
    q.add_argument("--json-out", type=Path, help="also write the JSON objects to this JSON lines file (default: none)")
    q.add_argument("--align-out", type=Path, metavar="DIR",
                   help="write each face's aligned crop (eye centres, nose tip, mouth corners at fixed places) "
                        "here (default: none)")
    q.add_argument("--align-size", type=int, default=112, help="side of the aligned crops in pixels (default: 112)")
    q.add_argument("--labels-out", type=Path, metavar="PATH",
                   help="predict on pictures: also write the faces found as annotations to import into CVAT, "
                        "Label Studio or labelme; a stopped run started again skips the pictures done (default: none)")
    q.add_argument("--labels-format", choices=LABEL_FORMATS, default="coco",
                   help="--labels-out as a COCO keypoints file, a folder of labelme JSON files or a label.txt "
                        "(default: coco)")
    q.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default: onnx)")
    add_settings_flags(p.add_argument_group("video and camera"), TrackSettings)
    return p


def training_config(args, base: Config | None = None) -> Config:
    config = load_config_file(args.config, base) if args.config else (base or Config())
    return config_from_dict(config_overrides(args), config, "command line")


def job_of(args) -> Job:
    return Job(data_dir=args.data_dir, list_dir=args.list_dir, train_list=args.train_list, test_list=args.test_list,
               test_ratio=args.test_ratio, strict=args.strict, cache_dir=None if args.no_cache else args.cache_dir,
               runs_dir=args.runs_dir, run_name=args.run_name, device=args.device, max_steps=args.max_steps,
               progress=not args.quiet)


def inputs_of(args) -> Outputs:
    """What the command reads, named by flag: no output may be written over one of them."""
    outputs = Outputs()
    model = Path(args.model) if args.model else None
    outputs.reads("--model", *(path for path in (model, model and Path(f"{model}.json")) if path and path.exists()))
    outputs.reads("--config", args.config)
    outputs.reads("--train-list", args.train_list)
    outputs.reads("--test-list", args.test_list)
    if args.list_dir.is_dir():
        outputs.reads("--list-dir", *sorted(args.list_dir.glob("*.txt")), args.list_dir / "lists.json")
    return outputs


def look_settings(args, **values) -> LandmarkerSettings:
    """The Landmarker settings of predict and the whole-picture test, from their flags."""
    return settings_from_flags(LandmarkerSettings, args, test_flip=args.test_flip, **values)


def phase_train(args, finetune: bool = False) -> int:
    model_path, resume = None, args.resume
    if resume is not None:
        config = resumed_config(resume, args.epochs)
    elif finetune:
        if not args.model:
            raise UsageError("--phase finetune needs --model CHECKPOINT (or a shipped model name)")
        model_path, base = finetune_base(args.model)
        config = training_config(args, base)
    else:
        config = training_config(args)
    return train(job_of(args), config, inputs_of(args), model_path=model_path, resume=resume,
                 frozen_layers=args.freeze or "")


def phase_test(args) -> int:
    outputs = inputs_of(args)
    if args.test_pictures is not None:
        test_pictures(args.test_pictures, args.model, look_settings(args), outputs, strict=args.strict,
                      progress=not args.quiet, metrics_json=args.metrics_json, pr_plot=args.pr_plot)
    else:
        test_crops(job_of(args), args.model or default_model(), outputs, test_flip=args.test_flip,
                   min_face_prob=args.min_face_prob, metrics_json=args.metrics_json,
                   predictions_out=args.predictions_out, failure_report_dir=args.failure_report,
                   ced_plot=args.ced_plot)
    return 0


def phase_predict(args) -> int:
    if sum(x is not None for x in (args.image, args.video, args.camera)) != 1:
        raise UsageError("--phase predict needs one of --image PICTURE_OR_FOLDER, --video FILE, --camera N")
    if args.box and args.image is None:
        raise UsageError("--box is for pictures; in a video the faces are found and tracked")
    outputs = inputs_of(args)
    given_boxes = {"detector": None} if args.box else {}  # no face finder: the box is the face
    marker = Landmarker(args.model, look_settings(args, **given_boxes))
    written = dict(out=args.out, json_stdout=args.json, json_out=args.json_out, align_out=args.align_out,
                   align_size=args.align_size)
    if args.image is not None:
        return predict_pictures(marker, args.image, outputs, box=args.box, labels_out=args.labels_out,
                                labels_format=args.labels_format, progress=not args.quiet, **written)
    return predict_video(marker, outputs, video=args.video, camera=args.camera,
                         settings=settings_from_flags(TrackSettings, args), **written)


def phase_export(args) -> int:
    if args.out is None:
        raise UsageError("--phase export needs --out FILE")
    loaded = load_model(resolve_model(args.model or default_model()))
    model = loaded.spec.inference_model(loaded.net, args.test_flip)
    out = export_model(model, loaded.spec, args.format, args.out, inputs_of(args))
    print(f"exported {loaded.config.net} as {args.format}: {out} (preprocessing settings in {out}.json)")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    phases = {"train": phase_train, "finetune": lambda a: phase_train(a, finetune=True),
              "test": phase_test, "predict": phase_predict, "export": phase_export}
    return run_cli(lambda: phases[args.phase](args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
