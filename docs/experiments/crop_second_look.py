"""A landmark model on faces from their annotated boxes: its one look against a second and a third
look, each cropped from the face box the last look's points give (framed as the model's scheme frames
faces), as the whole-picture pipeline looks again at a finder's box. NME and FR@0.10 by head yaw.

    python docs/experiments/crop_second_look.py --model stage2 --pictures lists/split/test_pictures.txt
"""

from __future__ import annotations

import argparse

import numpy as np

from landmarks.data.images import load_image
from landmarks.data.labels import read_picture_list
from landmarks.data.pose import face_yaws
from landmarks.inference.landmarker import Landmarker
from landmarks.metrics import YAW_BINS, bin_of, box_normaliser, interocular_normaliser, nme

LOOKS = ("one look", "second look", "third look")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stage2", help="model name or checkpoint (default: %(default)s)")
    parser.add_argument("--pictures", required=True, help="a pictures list (lists/*/test_pictures.txt)")
    args = parser.parse_args(argv)
    marker = Landmarker(args.model, detector=None)
    predicted = {look: [] for look in LOOKS}
    truth, yaws = [], []
    for picture in read_picture_list(args.pictures)[0]:
        if not len(picture.boxes):
            continue
        rgb = load_image(picture.image, 3)
        boxes = picture.boxes
        for look in LOOKS:
            points = np.stack([face.points for face in marker.landmarks(rgb, boxes, verify=False)])
            predicted[look].append(points)
            boxes = marker.scheme.face_boxes(points)
        truth.append(picture.points)
        yaws.append(np.abs(face_yaws(picture.points, marker.scheme, (rgb.shape[1], rgb.shape[0]))))
    truth, yaws = np.concatenate(truth), np.concatenate(yaws)
    bins = bin_of(yaws, YAW_BINS)
    print(f"{args.model} on {len(truth)} faces of {args.pictures} from their annotated boxes")
    print("look: NME_box / NME_io / FR@0.10 (faces); NME_io and failures by head yaw")
    for look in LOOKS:
        points = np.concatenate(predicted[look])
        by_box = nme(points, truth, box_normaliser(truth))
        by_eyes = nme(points, truth, interocular_normaliser(truth, marker.scheme.interocular))
        fails = by_eyes > 0.10
        per_bin = "  ".join(f"{name} {100 * by_eyes[bins == b].mean():.2f} % ({fails[bins == b].sum()})"
                            for b, (_, name) in enumerate(YAW_BINS) if (bins == b).any())
        print(f"{look}: {100 * by_box.mean():.2f} % / {100 * by_eyes.mean():.2f} % / {100 * fails.mean():.1f} % "
              f"({fails.sum()})  {per_bin}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
