"""The records data is read into, and the train/test lists on disk.

A list line: ``path x1 y1 x2 y2 <2K numbers relative to the box>`` (stage 1), with
`` 1`` appended for a face or as ``path x1 y1 x2 y2 0`` for a non-face (stage 3), and
optionally ``name=value`` attributes at the end (``yaw=2``, ``negative=partial``).
Paths in a list are absolute or relative to the list's folder. Beside the lists,
``lists.json`` records what they hold: the scheme, the crop expansion, the attributes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..files import atomic_write
from .scheme import Scheme, default_point_count, scheme_for_count, scheme_from_dict

log = logging.getLogger(__name__)

INFO_FILE = "lists.json"


@dataclass
class Annotation:
    """One face of a label file, in image pixels."""

    image: Path
    box: np.ndarray  # [4]
    points: np.ndarray  # [K, 2]
    source: str  # "file:line"
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class ListEntry:
    """One line of a list: a crop box and, for faces, points relative to it."""

    image: Path
    box: np.ndarray  # [4] crop box in image pixels
    points: np.ndarray | None  # [K, 2] relative to box; None for a non-face
    source: str = ""
    listed_as: str = ""  # the image path exactly as the list wrote it
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def is_face(self) -> bool:
        return self.points is not None


@dataclass
class Report:
    """Counts what was kept, skipped or fixed while reading data; strict mode raises."""

    strict: bool = False
    kept: int = 0
    clamped: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, source: str, message: str) -> None:
        line = f"{source}: {message}"
        if self.strict:
            raise DataError(line + " (rerun without --strict to skip it)")
        log.warning("skipped %s", line)
        self.problems.append(line)

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def summary(self, what: str = "faces") -> str:
        text = f"kept {self.kept} {what}, skipped {self.skipped}"
        if self.clamped:
            text += f", clamped {self.clamped} negative coordinates to 0"
        return text


def parse_numbers(fields: list[str], first_position: int = 2, allow_nan: bool = False) -> np.ndarray:
    """Fields -> float array; ValueError names the 1-based field position of a bad one.
    ``allow_nan``: "nan" stands for a value left out (an unlabelled point)."""
    values = []
    for position, text in enumerate(fields, start=first_position):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"field {position} is not a number: {text!r}") from None
        if not math.isfinite(value) and not (allow_nan and math.isnan(value)):
            raise ValueError(f"field {position} is not a finite number: {text!r}")
        values.append(value)
    return np.array(values, dtype=np.float64)


def check_box(box: np.ndarray, text: list[str]) -> None:
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box has x2 <= x1 or y2 <= y1: {' '.join(text)}")


# ---------------------------------------------------------------- attributes

def split_attributes(fields: list[str]) -> tuple[list[str], dict[str, str]]:
    """Trailing ``name=value`` fields -> (the other fields, attributes)."""
    attributes: dict[str, str] = {}
    while fields and "=" in fields[-1]:
        name, _, value = fields[-1].partition("=")
        if not name or not value:
            raise ValueError(f"attribute {fields[-1]!r} is not name=value")
        attributes[name] = value
        fields = fields[:-1]
    return fields, dict(reversed(list(attributes.items())))


# ---------------------------------------------------------------- list lines

def parse_list_line(text: str, num_points: int | None = None):
    """Parse a list line -> (path, box [4], points [K, 2] or None, has a label field, attributes).

    ``num_points`` K is checked when given, else read from the line's length.
    """
    fields, attributes = split_attributes(text.split())
    n = len(fields)
    if n == 6 and fields[-1] == "0":
        labelled, count = True, 0
    elif n >= 9 and (n - 5) % 2 == 0:
        labelled, count = False, (n - 5) // 2
    elif n >= 10 and (n - 6) % 2 == 0 and fields[-1] == "1":
        labelled, count = True, (n - 6) // 2
    else:
        labelled, count = False, -1
    if count == -1 or (num_points is not None and count not in (0, num_points)):
        k = num_points or default_point_count()
        raise ValueError(f"expected {5 + 2 * k} fields (stage 1), {6 + 2 * k} ending in 1 (stage-3 face) "
                         f"or 6 ending in 0 (stage-3 non-face), found {n}")
    box = parse_numbers(fields[1:5])
    check_box(box, fields[1:5])
    # A point left unlabelled is written "nan nan"; its loss and error are left out.
    points = parse_numbers(fields[5:5 + 2 * count], 6, allow_nan=True).reshape(count, 2) if count else None
    if points is not None and np.isnan(points).all():
        raise ValueError("every point is unlabelled (nan)")
    return fields[0], box, points, labelled, attributes


@dataclass
class LandmarkList:
    """The entries of one list file and what reading it found."""

    path: Path
    entries: list[ListEntry]
    stage: int  # 1: faces only, no label field; 3: labelled faces and non-faces
    report: Report
    info: "ListInfo"

    @property
    def faces(self) -> int:
        return sum(entry.is_face for entry in self.entries)

    @property
    def non_faces(self) -> int:
        return len(self.entries) - self.faces

    @property
    def num_points(self) -> int | None:
        return next((len(e.points) for e in self.entries if e.is_face), None)


def read_list(path, strict: bool = False, num_points: int | None = None) -> LandmarkList:
    """Read a train/test list; bad lines are reported and skipped (or raise if strict).

    The point count is that of the scheme ``lists.json`` names, else ``num_points``,
    else the count of the list's first face line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: list file not found (build lists with python -m landmarks.data)")
    info = read_list_info(path.parent)
    count = info.scheme.num_points if info.scheme is not None else num_points
    report = Report(strict=strict)
    entries, labelled = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        try:
            name, box, points, has_label, attributes = parse_list_line(line, count)
        except ValueError as error:
            report.problem(source, str(error))
            continue
        if points is not None and count is None:
            count = len(points)
        labelled |= has_label
        image = Path(name) if os.path.isabs(name) else path.parent / name
        entries.append(ListEntry(image, box, points, source, name, attributes))
        report.kept += 1
    if not entries:
        raise DataError(f"{path}: no usable lines in the list")
    if info.scheme is None and count:
        try:
            info = ListInfo(scheme_for_count(count), info.expand, info.attributes, info.extra)
        except UsageError:
            pass  # a scheme of the user's own: the caller names it (--scheme FILE.toml)
    return LandmarkList(path, entries, 3 if labelled else 1, report, info)


