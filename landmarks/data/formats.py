"""Readers that turn annotation formats into Annotations (image, face box, points, attributes).

- ``course``: folders with a ``label.txt`` each: ``name x1 y1 x2 y2`` then K ``x y`` pairs.
- ``pts``: 300-W ``.pts`` files beside their pictures (1-based coordinates); the face box
  is the tight box of the points unless a box file gives one.
- ``wflw``: WFLW annotation lines: 196 coordinates, the box, 6 attributes, the image name.
- ``mtfl``: MTFL lines: the image, 5 x then 5 y, gender, smile, glasses, pose.

Every reader reports a bad line or file with its file:line and skips it (or stops, strict).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .images import IMAGE_SUFFIXES, image_size
from .labels import Annotation, Report, check_box, parse_numbers
from .scheme import Scheme, default_point_count, load_scheme, scheme_for_count

FORMATS = ("course", "pts", "wflw", "mtfl")
# A point further outside the image than this share of its size is a typo, not a face.
FAR_OUTSIDE = 0.25

WFLW_ATTRIBUTES = {"pose": ["normal", "large"], "expression": ["normal", "exaggerated"],
                   "illumination": ["normal", "extreme"], "makeup": ["no", "yes"],
                   "occlusion": ["no", "yes"], "blur": ["clear", "blurred"]}
# MTFL codes its attributes from 1.
MTFL_ATTRIBUTES = {"gender": ["male", "female"], "smile": ["yes", "no"], "glasses": ["yes", "no"],
                   "pose": ["left profile", "left", "frontal", "right", "right profile"]}


@dataclass
class Source:
    """What a reader found: the faces, the scheme they are annotated in, learnable attributes."""

    annotations: list[Annotation]
    scheme: Scheme
    attributes: dict[str, list[str]]
    boxes_given: bool  # False: boxes were made from the points
    files: list[Path] = field(default_factory=list)  # the annotation files read


def check_inside_image(box, points, width: int, height: int) -> None:
    """Raise ValueError when the box misses the image or points lie far outside it."""
    if box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"box {np.round(box, 1).tolist()} lies outside the {width}x{height} image")
    limit = np.array([width, height]) * (1 + FAR_OUTSIDE)
    if (points > limit).any() or (points < -FAR_OUTSIDE * np.array([width, height])).any():
        raise ValueError(f"landmarks lie far outside the {width}x{height} image")


class ImageSizes:
    """Image sizes read once per image; a missing or broken image is its error text."""

    def __init__(self):
        self.sizes: dict[Path, tuple[int, int] | str] = {}

    def __call__(self, image: Path) -> tuple[int, int] | str:
        if image not in self.sizes:
            try:
                self.sizes[image] = image_size(image)
            except DataError as error:
                self.sizes[image] = str(error)
        return self.sizes[image]


def accept(annotation: Annotation, sizes: ImageSizes, report: Report, out: list[Annotation]) -> None:
    """Keep ``annotation`` when its image reads and its box and points fit it."""
    size = sizes(annotation.image)
    if isinstance(size, str):
        report.problem(annotation.source, size)
        return
    try:
        check_inside_image(annotation.box, annotation.points, *size)
    except ValueError as error:
        report.problem(annotation.source, str(error))
        return
    report.kept += 1
    out.append(annotation)


# ---------------------------------------------------------------- course label.txt

def parse_label_line(text: str, num_points: int | None = None) -> tuple[str, np.ndarray, np.ndarray, int]:
    """One label.txt line -> (image name, box [4], points [K, 2], negatives clamped to 0).

    Raises ValueError with the reason for a malformed line.
    """
    fields = text.split()
    num_points = num_points or default_point_count()
    expected = 1 + 4 + 2 * num_points
    if len(fields) != expected:
        raise ValueError(f"expected {expected} fields (name, 4 box numbers, {2 * num_points} landmark numbers), "
                         f"found {len(fields)}")
    values = parse_numbers(fields[1:])
    negatives = int((values < 0).sum())
    values = np.maximum(values, 0.0)
    box, points = values[:4], values[4:].reshape(num_points, 2)
    check_box(box, fields[1:5])
    return fields[0], box, points, negatives


def label_point_count(lines: list[str]) -> int:
    """The point count most lines of a label file have (a bad line cannot mislead it)."""
    counts = Counter((len(line.split()) - 5) // 2 for line in lines
                     if len(line.split()) >= 9 and (len(line.split()) - 5) % 2 == 0)
    return counts.most_common(1)[0][0] if counts else default_point_count()


def read_label_file(path: Path, report: Report, num_points: int | None = None) -> list[Annotation]:
    """Read one label.txt; bad lines and missing images go to ``report``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not any(line.strip() for line in lines):
        report.problem(str(path), "label file is empty")
        return []
    count = num_points or label_point_count(lines)
    annotations: list[Annotation] = []
    seen: dict[str, int] = {}
    sizes = ImageSizes()
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
            name, box, points, negatives = parse_label_line(line, count)
        except ValueError as error:
            report.problem(source, str(error))
            continue
        kept = report.kept
        accept(Annotation(path.parent / name, box, points, source), sizes, report, annotations)
        if report.kept > kept:
            report.clamped += negatives
    return annotations


