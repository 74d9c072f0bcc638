"""Reading and writing the course's label files and the train/test lists.

A ``label.txt`` line: ``name x1 y1 x2 y2 px1 py1 ... px21 py21`` in image pixels.
A list line: ``path x1 y1 x2 y2 <42 numbers relative to the box>`` (stage 1),
with `` 1`` appended for a face or as ``path x1 y1 x2 y2 0`` for a non-face
(stage 3). Paths in a list are absolute or relative to the list's folder.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import NUM_POINTS
from .errors import DataError, UsageError
from .files import atomic_write
from .images import image_size

log = logging.getLogger(__name__)

LABEL_FIELDS = 1 + 4 + 2 * NUM_POINTS  # 47
# A point further outside the image than this share of its size is a typo, not a face.
FAR_OUTSIDE = 0.25


@dataclass
class Annotation:
    """One face of a label.txt, in image pixels."""

    image: Path
    box: np.ndarray  # [4]
    points: np.ndarray  # [21, 2]
    source: str  # "file:line"


@dataclass
class ListEntry:
    """One line of a list: a crop box and, for faces, points relative to it."""

    image: Path
    box: np.ndarray  # [4] crop box in image pixels
    points: np.ndarray | None  # [21, 2] relative to box; None for a non-face
    source: str = ""
    listed_as: str = ""  # the image path exactly as the list wrote it

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


def _numbers(fields: list[str]) -> np.ndarray:
    values = []
    for position, text in enumerate(fields, start=2):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"field {position} is not a number: {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"field {position} is not a finite number: {text!r}")
        values.append(value)
    return np.array(values, dtype=np.float64)


def parse_label_line(text: str) -> tuple[str, np.ndarray, np.ndarray, int]:
    """Parse one label.txt line -> (image name, box [4], points [21, 2], negatives clamped).

    Raises ValueError with a message for a malformed line.
    """
    fields = text.split()
    if len(fields) != LABEL_FIELDS:
        raise ValueError(f"expected {LABEL_FIELDS} fields (name, 4 box numbers, "
                         f"{2 * NUM_POINTS} landmark numbers), found {len(fields)}")
    values = _numbers(fields[1:])
    negatives = int((values < 0).sum())
    values = np.maximum(values, 0.0)
    box, points = values[:4], values[4:].reshape(NUM_POINTS, 2)
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box has x2 <= x1 or y2 <= y1: {' '.join(fields[1:5])}")
    return fields[0], box, points, negatives


def check_inside_image(box, points, width: int, height: int) -> None:
    """Raise ValueError when the box misses the image or points lie far outside it."""
    if box[0] >= width or box[1] >= height:
        raise ValueError(f"box {box.tolist()} lies outside the {width}x{height} image")
    limit = np.array([width, height]) * (1 + FAR_OUTSIDE)
    if (points > limit).any():
        raise ValueError(f"landmarks lie far outside the {width}x{height} image")


def read_label_file(path: Path, report: Report) -> list[Annotation]:
    """Read one label.txt; bad lines and missing images go to ``report``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not any(line.strip() for line in lines):
        report.problem(str(path), "label file is empty")
        return []
    annotations: list[Annotation] = []
    seen: dict[str, int] = {}
    sizes: dict[str, tuple[int, int] | str] = {}
    for number, line in enumerate(lines, start=1):
        source = f"{path}:{number}"
        if not line.strip():
            continue
        key = " ".join(line.split())
        if key in seen:
            report.problem(source, f"duplicate of line {seen[key]}")
            continue
        seen[key] = number
        try:
            name, box, points, negatives = parse_label_line(line)
        except ValueError as error:
            report.problem(source, str(error))
            continue
        image = path.parent / name
        if name not in sizes:
            try:
                sizes[name] = image_size(image)
            except DataError as error:
                sizes[name] = str(error)
        size = sizes[name]
        if isinstance(size, str):
            report.problem(source, size)
            continue
        try:
            check_inside_image(box, points, *size)
        except ValueError as error:
            report.problem(source, str(error))
            continue
        report.clamped += negatives
        report.kept += 1
        annotations.append(Annotation(image, box, points, source))
    return annotations


def parse_list_line(text: str) -> tuple[str, np.ndarray, np.ndarray | None, bool]:
    """Parse a list line -> (path, box [4], points [21, 2] or None, has a label field)."""
    fields = text.split()
    n = len(fields)
    if n == 1 + 4 + 2 * NUM_POINTS:
        labelled = False
    elif n == 2 + 4 + 2 * NUM_POINTS and fields[-1] == "1":
        labelled = True
    elif n == 1 + 4 + 1 and fields[-1] == "0":
        labelled = True
    else:
        raise ValueError(f"expected {1 + 4 + 2 * NUM_POINTS} fields (stage 1), "
                         f"{2 + 4 + 2 * NUM_POINTS} ending in 1 (stage-3 face) or 6 ending "
                         f"in 0 (stage-3 non-face), found {n}")
    numbers = _numbers(fields[1:5] if n == 6 else fields[1:1 + 4 + 2 * NUM_POINTS])
    box = numbers[:4]
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box has x2 <= x1 or y2 <= y1: {' '.join(fields[1:5])}")
    points = None if n == 6 else numbers[4:].reshape(NUM_POINTS, 2)
    return fields[0], box, points, labelled


@dataclass
class LandmarkList:
    """The entries of one list file and what reading it found."""

    path: Path
    entries: list[ListEntry]
    stage: int  # 1: faces only, no label field; 3: labelled faces and non-faces
    report: Report

    @property
    def faces(self) -> int:
        return sum(entry.is_face for entry in self.entries)

    @property
    def non_faces(self) -> int:
        return len(self.entries) - self.faces


def read_list(path, strict: bool = False) -> LandmarkList:
    """Read a train/test list; bad lines are reported and skipped (or raise if strict)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: list file not found (build lists with python -m landmarks.data)")
    report = Report(strict=strict)
    entries, labelled = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        try:
            name, box, points, has_label = parse_list_line(line)
        except ValueError as error:
            report.problem(source, str(error))
            continue
        labelled |= has_label
        image = Path(name) if os.path.isabs(name) else path.parent / name
        entries.append(ListEntry(image, box, points, source, name))
        report.kept += 1
    if not entries:
        raise DataError(f"{path}: no usable lines in the list")
    return LandmarkList(path, entries, 3 if labelled else 1, report)


def format_number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def format_list_line(entry: ListEntry, list_dir: Path, labelled: bool) -> str:
    image = os.path.relpath(Path(entry.image).resolve(), Path(list_dir).resolve())
    fields = [image] + [format_number(v) for v in entry.box]
    if entry.points is not None:
        fields += [format_number(v) for v in entry.points.reshape(-1)]
    if labelled:
        fields.append("1" if entry.is_face else "0")
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