def format_number(value: float) -> str:
    if math.isnan(value):
        return "nan"  # a point left unlabelled
    return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def format_list_line(entry: ListEntry, list_dir: Path, labelled: bool) -> str:
    image = os.path.relpath(Path(entry.image).resolve(), Path(list_dir).resolve())
    fields = [image] + [format_number(v) for v in entry.box]
    if entry.points is not None:
        fields += [format_number(v) for v in entry.points.reshape(-1)]
    if labelled:
        fields.append("1" if entry.is_face else "0")
    fields += [f"{k}={v}" for k, v in entry.attributes.items()]
    return " ".join(fields)


def write_list(path, entries: list[ListEntry], labelled: bool = False) -> None:
    """Write a list; ``labelled`` adds the stage-3 face/non-face field."""
    path = Path(path)
    if not labelled and any(not entry.is_face for entry in entries):
        raise UsageError("a list with non-face entries must be written with labels")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(format_list_line(entry, path.parent, labelled) + "\n" for entry in entries)
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


# ---------------------------------------------------------------- lists.json

@dataclass
class ListInfo:
    """What a folder of lists holds: scheme, crop expansion, learnable attributes (name -> class names)."""

    scheme: Scheme | None = None
    expand: float | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # how the lists were made, for the record

    def to_dict(self) -> dict:
        return {"scheme": self.scheme.to_dict() if self.scheme else None, "expand": self.expand,
                "attributes": self.attributes, **self.extra}


