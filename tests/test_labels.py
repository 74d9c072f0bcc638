import numpy as np
import pytest

from landmarks.errors import DataError
from landmarks.data.formats import parse_label_line, read_label_file
from landmarks.data.labels import ListEntry, Report, read_list, write_list

from conftest import label_line, write_image


def test_parse_clamps_negative_coordinates_and_counts_them():
    line = label_line("x.jpg", box=(-3, 10, 50, 60))
    name, box, points, negatives = parse_label_line(line)
    assert name == "x.jpg" and negatives == 1 and box[0] == 0.0
    assert points.shape == (21, 2)


@pytest.mark.parametrize("line, message", [
    ("x.jpg 1 2 3", "expected 47 fields"),
    (label_line("x.jpg") + " 7", "found 48"),
    (label_line("x.jpg").replace(" 20 ", " abc ", 1), "is not a number: 'abc'"),
    (label_line("x.jpg").replace(" 20 ", " nan ", 1), "not a finite number"),
    (label_line("x.jpg", box=(50, 20, 40, 80)), "x2 <= x1"),
])
def test_malformed_lines_raise_with_the_reason(line, message):
    with pytest.raises(ValueError, match=message):
        parse_label_line(line)


def test_bad_lines_are_reported_with_file_and_line_and_skipped(tmp_path):
    write_image(tmp_path / "a.jpg")
    lines = [label_line("a.jpg"), "a.jpg 1 2", label_line("missing.jpg"), label_line("a.jpg"),
             label_line("a.jpg", box=(500, 20, 600, 80)), label_line("a.jpg", points=[(900, 10)] * 21)]
    (tmp_path / "label.txt").write_text("\n".join(lines) + "\n")
    report = Report()
    faces = read_label_file(tmp_path / "label.txt", report)
    assert len(faces) == 1 and report.kept == 1 and report.skipped == 5
    label = tmp_path / "label.txt"
    assert report.problems[0].startswith(f"{label}:2: expected 47 fields")
    assert report.problems[1].startswith(f"{label}:3: ") and "image not found" in report.problems[1]
    assert report.problems[2] == f"{label}:4: duplicate of line 1"
    assert "outside the 120x100 image" in report.problems[3]
    assert "far outside" in report.problems[4]


def test_strict_turns_the_first_bad_line_into_an_error(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "label.txt").write_text(label_line("a.jpg") + "\nbad line\n")
    with pytest.raises(DataError, match=r"label.txt:2: expected 47 fields"):
        read_label_file(tmp_path / "label.txt", Report(strict=True))


def test_empty_and_missing_label_files(tmp_path):
    (tmp_path / "label.txt").write_text("\n")
    report = Report()
    assert read_label_file(tmp_path / "label.txt", report) == []
    assert "label file is empty" in report.problems[0]
    with pytest.raises(DataError, match="label file not found"):
        read_label_file(tmp_path / "nope" / "label.txt", Report())


def test_list_round_trip_with_relative_and_absolute_paths(tmp_path):
    image = write_image(tmp_path / "img" / "a.jpg")
    points = np.arange(42, dtype=float).reshape(21, 2) / 2
    entries = [ListEntry(image, np.array([1.0, 2.0, 50.0, 60.0]), points),
               ListEntry(image, np.array([60.0, 2.0, 110.0, 60.0]), None)]
    write_list(tmp_path / "lists" / "train.txt", entries, labelled=True)
    text = (tmp_path / "lists" / "train.txt").read_text().splitlines()
    assert text[0].startswith("../img/a.jpg 1 2 50 60 0 0.5 1") and text[0].endswith(" 1")
    assert text[1] == "../img/a.jpg 60 2 110 60 0"
    data = read_list(tmp_path / "lists" / "train.txt")
    assert data.stage == 3 and data.faces == 1 and data.non_faces == 1
    assert data.entries[0].image.resolve() == image.resolve()
    np.testing.assert_allclose(data.entries[0].points, points)
    # An absolute path is read as it stands.
    (tmp_path / "abs.txt").write_text(f"{image} " + " ".join(text[0].split()[1:-1]) + "\n")
    data = read_list(tmp_path / "abs.txt")
    assert data.stage == 1 and data.entries[0].image == image


def test_attributes_and_other_point_counts_round_trip(tmp_path):
    image = write_image(tmp_path / "img" / "a.jpg")
    entries = [ListEntry(image, np.array([1.0, 2.0, 50.0, 60.0]), np.arange(10.0).reshape(5, 2),
                         attributes={"yaw": "2", "smile": "0"}),
               ListEntry(image, np.array([60.0, 2.0, 110.0, 60.0]), None, attributes={"negative": "partial"})]
    write_list(tmp_path / "l" / "train.txt", entries, labelled=True)
    lines = (tmp_path / "l" / "train.txt").read_text().splitlines()
    assert lines[0].endswith(" 1 yaw=2 smile=0") and lines[1].endswith(" 0 negative=partial")
    data = read_list(tmp_path / "l" / "train.txt")  # no lists.json: the count comes from the lines
    assert data.num_points == 5 and data.info.scheme.name == "five"
    assert data.entries[0].attributes == {"yaw": "2", "smile": "0"}
    assert data.entries[1].attributes == {"negative": "partial"} and not data.entries[1].is_face
    (tmp_path / "l" / "bad.txt").write_text(lines[0] + "\n" + lines[0].replace(" 1 yaw", " 1 7 yaw") + "\n")
    report = read_list(tmp_path / "l" / "bad.txt").report
    assert report.skipped == 1 and "bad.txt:2: expected 15 fields (stage 1)" in report.problems[0]
