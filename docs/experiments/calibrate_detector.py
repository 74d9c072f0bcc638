"""Measure how OpenCV's Haar face boxes sit against the course's annotated face boxes.

For every annotated face that a detection overlaps (IoU >= 0.3), the annotated box
is written relative to the detection: (x1 - dx1) / dw, (y1 - dy1) / dh,
(x2 - dx1) / dw, (y2 - dy1) / dh. The medians map a detection to the box the
models were trained on (landmarks.inference.faces.HAAR_TO_ANNOTATION).

    python docs/experiments/calibrate_detector.py --data-dir ../shared/course-data --images 400
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from landmarks.data.formats import read_label_file
from landmarks.data.images import load_image
from landmarks.data.labels import Report
from landmarks.geometry import iou
from landmarks.inference.faces import HaarFinder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/course-data"), help="(default: %(default)s)")
    parser.add_argument("--images", type=int, default=400, help="images to sample (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    faces = []
    for label in sorted(args.data_dir.glob("*/label.txt")):
        faces += read_label_file(label, Report())
    by_image = defaultdict(list)
    for face in faces:
        by_image[face.image].append(face.box)
    images = sorted(by_image)
    chosen = np.random.default_rng(args.seed).choice(len(images), min(args.images, len(images)), replace=False)
    offsets, found, total = [], 0, 0
    finder = HaarFinder()
    for i in chosen:
        detections = finder.raw(load_image(images[i], 3))
        for box in by_image[images[i]]:
            total += 1
            if not len(detections):
                continue
            overlaps = iou(box, detections)
            if overlaps.max() < 0.3:
                continue
            found += 1
            d = detections[overlaps.argmax()]
            w, h = d[2] - d[0], d[3] - d[1]
            offsets.append([(box[0] - d[0]) / w, (box[1] - d[1]) / h, (box[2] - d[0]) / w, (box[3] - d[1]) / h])
    offsets = np.array(offsets)
    median = np.median(offsets, axis=0)
    print(f"{found} of {total} annotated faces matched by a detection (IoU >= 0.3) in {len(chosen)} images")
    print("annotated box relative to the detection (x1, y1, x2, y2 as shares of its size):")
    print(f"  median {np.round(median, 3).tolist()}  spread (IQR) "
          f"{np.round(np.subtract(*np.percentile(offsets, [75, 25], axis=0)), 3).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