def read_list_info(folder) -> ListInfo:
    """``lists.json`` of a folder of lists; an empty ListInfo where there is none (older lists)."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        return ListInfo()
    try:
        data = json.loads(path.read_text())
        scheme = scheme_from_dict(data.pop("scheme"), f"{path}: scheme") if data.get("scheme") else None
        data.pop("scheme", None)
        expand = data.pop("expand", None)
        attributes = {str(k): [str(c) for c in v] for k, v in data.pop("attributes", {}).items()}
    except (json.JSONDecodeError, AttributeError, TypeError) as error:
        raise DataError(f"{path}: not a valid lists.json ({error})") from None
    return ListInfo(scheme, None if expand is None else float(expand), attributes, data)


def write_list_info(folder, info: ListInfo) -> None:
    path = Path(folder) / INFO_FILE
    with atomic_write(path) as handle:
        handle.write((json.dumps(info.to_dict(), indent=2) + "\n").encode("utf-8"))


# ---------------------------------------------------------------- picture lists

@dataclass
class Picture:
    """A whole picture with every annotated face of it, in image pixels."""

    image: Path
    boxes: np.ndarray  # [F, 4] face boxes
    points: np.ndarray  # [F, K, 2]
    sources: list[str] = field(default_factory=list)
    listed_as: str = ""


def group_pictures(annotations: list[Annotation], num_points: int) -> list[Picture]:
    """One Picture per image, faces in the order given."""
    by_image: dict[Path, list[Annotation]] = {}
    for annotation in annotations:
        by_image.setdefault(Path(annotation.image), []).append(annotation)
    pictures = []
    for image, faces in by_image.items():
        boxes = np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)
        points = np.array([f.points for f in faces], dtype=np.float64).reshape(-1, num_points, 2)
        pictures.append(Picture(image, boxes, points, [f.source for f in faces]))
    return pictures


def write_picture_list(path, pictures: list[Picture]) -> None:
    """label.txt-style lines (``path x1 y1 x2 y2 <2K>`` in image pixels), every face of each
    picture; a picture without faces is a line with its path alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for picture in pictures:
        image = os.path.relpath(Path(picture.image).resolve(), path.parent.resolve())
        if not len(picture.boxes):
            lines.append(image)
        for box, points in zip(picture.boxes, picture.points):
            lines.append(" ".join([image] + [format_number(v) for v in np.concatenate([box, points.reshape(-1)])]))
    with atomic_write(path) as handle:
        handle.write("".join(line + "\n" for line in lines).encode("utf-8"))


def read_picture_list(path, strict: bool = False) -> tuple[list[Picture], Report]:
    """A picture list -> pictures (faces of one image grouped) and what reading found."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: picture list not found (python -m landmarks.data writes "
                        "train_pictures.txt and test_pictures.txt beside the lists)")
    report = Report(strict=strict)
    info = read_list_info(path.parent)
    count = info.scheme.num_points if info.scheme else None
    faces: dict[str, list] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        source = f"{path}:{number}"
        name = fields[0]
        faces.setdefault(name, [])
        if len(fields) == 1:
            continue
        try:
            if (len(fields) - 5) % 2 or len(fields) < 9 or (count and len(fields) != 5 + 2 * count):
                k = count or default_point_count()
                raise ValueError(f"expected {5 + 2 * k} fields (path, face box, {2 * k} coordinates) "
                                 f"or the path alone, found {len(fields)}")
            values = np.concatenate([parse_numbers(fields[1:5]), parse_numbers(fields[5:], 6, allow_nan=True)])
            check_box(values[:4], fields[1:5])
        except ValueError as error:
            report.problem(source, str(error))
            continue
        count = count or (len(fields) - 5) // 2
        faces[name].append((values[:4], values[4:].reshape(-1, 2), source))
        report.kept += 1
    pictures = []
    for name, found in faces.items():
        image = Path(name) if os.path.isabs(name) else path.parent / name
        boxes = np.array([f[0] for f in found]).reshape(-1, 4)
        points = np.array([f[1] for f in found]).reshape(len(found), count or 0, 2)
        pictures.append(Picture(image, boxes, points, [f[2] for f in found], name))
    if not pictures:
        raise DataError(f"{path}: no pictures in the list")
    return pictures, report


def predictions_text(entries: list[ListEntry], predictions: dict, min_face_prob: float) -> str:
    """label.txt form: path as listed, the list's box, 2K predicted coordinates in image pixels,
    for each crop the model calls a face (face probability at least ``min_face_prob``).

    predictions: ``indices`` [N] into ``entries``, ``points`` [N, K, 2] in crop pixels,
    ``face_prob`` [len(entries)] or None."""
    lines = []
    prob = predictions["face_prob"]
    for i, points in zip(predictions["indices"], predictions["points"]):
        if prob is not None and prob[i] < min_face_prob:
            continue  # classified as a non-face: no landmarks
        entry = entries[i]
        absolute = points + entry.box[:2]
        numbers = [f"{v:.2f}" for v in np.concatenate([entry.box, absolute.reshape(-1)])]
        lines.append(" ".join([entry.listed_as or str(entry.image)] + numbers))
    return "".join(line + "\n" for line in lines)
