"""Whole-picture prediction speed: the trained face detector against OpenCV's Haar cascade, with
the nets in ONNX Runtime or PyTorch.

Pictures of a picture list are resized so that their longer side is 700 pixels (about
700 x 600) and kept as JPEG bytes in memory. Each finder then runs the whole pipeline on
every picture (decode, find faces, face branch, second look, merge), the finders taking
turns picture by picture so that a change in the machine's speed affects both alike.
Reported: median milliseconds per picture for each part, and faces found.

    python scripts/bench_pictures.py --pictures lists/split/test_pictures.txt
    python scripts/bench_pictures.py --pictures lists/split/test_pictures.txt --detectors default --backends auto torch
    python scripts/bench_pictures.py --pictures lists/split/test_pictures.txt --detectors default --variants settle_iou=0.8 settle_iou=0
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landmarks.data.images import load_image
from landmarks.data.labels import read_picture_list
from landmarks.data.pictures import shrink
from landmarks.inference.landmarker import Landmarker, LandmarkerSettings
from landmarks.inference.runtime import BACKENDS


def jpeg_at(path: Path, side: int) -> bytes:
    image = load_image(path, 3)
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        image = shrink(image, side)
    else:
        image = np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def variant(text: str) -> dict[str, float]:
    """``SETTING=VALUE[,SETTING=VALUE...]`` (numeric LandmarkerSettings fields) -> keyword overrides."""
    known = {f.name for f in fields(LandmarkerSettings)}
    settings = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in known:
            raise argparse.ArgumentTypeError(f"{key!r} is no pipeline setting; valid: {', '.join(sorted(known))}")
        try:
            settings[key] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: the value must be a number") from None
    return settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=Path, default=Path("lists/split/test_pictures.txt"),
                        help="picture list (default: %(default)s)")
    parser.add_argument("--count", type=int, default=100, help="pictures to time (default: %(default)s)")
    parser.add_argument("--side", type=int, default=700, help="longer side in pixels (default: %(default)s)")
    parser.add_argument("--model", default="stage3", help="landmark model (default: %(default)s)")
    parser.add_argument("--detectors", nargs="+", default=["default", "haar"],
                        help="face finders to compare (default: the shipped detector and haar)")
    parser.add_argument("--backends", nargs="+", default=["auto"], choices=BACKENDS,
                        help="how the nets run, each timed with each finder (default: auto, ONNX Runtime where "
                             "installed)")
    parser.add_argument("--variants", type=variant, nargs="+", default=[{}], metavar="SETTING=VALUE[,...]",
                        help="pipeline settings (LandmarkerSettings fields, as settle_iou=0), each variant timed "
                             "with each finder and backend; default: the pipeline as it is")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the pictures (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pictures, _ = read_picture_list(args.pictures)
    pictures = pictures[:args.count]
    encoded = [jpeg_at(p.image, args.side) for p in pictures]
    sizes = [Image.open(io.BytesIO(b)).size for b in encoded]
    markers = {(name, backend, i): Landmarker(args.model, detector=name, backend=backend, **settings)
               for name in args.detectors for backend in args.backends for i, settings in enumerate(args.variants)}
    times = {name: {"decode": [], "detector": [], "landmarks": []} for name in markers}
    found = {name: 0 for name in markers}
    for round_number in range(args.rounds + 1):  # the first pass warms up, untimed
        for data in encoded:
            for name, marker in markers.items():
                start = time.perf_counter()
                rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                decoded = time.perf_counter()
                faces = marker.detect(rgb)
                if round_number:
                    times[name]["decode"].append(decoded - start)
                    times[name]["detector"].append(marker.timings["detector_ms"] / 1000)
                    times[name]["landmarks"].append(marker.timings["landmarks_ms"] / 1000)
                    if round_number == 1:
                        found[name] += sum(f.is_face for f in faces)
    widths, heights = zip(*sizes)
    print(f"{len(pictures)} pictures of {args.pictures}, median {statistics.median(widths):.0f} x "
          f"{statistics.median(heights):.0f}; {args.threads} thread(s), torch {torch.__version__}, "
          f"model {args.model}, {args.rounds} rounds")
    labels = {}
    for name, marker in markers.items():
        labels[name] = f"{getattr(marker.finder, 'name', name[0])}/{marker.backend}"
        if len(args.variants) > 1:
            overrides = args.variants[name[2]]
            labels[name] += " " + (",".join(f"{k}={v:g}" for k, v in overrides.items()) or "as it is")
    width = max(len("finder/backend"), *map(len, labels.values()))
    print(f"{'finder/backend':{width}s} {'decode':>8s} {'detector':>9s} {'landmarks':>10s} {'pipeline':>9s} "
          f"{'with decode':>12s} {'faces':>6s}   (median ms per picture)")
    for name, parts in times.items():
        pipeline = np.add(parts["detector"], parts["landmarks"])
        total = pipeline + np.array(parts["decode"])
        print(f"{labels[name]:{width}s} {1000 * np.median(parts['decode']):8.1f} "
              f"{1000 * np.median(parts['detector']):9.1f} {1000 * np.median(parts['landmarks']):10.1f} "
              f"{1000 * np.median(pipeline):9.1f} {1000 * np.median(total):12.1f} {found[name]:6d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
