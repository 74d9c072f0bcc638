"""A landmark scheme as data: how many points, their names, flip pairs, the NME_io points,
drawing lines, the face box around the points, and how the points derive from other schemes.

Built-in schemes are TOML files in ``landmarks/data/schemes/``; ``load_scheme`` also reads
a user's own file. A checkpoint carries its scheme as a dict, so a model needs no file to run.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..geometry import EXPAND_RATIO

DEFAULT_SCHEME = "course21"


@dataclass(frozen=True)
class Scheme:
    name: str
    points: tuple[str, ...]  # one name per point; the count is the scheme's size
    flip_pairs: tuple[tuple[int, int], ...]  # 0-based pairs a horizontal flip swaps
    interocular: tuple[int, int]  # NME_io divides by the distance between these two points
    lines: tuple[tuple[int, ...], ...] = ()  # polylines to draw
    # The face box as shares (x1, y1, x2, y2) of the tight box around the points.
    face_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    # Lists cut each crop this share of the face box larger on every side, unless --expand says.
    crop_expand: float = EXPAND_RATIO
    # Other scheme's name -> for each point of this one, the points of that scheme it is the mean of.
    derive: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    # A 3D mean face of the points (x right, y down, z away from the camera), for head pose.
    mean_face_3d: tuple[tuple[float, float, float], ...] = ()
    description: str = ""
    # Parts of the face (jaw, brows, nose, eyes, mouth) -> their points, for NME per region.
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """New index i takes old index permutation[i] when the picture is mirrored."""
        order = list(range(self.num_points))
        for a, b in self.flip_pairs:
            order[a], order[b] = b, a
        return tuple(order)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["derive"] = {k: [list(v) for v in rows] for k, rows in self.derive.items()}
        data["mean_face_3d"] = [list(p) for p in self.mean_face_3d]
        data["regions"] = {k: list(v) for k, v in self.regions.items()}
        return data

    def face_boxes(self, points) -> np.ndarray:
        """[..., K, 2] points -> [..., 4] face boxes framed as this scheme's data frames them."""
        points = np.asarray(points, dtype=np.float64)
        low, high = np.nanmin(points, axis=-2), np.nanmax(points, axis=-2)  # unlabelled points (NaN) left out
        size = high - low
        share = np.asarray(self.face_box, dtype=np.float64)
        return np.concatenate([low + size * share[:2], low + size * share[2:]], axis=-1)

    def tilt(self, points) -> float:
        """Degrees the eye line of [K, 2] points (the ``interocular`` pair, first point on the
        picture's left when upright) is turned from level, clockwise on screen positive."""
        left, right = np.asarray(points, dtype=np.float64)[list(self.interocular)]
        return float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))

    def convert(self, points, source: "Scheme") -> np.ndarray:
        """[..., Ks, 2] points of ``source`` -> [..., K, 2] points of this scheme."""
        if source.name == self.name:
            return np.asarray(points, dtype=np.float64)
        if source.name not in self.derive:
            known = ", ".join(sorted(self.derive)) or "none"
            raise UsageError(f"scheme {self.name!r} cannot be derived from {source.name!r} "
                             f"(it derives from: {known})")
        points = np.asarray(points, dtype=np.float64)
        return np.stack([points[..., list(group), :].mean(axis=-2) for group in self.derive[source.name]], -2)


