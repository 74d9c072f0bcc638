"""A 68-point training list that also holds the course's faces, in one of two ways.

Shared points (the default): each course point that the course21 scheme derives from a single
68-point index (``[derive] ibug68`` in its scheme file) is written at that index; the other 68
points are left unlabelled (nan), so their loss leaves them out.

Points of their own (``--own-points``): the lists take a scheme of 89 points, the 68 and then
the course's 21, and each face labels its own scheme's points only. With the ``simcc_map`` head,
which reads each point from a feature map of its own, each scheme has its own part of the head
over the one trunk; the 300-W figures are those of the first 68 points (the validation and test
faces leave the other 21 unlabelled).

The trunk then sees the course's 2,277 training faces beside the 300-W ones.

    python docs/experiments/joint_course_68.py --w300 lists/w300 --course lists/split --out lists/w300j
    python docs/experiments/joint_course_68.py --w300 lists/w300 --course lists/split --out lists/w300u --own-points
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from landmarks.data.scheme import Scheme, load_scheme, scheme_from_dict


def union_scheme(first: Scheme, second: Scheme) -> Scheme:
    """The points of ``first`` then those of ``second``: its flip pairs and lines follow, the
    NME_io points, face box and regions are ``first``'s."""
    k = first.num_points
    data = first.to_dict()
    data.update(
        name=f"{first.name}+{second.name}",
        description=f"{first.name}'s points, then {second.name}'s",
        points=list(first.points) + [f"{second.name}: {name}" for name in second.points],
        flip_pairs=[list(p) for p in first.flip_pairs] + [[a + k, b + k] for a, b in second.flip_pairs],
        lines=[list(line) for line in first.lines] + [[v + k for v in line] for line in second.lines],
        derive={}, mean_face_3d=[])
    return scheme_from_dict(data, data["name"])


def toml_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings, ints and floats as TOML writes them


def own_points_lists(w300: Path, course: Path, out: Path) -> None:
    ibug, course21 = load_scheme("ibug68"), load_scheme("course21")
    scheme = union_scheme(ibug, course21)
    no_course_points = " ".join(["nan"] * (2 * course21.num_points))
    no_68_points = " ".join(["nan"] * (2 * ibug.num_points))
    for name in ("train.txt", "val.txt", "test.txt"):
        lines = [f"{line} {no_course_points}" for line in (w300 / name).read_text().splitlines()]
        if name == "train.txt":
            for line in (course / name).read_text().splitlines():
                fields = line.split()
                lines.append(" ".join(fields[:5] + [no_68_points] + fields[5:5 + 2 * course21.num_points]))
            train_faces = len(lines)
        (out / name).write_text("\n".join(lines) + "\n" if lines else "")
    info = json.loads((w300 / "lists.json").read_text())
    info["scheme"] = scheme.to_dict()
    (out / "lists.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "scheme.toml").write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in scheme.to_dict().items()
                                             if key != "derive"))
    print(f"{out / 'train.txt'}: {train_faces} faces in the {scheme.num_points}-point scheme {scheme.name} "
          f"({out / 'scheme.toml'}; train with --scheme {out / 'scheme.toml'})")


def shared_points_lists(w300: Path, course: Path, out: Path) -> None:
    sources = load_scheme("course21").derive["ibug68"]
    at = {course: group[0] for course, group in enumerate(sources) if len(group) == 1}  # course -> 68 index
    for name in ("lists.json", "val.txt", "test.txt"):
        shutil.copy(w300 / name, out / name)
    lines = (w300 / "train.txt").read_text().splitlines()
    for line in (course / "train.txt").read_text().splitlines():
        fields = line.split()
        values = ["nan"] * 136
        for course_index, index in at.items():
            values[2 * index:2 * index + 2] = fields[5 + 2 * course_index:7 + 2 * course_index]
        lines.append(" ".join(fields[:5] + values))
    (out / "train.txt").write_text("\n".join(lines) + "\n")
    print(f"{out / 'train.txt'}: {len(lines)} faces, course faces with {len(at)} of 68 points labelled")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--w300", type=Path, required=True, help="68-point lists (train, val, test)")
    parser.add_argument("--course", type=Path, required=True, help="course lists at the same folder depth")
    parser.add_argument("--out", type=Path, required=True, help="folder for the joint lists")
    parser.add_argument("--own-points", action="store_true",
                        help="the course's 21 points as points of their own after the 68 (default: written at "
                             "the 68-point indices they share)")
    args = parser.parse_args(argv)
    if args.out.resolve() in (args.w300.resolve(), args.course.resolve()):
        raise SystemExit(f"--out {args.out}: would write over the lists it reads")
    args.out.mkdir(parents=True, exist_ok=True)
    (own_points_lists if args.own_points else shared_points_lists)(args.w300, args.course, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
