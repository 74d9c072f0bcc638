"""Readers of other annotation formats: 300-W .pts, WFLW and MTFL lines, into the same lists."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from landmarks.data import build_lists, read_list, read_list_info
from landmarks.data.formats import parse_pts, read_source
from landmarks.data.labels import Report
from landmarks.data.scheme import load_scheme, scheme_from_dict
from landmarks.errors import DataError

from conftest import write_image

LFPW = Path(__file__).resolve().parents[2] / "shared" / "lfpw-68" / "trainset"


def pts_text(points) -> str:
    return "version: 1\nn_points:  %d\n{\n%s\n}\n" % (len(points), "\n".join(f"{x} {y}" for x, y in points))


def test_pts_coordinates_count_from_one():
    points = parse_pts(pts_text([(1.0, 1.0), (11.5, 21.0)]))
    np.testing.assert_allclose(points, [[0.0, 0.0], [10.5, 20.0]])


@pytest.mark.parametrize("text, message", [
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points says 3 but 2 point lines follow"),
    ("version: 1\nn_points: 2\n{\n1 2\n3\n}\n", "point line 5 has 1 fields"),
    ("1 2\n3 4\n", "not a .pts file"),
])
def test_bad_pts_files_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_pts(text)


@pytest.mark.skipif(not LFPW.is_dir(), reason="../shared/lfpw-68 is not here")
def test_pts_reader_on_lfpw_gives_68_points_and_tight_boxes():
    report = Report()
    source = read_source("pts", LFPW, report)
    assert source.scheme.name == "ibug68" and len(source.annotations) == 805 and report.skipped == 0
    first = source.annotations[0]
    assert first.points.shape == (68, 2)
    np.testing.assert_allclose(first.box, [*first.points.min(0), *first.points.max(0)])
    raw = (first.image.with_suffix(".pts")).read_text().split("{")[1].split()[:2]
    np.testing.assert_allclose(first.points[0], [float(raw[0]) - 1, float(raw[1]) - 1])


def test_pts_folder_with_a_box_file_and_a_broken_file(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        write_image(tmp_path / f"{name}.jpg", 200, 160)
        (tmp_path / f"{name}.pts").write_text(pts_text(rng.uniform(40, 120, (68, 2)) + 1))
    (tmp_path / "c.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    (tmp_path / "d.pts").write_text(pts_text(rng.uniform(40, 120, (68, 2))))  # no picture beside it
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("a.jpg 30 30 130 130\nb.jpg 35 35 125 140\n")
    report = Report()
    source = read_source("pts", tmp_path, report, box_file=boxes)
    assert [a.image.name for a in source.annotations] == ["a.jpg", "b.jpg"]
    np.testing.assert_allclose(source.annotations[0].box, [30, 30, 130, 130])
    assert any("c.pts: n_points says 68 but 1 point lines follow" in p for p in report.problems)
    assert any("d.pts: no picture of the same name beside it" in p for p in report.problems)


def wflw_line(name, points, box, attributes=(0, 1, 0, 0, 1, 0)):
    return " ".join([f"{v:.2f}" for v in points.reshape(-1)] + [f"{v:g}" for v in box]
                    + [str(a) for a in attributes] + [name])


def test_wflw_lines_become_98_point_lists_with_attributes(tmp_path):
    images = tmp_path / "WFLW_images"
    write_image(images / "party" / "a.jpg", 240, 200)
    write_image(images / "party" / "b.jpg", 240, 200, seed=3)
    rng = np.random.default_rng(1)
    labels = tmp_path / "list_98pt_train.txt"
    labels.write_text("\n".join([
        wflw_line("party/a.jpg", rng.uniform(50, 150, (98, 2)), (40, 40, 160, 160)),
        wflw_line("party/b.jpg", rng.uniform(50, 150, (98, 2)), (45, 40, 160, 170), (1, 0, 0, 1, 0, 1)),
        "1 2 3 party/a.jpg",
        wflw_line("party/a.jpg", rng.uniform(50, 150, (98, 2)), (40, 40, 160, 160), (0, 2, 0, 0, 0, 0)),
    ]) + "\n")
    summary = build_lists(images, tmp_path / "lists", fmt="wflw", labels=labels, test_ratio=0.5, seed=0)
    assert summary["faces_kept"] == 2 and summary["lines_skipped"] == 2
    info = read_list_info(tmp_path / "lists")
    assert info.scheme.name == "wflw98" and info.attributes["blur"] == ["clear", "blurred"]
    entries = read_list(tmp_path / "lists" / "train.txt").entries + read_list(tmp_path / "lists" / "test.txt").entries
    assert {e.attributes["pose"] for e in entries} == {"0", "1"} and all(len(e.points) == 98 for e in entries)


def test_wflw_bad_lines_name_file_and_line(tmp_path):
    labels = tmp_path / "w.txt"
    labels.write_text("1 2 3 a.jpg\n")
    report = Report()
    read_source("wflw", tmp_path, report, labels=labels)
    assert report.problems == [f"{labels}:1: expected 207 fields (196 coordinates, 4 box numbers, 6 attributes, "
                               "image name), found 4"]


def test_mtfl_lines_become_five_point_lists_with_their_attributes(tmp_path):
    write_image(tmp_path / "lfw_5590" / "A_0001.jpg", 250, 250)
    labels = tmp_path / "training.txt"
    labels.write_text("lfw_5590\\A_0001.jpg 100 150 125 105 148 110 108 135 160 158 1 2 2 3\n"
                      "lfw_5590\\A_0001.jpg 100 150 125 105 148 110 108 135 160 158 1 2 2 9\n")
    report = Report()
    source = read_source("mtfl", tmp_path, report, labels=labels)
    assert len(source.annotations) == 1 and "attribute pose is 9, expected 1 to 5" in report.problems[0]
    face = source.annotations[0]
    np.testing.assert_allclose(face.points, [[100, 110], [150, 108], [125, 135], [105, 160], [148, 158]])
    assert face.attributes == {"gender": "0", "smile": "1", "glasses": "1", "pose": "2"}
    np.testing.assert_allclose(face.box, source.scheme.face_boxes(face.points))
    assert face.box[1] < 108 and face.box[3] > 160  # the face box is more than the points' box


def test_a_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.txt: annotation file not found"):
        read_source("mtfl", tmp_path, Report(), labels=tmp_path / "nope.txt")


def test_course_lists_in_the_five_point_scheme_derive_their_points(sample_dir, tmp_path):
    build_lists(sample_dir, tmp_path / "l21", test_ratio=0.0)
    build_lists(sample_dir, tmp_path / "l5", test_ratio=0.0, scheme="five", yaw=True)
    full, five = read_list(tmp_path / "l21" / "train.txt"), read_list(tmp_path / "l5" / "train.txt")
    assert five.info.scheme.name == "five" and five.num_points == 5
    np.testing.assert_allclose(five.entries[0].points, full.entries[0].points[[16, 17, 18, 19, 20]], atol=1e-3)
    assert five.info.attributes["yaw"] == ["left", "frontal", "right"]
    assert {e.attributes["yaw"] for e in five.entries} == {"0", "1", "2"}


def pts_folder(folder: Path, names, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in names:
        write_image(folder / f"{name}.jpg", 200, 160)
        (folder / f"{name}.pts").write_text(pts_text(rng.uniform(40, 120, (68, 2)) + 1))
    return folder


def test_several_folders_make_one_set_of_lists_with_each_photo_on_one_side(tmp_path):
    helen = pts_folder(tmp_path / "helen", [f"{photo}_{face}" for photo in range(10) for face in (1, 2)])
    lfpw = pts_folder(tmp_path / "lfpw", [f"image_{i:04d}" for i in range(10)], seed=1)
    summary = build_lists([helen, lfpw], tmp_path / "lists", fmt="pts", test_ratio=0.3, val_ratio=0.2, seed=0)
    assert summary["faces_kept"] == 30
    sides = {}
    for part in ("train", "val", "test"):
        for entry in read_list(tmp_path / "lists" / f"{part}.txt").entries:
            stem = Path(entry.image).stem
            folder = Path(entry.image).parent.name
            photo = (folder, stem.rsplit("_", 1)[0] if folder == "helen" else stem)
            sides.setdefault(photo, set()).add(part)
    assert len(sides) == 20 and all(len(parts) == 1 for parts in sides.values())  # NAME_1, NAME_2 together
    # LFPW's image_0001 ... are photos of their own, not one photo "image"
    assert len({photo for photo in sides if photo[0] == "lfpw"}) == 10
    assert {part for parts in sides.values() for part in parts} == {"train", "val", "test"}


def test_folders_of_different_point_counts_are_refused(tmp_path):
    pts_folder(tmp_path / "a", ["x"])
    (tmp_path / "b").mkdir()
    write_image(tmp_path / "b" / "y.jpg", 200, 160)
    (tmp_path / "b" / "y.pts").write_text(pts_text(np.random.default_rng(0).uniform(40, 120, (5, 2))))
    with pytest.raises(DataError, match="b: faces of 5 points, but .*a holds 68-point faces"):
        build_lists([tmp_path / "a", tmp_path / "b"], tmp_path / "lists", fmt="pts", scheme=None)


def test_the_list_command_takes_several_data_folders(tmp_path, capsys):
    from landmarks.commands.lists import main
    pts_folder(tmp_path / "a", ["p_1", "p_2", "q_1"])
    pts_folder(tmp_path / "b", ["r", "s"], seed=2)
    assert main(["--format", "pts", "--data-dir", str(tmp_path / "a"), str(tmp_path / "b"), "--out-dir",
                 str(tmp_path / "o"), "--test-ratio", "0", "--verify", "0"]) == 0
    assert len(read_list(tmp_path / "o" / "train.txt").entries) == 5
    assert (tmp_path / "o" / "test.txt").read_text() == ""


def test_crops_are_grown_as_the_scheme_says_unless_expand_is_given(tmp_path):
    folder = pts_folder(tmp_path / "p", ["x"])
    wide = replace(load_scheme("ibug68"), crop_expand=0.4)
    for ratio, grown in ((None, 0.4), (0.25, 0.25)):
        out = tmp_path / f"lists{ratio}"
        summary = build_lists(folder, out, fmt="pts", scheme=wide, test_ratio=0.0, ratio=ratio)
        data = read_list(out / "train.txt")
        entry = data.entries[0]
        tight = np.ptp(entry.points, axis=0)  # the points' box: ibug68's face box
        assert summary["expand"] == grown and data.info.expand == grown
        np.testing.assert_allclose(entry.box[2:] - entry.box[:2], tight * (1 + 2 * grown), atol=2)  # whole pixels
    with pytest.raises(DataError, match="crop_expand is a share of the face box from 0 to 2, not -0.1"):
        scheme_from_dict({**wide.to_dict(), "crop_expand": -0.1}, "mine.toml")
