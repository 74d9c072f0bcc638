"""Faces written as annotation tools read them: COCO keypoints (CVAT, Label Studio, mmpose),
labelme's JSON per picture, and the course's label.txt. The readers are in ``formats``.

Picture paths in a COCO file are relative to ``root`` (give it as --data-dir when reading back);
in a label.txt, to the label file's folder, and labelme's ``imagePath`` to each JSON file, as
those formats read them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..files import Outputs
from .formats import Source
from .images import image_size
from .scheme import Scheme

LABEL_FORMATS = ("coco", "labelme", "course")


@dataclass
class PictureFaces:
    """A picture and its faces: boxes [4] and points [K, 2] in image pixels."""

    image: Path
    width: int
    height: int
    faces: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def coco_document(pictures: list[PictureFaces], scheme: Scheme, root: Path) -> dict:
    """A COCO keypoints document: one category, ``face``, whose keypoints are the scheme's point
    names in its order; every point labelled and visible (v = 2)."""
    images, annotations = [], []
    for image_id, picture in enumerate(pictures, start=1):
        images.append({"id": image_id, "file_name": relative(picture.image, root), "width": picture.width,
                       "height": picture.height})
        for box, points in picture.faces:
            x1, y1, x2, y2 = (round(float(v), 2) for v in box)
            keypoints = [v for x, y in np.round(points, 2).tolist() for v in (x, y, 2)]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "keypoints": keypoints, "num_keypoints": len(points),
                                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                                "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0})
    skeleton = [[a + 1, b + 1] for line in scheme.lines for a, b in zip(line, line[1:])]
    category = {"id": 1, "name": "face", "supercategory": "face", "keypoints": list(scheme.points),
                "skeleton": skeleton}
    return {"info": {"description": f"faces, {scheme.name} points"}, "images": images,
            "annotations": annotations, "categories": [category]}


def labelme_document(picture: PictureFaces, scheme: Scheme, folder: Path) -> dict:
    """labelme's JSON for one picture written in ``folder``: each face a group of point shapes
    labelled with the scheme's point names, and its box as a rectangle labelled ``face``."""
    shapes = []
    for group, (box, points) in enumerate(picture.faces):
        shapes.append({"label": "face", "points": [[round(float(box[0]), 2), round(float(box[1]), 2)],
                                                   [round(float(box[2]), 2), round(float(box[3]), 2)]],
                       "group_id": group, "shape_type": "rectangle", "flags": {}})
        shapes += [{"label": name, "points": [[round(float(x), 2), round(float(y), 2)]], "group_id": group,
                    "shape_type": "point", "flags": {}} for name, (x, y) in zip(scheme.points, points)]
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": relative(picture.image, folder),
            "imageData": None, "imageHeight": picture.height, "imageWidth": picture.width}


def course_text(pictures: list[PictureFaces], root: Path) -> str:
    """label.txt lines: the picture (relative to ``root``), the box, then K ``x y`` pairs."""
    lines = []
    for picture in pictures:
        name = relative(picture.image, root)
        for box, points in picture.faces:
            lines.append(" ".join([name] + [f"{v:.2f}" for v in np.concatenate([box, np.ravel(points)])]))
    return "".join(line + "\n" for line in lines)


def annotation_paths(fmt: str, path: Path, pictures: list[PictureFaces]) -> list[Path]:
    """The files ``write_annotations`` writes: one file, or (labelme) one JSON per picture."""
    if fmt == "labelme":
        return [Path(path) / f"{picture.image.stem}.json" for picture in pictures]
    return [Path(path)]


def write_annotations(fmt: str, path: Path, pictures: list[PictureFaces], scheme: Scheme, root: Path,
                      outputs: Outputs, flag: str) -> list[Path]:
    """Write ``pictures`` as ``fmt`` at ``path`` (a file, or for labelme a folder)."""
    if fmt not in LABEL_FORMATS:
        raise UsageError(f"{flag}: format must be one of {', '.join(LABEL_FORMATS)}, got {fmt!r}")
    if fmt == "coco":
        return [outputs.write_text(flag, path, json.dumps(coco_document(pictures, scheme, root)) + "\n")]
    if fmt == "course":
        return [outputs.write_text(flag, path, course_text(pictures, Path(path).parent))]
    return [outputs.write_text(flag, file, json.dumps(labelme_document(picture, scheme, Path(path)), indent=1) + "\n")
            for file, picture in zip(annotation_paths(fmt, path, pictures), pictures)]


def pictures_of(source: Source) -> list[PictureFaces]:
    """A reader's faces grouped by picture, in the order first met."""
    pictures: dict[Path, PictureFaces] = {}
    for annotation in source.annotations:
        if annotation.image not in pictures:
            width, height = image_size(annotation.image)
            pictures[annotation.image] = PictureFaces(annotation.image, width, height)
        pictures[annotation.image].faces.append((annotation.box, annotation.points))
    return list(pictures.values())


def common_folder(images: list[Path]) -> Path:
    """The deepest folder holding every picture: what their relative names start from."""
    return Path(os.path.commonpath([str(Path(image).resolve().parent) for image in images]))
