"""Readers that turn annotation formats into Annotations (image, face box, points, attributes).

- ``course``: folders with a ``label.txt`` each: ``name x1 y1 x2 y2`` then K ``x y`` pairs.
- ``pts``: 300-W ``.pts`` files beside their pictures (1-based coordinates); the face box
  is the tight box of the points unless a box file gives one.
- ``wflw``: WFLW annotation lines: 196 coordinates, the box, 6 attributes, the image name.
- ``mtfl``: MTFL lines: the image, 5 x then 5 y, gender, smile, glasses, pose.
- ``coco``: a COCO keypoints file (``images``, ``annotations`` with ``keypoints`` [x, y, v] * K
  and ``bbox``, ``categories[].keypoints`` naming the points), as CVAT and Label Studio export.
- ``labelme``: one labelme JSON per picture: ``point`` shapes labelled with the scheme's point
  names (or 1-based numbers), a ``rectangle`` for the face box, ``group_id`` telling faces apart.

Every reader reports a bad line or file with its file:line and skips it (or stops, strict).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .images import IMAGE_SUFFIXES, image_size
from .labels import Annotation, Report, check_box, parse_numbers
from .scheme import Scheme, builtin_schemes, default_point_count, load_scheme, scheme_for_count

FORMATS = ("course", "pts", "wflw", "mtfl", "coco", "labelme")
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
    if fmt == "coco":
        return read_coco(data_dir, labels, report, scheme)
    if fmt == "labelme":
        return read_labelme(data_dir, report, scheme)
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")


# ---------------------------------------------------------------- annotation tools: COCO keypoints, labelme

def scheme_for_names(names: list[str], chosen: Scheme | None, where: str) -> tuple[Scheme, list[int]]:
    """The scheme of points named ``names`` and, for each of its points, the index of that point in
    ``names``: ``chosen`` (same count, taken in the file's order, unless the names are its own), a
    built-in scheme whose point names they are (in any order), or the built-in of that count."""
    names = [str(n) for n in names]
    candidates = [chosen] if chosen is not None else [load_scheme(n) for n in builtin_schemes()]
    for scheme in candidates:
        if sorted(scheme.points) == sorted(names) and len(set(names)) == len(names):
            return scheme, [names.index(point) for point in scheme.points]
    numbered = [str(i) for i in range(1, len(names) + 1)]
    scheme = chosen if chosen is not None else scheme_for_count(len(names))
    if scheme.num_points != len(names):
        raise DataError(f"{where}: {len(names)} points, but scheme {scheme.name} has {scheme.num_points}")
    order = [names.index(n) for n in numbered] if sorted(names) == sorted(numbered) else list(range(len(names)))
    return scheme, order


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def face_annotation(image: Path, points: np.ndarray, box, scheme: Scheme, source: str) -> Annotation:
    """A face from a tool's points, NaN where left unlabelled (and its box, or None: the
    scheme's box of the labelled points). Half the points at least must be labelled."""
    if np.isinf(points).any():
        raise ValueError("a point is not a finite number")
    unlabelled = int(np.isnan(points).any(-1).sum())
    if 2 * unlabelled > len(points):
        raise ValueError(f"{unlabelled} of {len(points)} points unlabelled: too few left to place the face")
    box = scheme.face_boxes(points) if box is None else np.asarray(box, dtype=np.float64)
    check_box(box, [f"{v:g}" for v in box])
    return Annotation(image, box, points, source)


def read_coco(data_dir: Path, labels: Path | None, report: Report, scheme: Scheme | None = None) -> Source:
    """A COCO keypoints file; ``file_name`` is relative to ``data_dir``. A point with visibility
    0 is unlabelled (NaN): training leaves it out of the loss, testing out of the error."""
    if labels is None:
        raise UsageError("--format coco needs --labels FILE (the COCO keypoints JSON)")
    document = read_json(labels)
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(document.get(key), list)]
    if missing:
        raise DataError(f"{labels}: not a COCO keypoints file (no list of {', '.join(missing)})")
    images = {item.get("id"): item for item in document["images"]}
    schemes: dict = {}
    for category in document["categories"]:
        if category.get("keypoints"):
            schemes[category.get("id")] = scheme_for_names(category["keypoints"], scheme,
                                                           f"{labels}: category {category.get('name', '')}")
    if not schemes:
        raise DataError(f"{labels}: no category names its keypoints (categories[].keypoints)")
    found = {s.name: s for s, _ in schemes.values()}
    if len(found) > 1:
        raise DataError(f"{labels}: categories of several schemes ({', '.join(sorted(found))}); one file, one scheme")
    annotations: list[Annotation] = []
    sizes = ImageSizes()
    for number, item in enumerate(document["annotations"]):
        source = f"{labels}:annotations[{number}]"
        try:
            if item.get("category_id") not in schemes:
                raise ValueError(f"category_id {item.get('category_id')!r} names no keypoint category")
            face_scheme, order = schemes[item["category_id"]]
            if item.get("image_id") not in images:
                raise ValueError(f"image_id {item.get('image_id')!r} is not in images")
            values = np.asarray(item.get("keypoints", []), dtype=np.float64)
            if values.size != 3 * face_scheme.num_points:
                raise ValueError(f"{values.size} keypoint numbers, expected 3 x {face_scheme.num_points}")
            values = values.reshape(-1, 3)[order]
            values[values[:, 2] == 0, :2] = np.nan  # visibility 0: left unlabelled; 1 (occluded) is placed
            bbox = item.get("bbox")
            box = None if not bbox or bbox[2] <= 0 or bbox[3] <= 0 else \
                [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]
            image = Path(data_dir) / str(images[item["image_id"]].get("file_name", ""))
            annotation = face_annotation(image, values[:, :2], box, face_scheme, source)
        except (ValueError, TypeError) as error:
            report.problem(source, str(error))
            continue
        accept(annotation, sizes, report, annotations)
    only = next(iter(found.values()))
    return Source(annotations, only, {}, boxes_given=True, files=[Path(labels)])