def scheme_from_dict(data: dict, where: str = "scheme") -> Scheme:
    """Build and check a Scheme; every problem names ``where``."""
    required = ("name", "points", "flip_pairs", "interocular")
    missing = [key for key in required if key not in data]
    if missing:
        raise DataError(f"{where}: missing {', '.join(missing)}")
    known = {f for f in Scheme.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise DataError(f"{where}: unknown key {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    try:
        scheme = Scheme(
            name=str(data["name"]),
            points=tuple(str(p) for p in data["points"]),
            flip_pairs=tuple((int(a), int(b)) for a, b in data["flip_pairs"]),
            interocular=tuple(int(v) for v in data["interocular"]),
            lines=tuple(tuple(int(v) for v in line) for line in data.get("lines", ())),
            face_box=tuple(float(v) for v in data.get("face_box", (0.0, 0.0, 1.0, 1.0))),
            crop_expand=float(data.get("crop_expand", EXPAND_RATIO)),
            derive={str(k): tuple(tuple(int(v) for v in group) for group in rows)
                    for k, rows in data.get("derive", {}).items()},
            mean_face_3d=tuple(tuple(float(v) for v in point) for point in data.get("mean_face_3d", ())),
            description=str(data.get("description", "")),
            regions={str(k): tuple(int(v) for v in group) for k, group in data.get("regions", {}).items()},
        )
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: malformed value ({error})") from None
    check_scheme(scheme, where)
    return scheme


def check_scheme(scheme: Scheme, where: str) -> None:
    k = scheme.num_points
    if k < 2:
        raise DataError(f"{where}: a scheme needs at least 2 points, has {k}")

    def check_index(value: int, what: str) -> None:
        if not 0 <= value < k:
            raise DataError(f"{where}: {what} names point {value}, outside 0..{k - 1}")

    seen: set[int] = set()
    for a, b in scheme.flip_pairs:
        for v in (a, b):
            check_index(v, "flip_pairs")
            if v in seen:
                raise DataError(f"{where}: point {v} is in more than one flip pair")
            seen.add(v)
        if a == b:
            raise DataError(f"{where}: flip pair [{a}, {b}] swaps a point with itself")
    if not 0 <= scheme.crop_expand <= 2:
        raise DataError(f"{where}: crop_expand is a share of the face box from 0 to 2, not {scheme.crop_expand:g}")
    if len(scheme.interocular) != 2 or scheme.interocular[0] == scheme.interocular[1]:
        raise DataError(f"{where}: interocular takes two different points")
    for v in scheme.interocular:
        check_index(v, "interocular")
    for line in scheme.lines:
        for v in line:
            check_index(v, "lines")
    for name, group in scheme.regions.items():
        for v in group:
            check_index(v, f"region {name}")
    if len(scheme.face_box) != 4 or scheme.face_box[2] <= scheme.face_box[0] or scheme.face_box[3] <= scheme.face_box[1]:
        raise DataError(f"{where}: face_box takes x1, y1, x2, y2 with x2 > x1 and y2 > y1")
    if scheme.mean_face_3d and (len(scheme.mean_face_3d) != k or any(len(p) != 3 for p in scheme.mean_face_3d)):
        raise DataError(f"{where}: mean_face_3d takes one [x, y, z] per point ({k})")
    for source, rows in scheme.derive.items():
        if len(rows) != k:
            raise DataError(f"{where}: derive.{source} has {len(rows)} rows, the scheme has {k} points")
        if any(not group or min(group) < 0 for group in rows):
            raise DataError(f"{where}: derive.{source} needs one or more non-negative indices per point")


def builtin_schemes() -> list[str]:
    folder = resources.files("landmarks.data") / "schemes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scheme(name_or_path: str | Path) -> Scheme:
    """A built-in scheme by name (course21, ibug68, wflw98, five) or a scheme file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        builtin = resources.files("landmarks.data") / "schemes" / f"{name_or_path}.toml"
        if not builtin.is_file():
            raise UsageError(f"unknown scheme {str(name_or_path)!r}; built in: {', '.join(builtin_schemes())}, "
                             "or give a scheme file (.toml)")
        path = Path(str(builtin))
    elif not path.is_file():
        raise UsageError(f"{path}: scheme file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise DataError(f"{path}: not a valid scheme file ({error})") from None
    return scheme_from_dict(data, str(path))


def default_point_count() -> int:
    """The point count of the default scheme: what a course label file holds."""
    return load_scheme(DEFAULT_SCHEME).num_points


def scheme_for_count(count: int) -> Scheme:
    """The built-in scheme with ``count`` points (for lists and files that do not say)."""
    for name in builtin_schemes():
        scheme = load_scheme(name)
        if scheme.num_points == count:
            return scheme
    raise UsageError(f"no built-in scheme has {count} points; give one with --scheme FILE.toml")


def regions_of(scheme: Scheme) -> dict[str, tuple[int, ...]]:
    """The scheme's regions; for a scheme saved before it had any, the built-in scheme's of
    the same name and size."""
    if scheme.regions or scheme.name not in builtin_schemes():
        return dict(scheme.regions)
    builtin = load_scheme(scheme.name)
    return dict(builtin.regions) if builtin.num_points == scheme.num_points else {}
