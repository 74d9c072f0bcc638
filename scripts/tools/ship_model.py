"""Copy a run's checkpoint into the package as a shipped model (weights and config only).

    python scripts/tools/ship_model.py runs/stage1-all/last.pt stage1
    python scripts/tools/ship_model.py runs/faces-tune/last.pt faces --input-size 384

Training-only settings that name local files (the distillation teacher) are cleared, so a
finetune from the shipped model does not look for them.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from landmarks.checkpoint import checkpoint_bytes, load_model
from landmarks.cli import run_cli
from landmarks.files import Outputs

MAX_BYTES = 5_000_000
MODELS = Path(__file__).resolve().parents[2] / "landmarks" / "models"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a run's best.pt or last.pt")
    parser.add_argument("name", help="shipped name, e.g. stage1")
    parser.add_argument("--test-flip", action=argparse.BooleanOptionalAction, default=None,
                        help="ship with test-time flip averaging on or off (default: as trained)")
    parser.add_argument("--full-precision", action="store_true",
                        help="store float32 weights (default: float16, half the file; the nets run in float32)")
    parser.add_argument("--input-size", type=int,
                        help="face detector: the picture size it runs at, chosen on validation pictures "
                             "(default: as trained)")
    parser.add_argument("--face-threshold", type=float,
                        help="the score from which a candidate (detector) or crop (face branch) counts as a face, "
                             "chosen on validation data (default: as trained)")
    parser.add_argument("--models-dir", type=Path, default=MODELS,
                        help="where shipped models live (default: the package's landmarks/models)")
    args = parser.parse_args(argv)
    return run_cli(lambda: ship(args))


def ship(args) -> int:
    outputs = Outputs()
    outputs.reads("checkpoint", args.checkpoint)
    out = outputs.check("name", args.models_dir / f"{args.name}.pt")
    loaded = load_model(args.checkpoint, expect_task=None)
    spec = loaded.spec
    changes = {"teacher": ""}
    if args.test_flip is not None:
        changes["test_flip"] = args.test_flip
    if args.input_size:
        if spec.config.task != "faces":
            raise SystemExit(f"{args.checkpoint}: --input-size is for face detectors; crop models keep their size")
        changes["input_size"] = args.input_size
    if args.face_threshold is not None:
        changes["face_threshold"] = args.face_threshold
    spec = dataclasses.replace(spec, config=dataclasses.replace(spec.config, **changes))
    data = checkpoint_bytes(loaded.net, spec, half=not args.full_precision)
    config = spec.config
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{args.checkpoint}: {len(data) / 1e6:.1f} MB is over the 5 MB limit for shipped models")
    outputs.write_bytes("name", out, data)
    print(f"shipped {config.net} as {out} ({len(data) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
