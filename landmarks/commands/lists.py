"""``python -m landmarks.data``: build train/test lists (and picture lists) from annotated pictures.

It lives above the package's layers because two of its options run the whole-picture pipeline:
a face finder's mistakes as negatives, and faces framed where the pipeline looks at them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..cli import DefaultsHelpFormatter, run_cli
from ..data.formats import FORMATS
from ..data.labels import Report, read_list
from ..data.lists import DEFAULT_NEGATIVE_KINDS, NEGATIVE_KINDS, build_lists, read_sources
from ..data.scheme import builtin_schemes, load_scheme
from ..data.verify import suspicious_points, verification_picture
from ..data.writers import LABEL_FORMATS, common_folder, pictures_of, write_annotations
from ..errors import DataError, UsageError
from ..files import Outputs
from ..geometry import EXPAND_RATIO
from ..inference.faces import make_finder
from ..inference.landmarker import Landmarker, framed_faces


def negative_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in NEGATIVE_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown kind {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(NEGATIVE_KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m landmarks.data",
        description="Build train/test lists from annotated pictures (the course's label.txt folders, 300-W "
                    ".pts files, WFLW or MTFL annotation files), and draw a verification picture.",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--data-dir", type=Path, nargs="+", default=[Path("data")],
                        help="folder of the pictures: holding I/, II/ ... with a label.txt each (course), "
                             ".pts files beside pictures (pts), or the pictures a --labels file names; several "
                             "folders are read into one set of lists (default: data)")
    parser.add_argument("--format", choices=FORMATS, default="course", help="annotation format")
    parser.add_argument("--labels", type=Path, default=None,
                        help="wflw, mtfl, coco: the annotation file (image paths in it are relative to --data-dir)")
    parser.add_argument("--box-file", type=Path, default=None,
                        help="pts: face boxes as 'name x1 y1 x2 y2' lines (default: the tight box of the points)")
    parser.add_argument("--folders", nargs="+", default=None,
                        help="course: sub-folders to read (default: each one that holds a label.txt)")
    parser.add_argument("--scheme", default=None,
                        help=f"landmark scheme of the lists: {', '.join(builtin_schemes())} or a .toml file; "
                             "points are derived from the data's own scheme (default: the data's own scheme)")
    parser.add_argument("--out-dir", type=Path, default=Path("lists"),
                        help="where train.txt, test.txt, train_pictures.txt, test_pictures.txt and lists.json go")
    parser.add_argument("--test-ratio", type=float, default=0.1,
                        help="share of images (not faces) that go to test.txt, 0 to 1")
    parser.add_argument("--val-ratio", type=float, default=0.0,
                        help="share of all images taken from the training ones into val.txt and val_pictures.txt, "
                             "to choose settings on; the test split does not change")
    parser.add_argument("--seed", type=int, default=0, help="fixes the split and the negatives")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line or image")
    parser.add_argument("--negatives", type=int, default=0,
                        help="non-face crops per face for stage-3 lists, the --negative-kinds in turn (0: stage-1 lists)")
    parser.add_argument("--negative-kinds", default=",".join(DEFAULT_NEGATIVE_KINDS), type=negative_kinds,
                        help="kinds of non-face crop, comma-separated: random (anywhere), partial (overlapping a "
                             "face a little), loose (a crop around a face 1.8-2.6x its size)")
    parser.add_argument("--neg-iou", type=float, default=0.3,
                        help="a non-face crop has IoU below this with every face")
    parser.add_argument("--detector-negatives", metavar="DETECTOR", default=None,
                        help="add a face detector's false positives on each picture as non-faces of kind detector "
                             "(a detector checkpoint or shipped name, or haar)")
    parser.add_argument("--framed-positives", metavar="MODEL", default=None,
                        help="add each training face once more, cropped where MODEL's whole-picture pipeline looks "
                             "at it (the finder of --detector-negatives, else the shipped one; then the box MODEL's "
                             "first points give), so the face branch learns the looser crops of small faces "
                             "(a landmark checkpoint or shipped name; default: none)")
    parser.add_argument("--detector-threshold", type=float, default=0.1,
                        help="with --detector-negatives: the lowest score a false positive is taken from")
    parser.add_argument("--expand", type=float, default=None,
                        help="box expansion on every side, as a share of its width and height (default: the "
                             f"scheme's, {EXPAND_RATIO} unless its file says crop_expand)")
    parser.add_argument("--yaw", action="store_true",
                        help="add a yaw attribute (left, frontal, right) derived from the points, for --aux yaw")
    parser.add_argument("--verify", type=int, default=16, metavar="N",
                        help="draw N crops of train.txt with their points to <out-dir>/verify.png (0: none)")
    parser.add_argument("--convert", choices=LABEL_FORMATS, default=None,
                        help="instead of lists, write the faces read in this format to --convert-out: a COCO "
                             "keypoints file, a folder of labelme JSON files, or a label.txt (default: none)")
    parser.add_argument("--convert-out", type=Path, default=None, metavar="PATH",
                        help="with --convert: the file (coco, course) or folder (labelme) to write")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def convert(args, outputs: Outputs) -> int:
    """``--convert``: the faces of any readable format, written in another."""
    if args.convert_out is None:
        raise UsageError("--convert needs --convert-out PATH (a file; for labelme a folder)")
    report = Report(strict=args.strict)
    target = load_scheme(args.scheme) if args.scheme else None
    source = read_sources(args.format, args.data_dir, report, folders=args.folders, labels=args.labels,
                          box_file=args.box_file, scheme=target)
    outputs.reads("--data-dir", *source.files, *{a.image for a in source.annotations})
    pictures = pictures_of(source)
    if not pictures:
        raise DataError(f"{', '.join(map(str, args.data_dir))}: no usable faces ({report.summary()})")
    root = common_folder([p.image for p in pictures])
    written = write_annotations(args.convert, args.convert_out, pictures, source.scheme, root, outputs,
                                "--convert-out")
    where = f"; picture paths relative to {root} (--data-dir to read it)" if args.convert == "coco" else ""
    print(f"{report.summary()}; {len(pictures)} pictures -> {args.convert_out} ({args.convert}, "
          f"{len(written)} file(s), scheme {source.scheme.name}){where}")
    return 0


def report_suspicious(entries, scheme, shown: int = 20) -> None:
    """Print the faces whose points look wrong, so a mistake is mended before a training run."""
    faces = [e for e in entries if e.is_face and not np.isnan(e.points).any()]  # fully labelled faces
    found = suspicious_points(np.array([e.points for e in faces]), scheme.flip_permutation) if faces else []
    if not found:
        print(f"points checked on {len(faces)} training faces: none look wrong")
        return
    print(f"points that look wrong ({len(found)}; check them before training):")
    for face, point, what in found[:shown]:
        where = f"{faces[face].source} ({faces[face].listed_as or faces[face].image})"
        if point is None:
            print(f"  {where}: left and right points look swapped")
        else:
            print(f"  {where}: point {point + 1} ({scheme.points[point]}) is {what} further from where the "
                  "face's other points put it than usual")
    if len(found) > shown:
        print(f"  ... and {len(found) - shown} more")


def framing(model: str, detector: str | None):
    """Where ``model``'s whole-picture pipeline looks at each annotated face (see framed_faces)."""
    marker = Landmarker(model, detector=detector if detector is not None else "default")
    return lambda rgb, face_boxes: framed_faces(marker, rgb, face_boxes)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def job():
        outputs = Outputs()
        outputs.reads("--labels", args.labels)
        outputs.reads("--box-file", args.box_file)
        if args.scheme is not None and Path(args.scheme).is_file():
            outputs.reads("--scheme", args.scheme)
        if args.convert is not None:
            return convert(args, outputs)
        finder = (make_finder(args.detector_negatives, args.detector_threshold)
                  if args.detector_negatives is not None else None)
        frame = framing(args.framed_positives, args.detector_negatives) if args.framed_positives else None
        summary = build_lists(args.data_dir, args.out_dir, fmt=args.format, scheme=args.scheme, labels=args.labels,
                              box_file=args.box_file, folders=args.folders, test_ratio=args.test_ratio,
                              val_ratio=args.val_ratio,
                              seed=args.seed, strict=args.strict, negatives=args.negatives, neg_iou=args.neg_iou,
                              ratio=args.expand, yaw=args.yaw, find_faces=finder,
                              negative_kinds=args.negative_kinds, frame_faces=frame,
                              framed_by=args.framed_positives or "", outputs=outputs,
                              verify=args.verify)
        scheme = summary["scheme"]
        print(f"{summary['summary']}; {summary['images']} images -> "
              f"{args.out_dir / 'train.txt'} ({summary['train_lines']} lines, "
              f"{summary['train_non_faces']} non-faces), {args.out_dir / 'test.txt'} "
              f"({summary['test_lines']} lines, {summary['test_non_faces']} non-faces)"
              + (f", val.txt ({summary['val_lines']} lines)" if summary["val_lines"] else "")
              + (f"; {summary['framed_faces']} of the training lines are faces framed by the finder"
                 if args.framed_positives else ""))
        print(f"scheme {scheme.name} ({scheme.num_points} points); face box as shares of the points' tight box: "
              f"{list(scheme.face_box)}; crops grown by {summary['expand']:g} of it on every side")
        spread = summary["yaw_counts"]
        if any(sum(counts.values()) for counts in spread.values()):
            print(f"faces by head yaw ({', '.join(spread['train'])}): "
                  + ", ".join(f"{part} {'/'.join(str(n) for n in counts.values())}" for part, counts in spread.items()))
        for name, counts in summary["attribute_counts"].items():
            print(f"attribute {name}: {counts} faces per class")
        if args.verify and summary["train_lines"]:
            entries = read_list(args.out_dir / "train.txt").entries
            picture = verification_picture(entries, args.verify, args.out_dir / "verify.png", args.seed,
                                           lines=scheme.lines, outputs=outputs)
            print(f"verification picture: {picture}")
            report_suspicious(entries, scheme)
        return 0

    return run_cli(job, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
