"""Score a model's points converted to a scheme derived from its own (for example a 21-point
course model as five points: eye centres, nose tip, mouth corners), on the annotated faces of
a picture list, each cropped from its annotated box. It tells whether a five-point model falls
short because of its net or because of its scheme.

    python scripts/tools/derived_points.py --model runs/stage1/last.pt --pictures lists/split/test_pictures.txt --scheme five
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from landmarks.cli import DefaultsHelpFormatter, run_cli
from landmarks.data.images import load_image
from landmarks.data.labels import read_picture_list
from landmarks.data.scheme import load_scheme
from landmarks.inference.landmarker import Landmarker
from landmarks.metrics import landmark_metrics


def derived_metrics(marker: Landmarker, pictures, scheme) -> dict:
    """Landmark metrics of ``marker``'s points and the truth, both converted to ``scheme``."""
    predicted, truth = [], []
    for picture in pictures:
        if not len(picture.boxes):
            continue
        faces = marker.landmarks(load_image(picture.image, 3), picture.boxes, verify=False)
        predicted += [scheme.convert(face.points, marker.scheme) for face in faces]
        truth += [scheme.convert(points, marker.scheme) for points in picture.points]
    return landmark_metrics(np.array(predicted), np.array(truth), scheme.interocular)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="landmark checkpoint or shipped name")
    parser.add_argument("--pictures", required=True, help="picture list in the model's scheme")
    parser.add_argument("--scheme", default="five", help="scheme derived from the model's (name or .toml)")
    args = parser.parse_args(argv)

    def job() -> int:
        marker = Landmarker(args.model, detector=None)
        scheme = load_scheme(args.scheme)
        pictures, _ = read_picture_list(args.pictures)
        metrics = derived_metrics(marker, pictures, scheme)
        print(f"{args.model} as {scheme.name} ({scheme.num_points} points) on {args.pictures}: "
              + json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        return 0

    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
