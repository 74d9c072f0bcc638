"""Where a landmark model fails: its worst test faces in a picture, and its error per point.

    python scripts/failure_report.py --model stage2 --test-list lists/split/test.txt \
        --worst-out docs/failures.png --points-out docs/point_errors.png

Each face is cropped as its list says (the annotated box, expanded), as --phase test does.
Worst faces: truth in green, prediction in red, with NME_box; per-point error: the mean
distance of each point as % of the face size sqrt(W * H) of its true points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from landmarks.data.images import crop_resize, load_image, to_channels
from landmarks.data.labels import read_list
from landmarks.draw import GREEN, RED
from landmarks.geometry import from_crop
from landmarks.inference.landmarker import Landmarker
from landmarks.metrics import box_normaliser, nme

TILE = 192


def predict_list(marker: Landmarker, entries) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """-> predicted and true points [N, K, 2] in image pixels, and each face's RGB crop."""
    size = marker.config.input_size
    preds, truths, crops = [], [], []
    for entry in entries:
        rgb = load_image(entry.image, 3)
        shares, _ = marker.run(marker.crops(to_channels(rgb, marker.config.channels), entry.box[None]))
        preds.append(from_crop(shares[0] * size, entry.box, (size, size)))
        truths.append(entry.points + entry.box[:2])
        crops.append(crop_resize(rgb, entry.box, TILE, TILE))
    return np.array(preds), np.array(truths), crops


def worst_faces_picture(crops, preds, truths, boxes, errors, count: int, out: Path) -> None:
    order = np.argsort(-errors)[:count]
    columns = 4
    rows = (len(order) + columns - 1) // columns
    sheet = np.full((rows * TILE, columns * TILE, 3), 255, np.uint8)
    for slot, i in enumerate(order):
        tile = cv2.cvtColor(crops[i], cv2.COLOR_RGB2BGR)
        scale = TILE / (boxes[i, 2:] - boxes[i, :2])
        for points, colour in ((truths[i], GREEN), (preds[i], RED)):
            for x, y in (points - boxes[i, :2]) * scale:
                cv2.circle(tile, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
        cv2.putText(tile, f"{100 * errors[i]:.1f}%", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2)
        cv2.putText(tile, f"{100 * errors[i]:.1f}%", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        r, c = divmod(slot, columns)
        sheet[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = tile
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)


def point_error_chart(per_point: np.ndarray, names, title: str, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(names)), 4.2), dpi=100)
    ax.bar(range(len(names)), per_point, color="#4c72b0")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{i + 1} {n}" for i, n in enumerate(names)], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("mean error, % of face size")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stage2", help="shipped name or checkpoint (default: stage2)")
    parser.add_argument("--test-list", type=Path, default=Path("lists/split/test.txt"),
                        help="labelled list of faces (default: lists/split/test.txt)")
    parser.add_argument("--worst", type=int, default=16, help="how many of the worst faces to show (default: 16)")
    parser.add_argument("--worst-out", type=Path, default=Path("docs/failures.png"),
                        help="picture of the worst faces (default: docs/failures.png)")
    parser.add_argument("--points-out", type=Path, default=Path("docs/point_errors.png"),
                        help="bar chart of the error per point (default: docs/point_errors.png)")
    args = parser.parse_args(argv)
    marker = Landmarker(args.model, detector=None)
    entries = [e for e in read_list(args.test_list).entries if e.points is not None]
    preds, truths, crops = predict_list(marker, entries)
    norm = box_normaliser(truths)
    errors = nme(preds, truths, norm)
    boxes = np.array([e.box for e in entries])
    worst_faces_picture(crops, preds, truths, boxes, errors, args.worst, args.worst_out)
    per_point = 100 * (np.linalg.norm(preds - truths, axis=-1) / norm[:, None]).mean(0)
    point_error_chart(per_point, marker.scheme.points,
                      f"{args.model} on {args.test_list} ({len(entries)} faces): NME_box {100 * errors.mean():.2f} %",
                      args.points_out)
    worst = np.argsort(-per_point)[:3]
    print(f"{len(entries)} faces, NME_box {100 * errors.mean():.2f}%; worst points: "
          + ", ".join(f"{i + 1} {marker.scheme.points[i]} {per_point[i]:.2f}%" for i in worst))
    print(f"wrote {args.worst_out} and {args.points_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