def labelme_points(labelled: dict, chosen: Scheme | None, where: str) -> tuple[Scheme, np.ndarray]:
    """A labelme face's points by label -> (scheme, [K, 2] with NaN for a point not placed): the
    labels are a scheme's point names (all, or some of ``chosen``'s or a built-in's), or numbers."""
    names = list(labelled)
    candidates = [chosen] if chosen is not None else [load_scheme(n) for n in builtin_schemes()]
    for scheme in candidates:
        numbered = [str(i) for i in range(1, scheme.num_points + 1)]
        for labels in (list(scheme.points), numbered):
            if set(names) <= set(labels) and len(names) > scheme.num_points // 2:
                points = np.full((scheme.num_points, 2), np.nan)
                for name in names:
                    points[labels.index(name)] = labelled[name]
                if chosen is None and len(names) < scheme.num_points and labels is numbered:
                    continue  # bare numbers with points missing name no scheme surely
                return scheme, points
    scheme, order = scheme_for_names(names, chosen, where)
    return scheme, np.array([labelled[names[i]] for i in order], dtype=np.float64)


def read_labelme(data_dir: Path, report: Report, scheme: Scheme | None = None) -> Source:
    """Every labelme JSON under ``data_dir``; its ``imagePath`` is relative to the JSON file."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found")
    files = sorted(data_dir.rglob("*.json"))
    annotations: list[Annotation] = []
    sizes = ImageSizes()
    found: Scheme | None = None
    read: list[Path] = []
    for path in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            report.problem(f"{path}:{error.lineno}", f"not valid JSON ({error.msg})")
            continue
        if not isinstance(document, dict) or "shapes" not in document or "imagePath" not in document:
            continue  # another kind of JSON: not a labelme file
        read.append(path)
        faces: dict = {}
        for shape in document["shapes"]:
            face = faces.setdefault(shape.get("group_id"), {"points": {}, "box": None})
            kind = shape.get("shape_type", "polygon")
            if kind == "point" and shape.get("points"):
                face["points"][str(shape.get("label", ""))] = shape["points"][0]
            elif kind == "rectangle" and len(shape.get("points", [])) == 2:
                (x1, y1), (x2, y2) = shape["points"]
                face["box"] = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        for group, face in faces.items():
            source = f"{path}:group {group}" if group is not None else str(path)
            if not face["points"]:
                continue
            try:
                face_scheme, points = labelme_points(face["points"], scheme or found, source)
                if found is not None and face_scheme.name != found.name:
                    raise ValueError(f"points of scheme {face_scheme.name}, the others are {found.name}")
                found = face_scheme
                annotation = face_annotation(path.parent / str(document["imagePath"]), points, face["box"],
                                             face_scheme, source)
            except (ValueError, TypeError, DataError) as error:
                report.problem(source, str(error).split(f"{source}: ", 1)[-1])
                continue
            accept(annotation, sizes, report, annotations)
    if found is None:
        raise DataError(f"{data_dir}: no labelme file with point shapes found")
    return Source(annotations, found, {}, boxes_given=True, files=read)
