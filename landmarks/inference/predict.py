"""What --phase predict writes: pictures with faces drawn, JSON and text, picture inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..data.images import IMAGE_SUFFIXES
from ..draw import GREEN, RED, draw_box, draw_points, marker_radius
from ..errors import DataError, UsageError
from .landmarker import Face


def parse_box(text: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise UsageError(f"--box takes x1,y1,x2,y2 with x2 > x1 and y2 > y1, got {text!r}")
    return np.array(values)


def image_inputs(path: Path) -> list[Path]:
    """The images to predict on: one file, or every image file in a folder (others named, on
    stderr, and skipped)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            print(f"note: skipping {len(others)} non-image file(s) in {path}: {', '.join(others[:5])}"
                  + (" ..." if len(others) > 5 else ""), file=sys.stderr)
        if not images:
            raise DataError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    if not path.exists():
        raise DataError(f"{path}: image not found")
    return [path]


def draw_faces(rgb: np.ndarray, faces: list[Face], lines=()) -> np.ndarray:
    """A BGR copy of the picture with each face's box (green: face, red: rejected) and points."""
    canvas = np.ascontiguousarray(rgb[:, :, ::-1])
    radius = marker_radius(canvas)
    for face in faces:
        colour = GREEN if face.is_face else RED
        label = ""
        if face.id is not None:
            label = f"#{face.id} "
        if face.face_prob is not None:
            label += f"face {face.face_prob:.2f}"
        draw_box(canvas, face.box, colour, max(1, radius // 2), label.strip())
        if face.is_face:
            draw_points(canvas, face.points, radius=radius, lines=lines)
    return canvas


def write_picture(path: Path, canvas: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise DataError(f"{path}: cannot write the picture (is the folder writable, the suffix an image type?)")


def faces_as_json(image_path: Path, out_path: Path | None, faces: list[Face]) -> str:
    return json.dumps({"image": str(image_path), "picture": None if out_path is None else str(out_path),
                       "faces": [face.to_dict() for face in faces]})


def faces_as_text(image_path: Path, out_path: Path | None, faces: list[Face]) -> str:
    found = sum(f.is_face for f in faces)
    lines = [f"{image_path}: {found} face(s)" + (f" -> {out_path}" if out_path else "")]
    for number, face in enumerate(faces, 1):
        head = f"  face {number} box {' '.join(f'{v:.0f}' for v in face.box)}"
        if face.face_prob is not None:
            head += f" p(face) {face.face_prob:.3f}"
        if face.points is None:
            lines.append(head + " (not a face: no landmarks)")
        else:
            lines.append(head + "\n    " + " ".join(f"{x:.1f},{y:.1f}" for x, y in face.points))
    return "\n".join(lines)
