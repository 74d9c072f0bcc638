"""A 68-point training list that also holds the course's faces: each course point that the
course21 scheme derives from a single 68-point index (``[derive] ibug68`` in its scheme file)
is written at that index; the other 68 points are left unlabelled (nan), so their loss leaves
them out. The trunk then sees the course's 2,277 training faces beside the 300-W ones.

    python docs/experiments/joint_course_68.py --w300 lists/w300 --course lists/split --out lists/w300j
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from landmarks.data.scheme import load_scheme


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--w300", type=Path, required=True, help="68-point lists (train, val, test)")
    parser.add_argument("--course", type=Path, required=True, help="course lists at the same folder depth")
    parser.add_argument("--out", type=Path, required=True, help="folder for the joint lists")
    args = parser.parse_args(argv)
    if args.out.resolve() in (args.w300.resolve(), args.course.resolve()):
        raise SystemExit(f"--out {args.out}: would write over the lists it reads")
    sources = load_scheme("course21").derive["ibug68"]
    at = {course: group[0] for course, group in enumerate(sources) if len(group) == 1}  # course -> 68 index
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("lists.json", "val.txt", "test.txt"):
        shutil.copy(args.w300 / name, args.out / name)
    lines = (args.w300 / "train.txt").read_text().splitlines()
    for line in (args.course / "train.txt").read_text().splitlines():
        fields = line.split()
        values = ["nan"] * 136
        for course, index in at.items():
            values[2 * index:2 * index + 2] = fields[5 + 2 * course:7 + 2 * course]
        lines.append(" ".join(fields[:5] + values))
    (args.out / "train.txt").write_text("\n".join(lines) + "\n")
    print(f"{args.out / 'train.txt'}: {len(lines)} faces, course faces with {len(at)} of 68 points labelled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