def find_label_folders(data_dir: Path, folders: list[str] | None) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found")
    if folders:
        return [data_dir / name for name in folders]
    found = sorted(p for p in data_dir.iterdir() if (p / "label.txt").is_file())
    if (data_dir / "label.txt").is_file():
        found.insert(0, data_dir)
    if not found:
        raise DataError(f"{data_dir}: no sub-folder holds a label.txt (expected I/ and II/)")
    return found


def read_course(data_dir: Path, report: Report, folders: list[str] | None = None,
                scheme: Scheme | None = None) -> Source:
    annotations: list[Annotation] = []
    count = None
    label_files = [folder / "label.txt" for folder in find_label_folders(data_dir, folders)]
    for label_file in label_files:
        annotations += read_label_file(label_file, report, count)
        if annotations and count is None:
            count = len(annotations[0].points)
    return Source(annotations, source_scheme(count or default_point_count(), scheme), {}, boxes_given=True,
                  files=label_files)


def source_scheme(count: int, scheme: Scheme | None) -> Scheme:
    """The scheme a file of ``count`` points is in: ``scheme`` when its size fits, else the built-in one."""
    return scheme if scheme is not None and scheme.num_points == count else scheme_for_count(count)


# ---------------------------------------------------------------- 300-W .pts

def parse_pts(text: str) -> np.ndarray:
    """A .pts file's text -> [K, 2] points in 0-based pixels (300-W files count from 1)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    header = {}
    body_start = None
    for index, line in enumerate(lines):
        if line == "{":
            body_start = index + 1
            break
        key, _, value = line.partition(":")
        header[key.strip()] = value.strip()
    if body_start is None or "}" not in lines[body_start:]:
        raise ValueError("not a .pts file (expected a header, '{', one 'x y' line per point, '}')")
    body = lines[body_start:lines.index("}", body_start)]
    try:
        expected = int(header.get("n_points", len(body)))
    except ValueError:
        raise ValueError(f"n_points is not a number: {header['n_points']!r}") from None
    if len(body) != expected:
        raise ValueError(f"n_points says {expected} but {len(body)} point lines follow")
    rows = []
    for number, line in enumerate(body, start=body_start + 1):
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"point line {number} has {len(fields)} fields, expected 'x y'")
        rows.append(parse_numbers(fields, 1))
    return np.array(rows) - 1.0


def read_box_file(path: Path, report: Report) -> dict[str, np.ndarray]:
    """``name x1 y1 x2 y2`` lines -> {name: box}."""
    if not Path(path).is_file():
        raise DataError(f"{path}: box file not found")
    boxes = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            if len(fields) != 5:
                raise ValueError(f"expected 5 fields (name x1 y1 x2 y2), found {len(fields)}")
            box = parse_numbers(fields[1:])
            check_box(box, fields[1:])
        except ValueError as error:
            report.problem(f"{path}:{number}", str(error))
            continue
        boxes[fields[0]] = box
    return boxes


def read_pts(data_dir: Path, report: Report, box_file: Path | None = None,
             scheme: Scheme | None = None) -> Source:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found")
    files = sorted(data_dir.rglob("*.pts"))
    if not files:
        raise DataError(f"{data_dir}: no .pts files found")
    boxes = read_box_file(box_file, report) if box_file else {}
    annotations: list[Annotation] = []
    sizes = ImageSizes()
    found = None
    for pts in files:
        image = next((pts.with_suffix(s) for s in sorted(IMAGE_SUFFIXES) + [s.upper() for s in IMAGE_SUFFIXES]
                      if pts.with_suffix(s).is_file()), None)
        if image is None:
            report.problem(str(pts), "no picture of the same name beside it")
            continue
        try:
            points = parse_pts(pts.read_text(encoding="utf-8", errors="replace"))
            if found is None:
                found = source_scheme(len(points), scheme)
            if len(points) != found.num_points:
                raise ValueError(f"has {len(points)} points, the others {found.num_points}")
        except (ValueError, UsageError) as error:
            report.problem(str(pts), str(error))
            continue
        box = boxes.get(image.name)
        if box is None:
            if boxes:
                report.problem(str(pts), f"{image.name} is not in the box file")
                continue
            box = found.face_boxes(points)
        accept(Annotation(image, box, points, str(pts)), sizes, report, annotations)
    if found is None:
        raise DataError(f"{data_dir}: no readable .pts file ({report.summary()})")
    return Source(annotations, found, {}, boxes_given=bool(boxes),
                  files=files + ([Path(box_file)] if box_file else []))


# ---------------------------------------------------------------- WFLW and MTFL

def decode_attributes(codes, table: dict[str, list[str]], first: int) -> dict[str, str]:
    """Attribute codes counted from ``first`` -> {name: class index as text}; ValueError when out of range."""
    attributes = {}
    for (name, classes), code in zip(table.items(), np.asarray(codes).astype(int)):
        if not first <= code < first + len(classes):
            raise ValueError(f"attribute {name} is {code}, expected {first} to {first + len(classes) - 1}")
        attributes[name] = str(code - first)
    return attributes


def read_annotation_lines(labels: Path, report: Report, parse) -> list[Annotation]:
    """One face per line of ``labels``: ``parse(fields, source)`` -> Annotation, or ValueError."""
    annotations: list[Annotation] = []
    sizes = ImageSizes()
    for number, line in enumerate(read_lines(labels), start=1):
        if not line.strip():
            continue
        source = f"{labels}:{number}"
        try:
            annotation = parse(line.split(), source)
        except ValueError as error:
            report.problem(source, str(error))
            continue
        accept(annotation, sizes, report, annotations)
    return annotations


def read_wflw(data_dir: Path, labels: Path, report: Report) -> Source:
    """WFLW: ``x0 y0 ... x97 y97 x_min y_min x_max y_max pose expression illumination makeup
    occlusion blur image_name``; image names are relative to ``data_dir``."""
    scheme = load_scheme("wflw98")
    coordinates = 2 * scheme.num_points
    expected = coordinates + 4 + len(WFLW_ATTRIBUTES) + 1

    def parse(fields: list[str], source: str) -> Annotation:
        if len(fields) != expected:
            raise ValueError(f"expected {expected} fields ({coordinates} coordinates, 4 box numbers, "
                             f"{len(WFLW_ATTRIBUTES)} attributes, image name), found {len(fields)}")
        values = parse_numbers(fields[:-1], 1)
        box = values[coordinates:coordinates + 4]
        check_box(box, fields[coordinates:coordinates + 4])
        attributes = decode_attributes(values[coordinates + 4:], WFLW_ATTRIBUTES, 0)
        return Annotation(Path(data_dir) / fields[-1], box, values[:coordinates].reshape(-1, 2), source, attributes)

    return Source(read_annotation_lines(labels, report, parse), scheme, dict(WFLW_ATTRIBUTES), boxes_given=True,
                  files=[Path(labels)])


def read_mtfl(data_dir: Path, labels: Path, report: Report) -> Source:
    """MTFL: ``image x1..x5 y1..y5 gender smile glasses pose`` (codes from 1); no face box,
    so the box comes from the points as the five-point scheme frames faces."""
    scheme = load_scheme("five")

    def parse(fields: list[str], source: str) -> Annotation:
        if len(fields) != 15:
            raise ValueError(f"expected 15 fields (image, 5 x, 5 y, gender, smile, glasses, pose), found {len(fields)}")
        values = parse_numbers(fields[1:])
        points = np.stack([values[:5], values[5:10]], -1)
        attributes = decode_attributes(values[10:], MTFL_ATTRIBUTES, 1)
        image = Path(data_dir) / fields[0].replace("\\", "/")
        return Annotation(image, scheme.face_boxes(points), points, source, attributes)

    return Source(read_annotation_lines(labels, report, parse), scheme, dict(MTFL_ATTRIBUTES), boxes_given=False,
                  files=[Path(labels)])


def read_lines(path: Path) -> list[str]:
    if path is None:
        raise UsageError("this format needs --labels FILE (the annotation file)")
    if not Path(path).is_file():
        raise DataError(f"{path}: annotation file not found")
    return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()


def read_source(fmt: str, data_dir: Path, report: Report, *, folders=None, labels=None, box_file=None,
                scheme: Scheme | None = None) -> Source:
    """Annotations of ``data_dir`` in format ``fmt``. ``scheme`` names the points of a course
    or pts file whose count no built-in scheme has."""
    if fmt == "course":
        return read_course(data_dir, report, folders, scheme)
    if fmt == "pts":
        return read_pts(data_dir, report, box_file, scheme)
    if fmt == "wflw":
        return read_wflw(data_dir, labels, report)
    if fmt == "mtfl":
        return read_mtfl(data_dir, labels, report)
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
