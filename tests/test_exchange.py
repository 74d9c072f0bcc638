"""Annotation tools' formats: COCO keypoints and labelme in (``--format coco|labelme``) and out
(``--convert``, ``--labels-out``), a round trip, training through the CLI, pre-annotation
that picks up where a stopped run left off."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from landmarks.commands.lists import main as lists_main
from landmarks.data.formats import read_source
from landmarks.data.labels import Report, read_list
from landmarks.data.scheme import load_scheme
from landmarks.data.writers import PictureFaces, coco_document, labelme_document, pictures_of
from landmarks.detector import main

from conftest import train_args

COURSE = load_scheme("course21")


@pytest.fixture(scope="module")
def course_pictures(sample_dir):
    return pictures_of(read_source("course", sample_dir, Report()))


def write_coco(pictures, path: Path, root: Path) -> Path:
    path.write_text(json.dumps(coco_document(pictures, COURSE, root)))
    return path


def test_a_coco_file_reads_back_the_points_it_was_written_with(course_pictures, sample_dir, tmp_path):
    coco = write_coco(course_pictures, tmp_path / "faces.json", sample_dir)
    document = json.loads(coco.read_text())
    assert document["categories"][0]["keypoints"] == list(COURSE.points)
    assert {Path(image["file_name"]).parent.name for image in document["images"]} == {"I", "II"}
    source = read_source("coco", sample_dir, Report(), labels=coco)
    assert source.scheme.name == "course21" and len(source.annotations) == 94
    written = {(str(p.image), tuple(np.round(b, 2))): pts for p in course_pictures for b, pts in p.faces}
    for annotation in source.annotations:
        np.testing.assert_allclose(annotation.points, written[(str(annotation.image),
                                                               tuple(np.round(annotation.box, 2)))], atol=0.006)


def test_coco_points_are_mapped_by_name_and_unlabelled_points_stay_unlabelled(course_pictures, sample_dir, tmp_path):
    document = coco_document(course_pictures[:2], COURSE, sample_dir)
    order = list(range(21))[::-1]  # the tool listed the points backwards
    document["categories"][0]["keypoints"] = [COURSE.points[i] for i in order]
    for annotation in document["annotations"]:
        triples = np.array(annotation["keypoints"]).reshape(21, 3)
        annotation["keypoints"] = triples[order].reshape(-1).tolist()
    document["annotations"][0]["keypoints"][2] = 0  # visibility 0: left out by the annotator
    path = tmp_path / "faces.json"
    path.write_text(json.dumps(document))
    report = Report()
    source = read_source("coco", sample_dir, report, labels=path)
    assert len(source.annotations) == sum(len(p.faces) for p in course_pictures[:2]) and not report.problems
    expected = {tuple(np.round(b, 2)): pts for p in course_pictures[:2] for b, pts in p.faces}
    first, second = source.annotations[:2]
    # The point the annotator left out (the file's first, the scheme's last) is NaN; the rest in place.
    assert np.isnan(first.points[20]).all() and np.isfinite(first.points[:20]).all()
    np.testing.assert_allclose(first.points[:20], expected[tuple(np.round(first.box, 2))][:20], atol=0.006)
    np.testing.assert_allclose(second.points, expected[tuple(np.round(second.box, 2))], atol=0.006)
    document["annotations"][1]["keypoints"][2::3] = [0] * 11 + [2] * 10  # 11 of 21 left out: too few
    path.write_text(json.dumps(document))
    report = Report()
    assert len(read_source("coco", sample_dir, report, labels=path).annotations) == len(source.annotations) - 1
    assert report.problems == [f"{path}:annotations[1]: 11 of 21 points unlabelled: too few left to place the face"]


def test_a_labelme_folder_reads_back_each_face_of_each_picture(course_pictures, tmp_path):
    folder = tmp_path / "labelme"
    folder.mkdir()
    several = next(p for p in course_pictures[1:] if len(p.faces) > 1)
    for picture in (course_pictures[0], several):
        (folder / f"{picture.image.stem}.json").write_text(json.dumps(labelme_document(picture, COURSE, folder)))
    (folder / "other.json").write_text('{"not": "labelme"}')  # another JSON is passed over
    source = read_source("labelme", folder, Report())
    assert len(source.annotations) == len(course_pictures[0].faces) + len(several.faces)
    got = sorted(round(float(a.points[0, 0]), 1) for a in source.annotations)
    want = sorted(round(float(pts[0, 0]), 1) for p in (course_pictures[0], several) for _, pts in p.faces)
    assert got == want


def test_a_broken_labelme_file_is_named(tmp_path):
    folder = tmp_path / "labelme"
    folder.mkdir()
    (folder / "a.json").write_text('{"shapes": [')
    report = Report()
    with pytest.raises(Exception, match="no labelme file with point shapes"):
        read_source("labelme", folder, report)
    assert report.problems and report.problems[0].startswith(f"{folder / 'a.json'}:1: not valid JSON")


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_a_tools_export_trains_a_model_through_the_cli(fmt, sample_dir, tmp_path, capsys):
    data = tmp_path / "pictures"
    shutil.copytree(sample_dir, data)
    out = tmp_path / ("faces.json" if fmt == "coco" else "labelme")
    assert lists_main(["--data-dir", str(data), "--convert", fmt, "--convert-out", str(out)]) == 0
    labels = ["--labels", str(out), "--data-dir", str(data)] if fmt == "coco" else ["--data-dir", str(out)]
    assert lists_main(["--format", fmt, *labels, "--out-dir", str(tmp_path / "lists"), "--test-ratio", "0.25",
                       "--verify", "0"]) == 0
    assert len(read_list(tmp_path / "lists" / "train.txt").entries) > 60
    assert main(train_args(tmp_path / "lists", tmp_path, "tool", "--epochs", "2", "--max-steps", "2")) == 0
    assert (tmp_path / "runs" / "tool" / "last.pt").is_file()


def test_pre_annotations_from_predict_read_back_and_a_stopped_run_goes_on(sample_dir, tmp_path, capsys):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for name in sorted(p.name for p in (sample_dir / "II").glob("*.jpg"))[:4]:
        shutil.copy(sample_dir / "II" / name, pictures / name)
    labels = tmp_path / "pre.json"
    args = ["--phase", "predict", "--image", str(pictures), "--out", str(tmp_path / "drawn"), "--json",
            "--labels-out", str(labels), "--labels-format", "coco"]
    assert main(args) == 0
    found = {json.loads(line)["image"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    source = read_source("coco", pictures, Report(), labels=labels)
    faces = sum(1 for record in found.values() for face in record["faces"] if face["landmarks"])
    assert len(source.annotations) == faces > 0
    one = source.annotations[0]
    record = found[str(one.image)]
    assert min(np.abs(np.array(f["landmarks"]) - one.points).max() for f in record["faces"] if f["landmarks"]) < 0.01
    # A stopped run: its progress file holds the first picture; started again, it does the rest only.
    first = sorted(pictures.iterdir())[0]
    progress = tmp_path / ".pre.json.progress.jsonl"
    progress.write_text(json.dumps({"image": str(first.resolve()), "width": 10, "height": 10, "faces": []}) + "\n")
    labels.unlink()
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "1 picture(s) already in" in err and len(out.splitlines()) == 3
    document = json.loads(labels.read_text())
    assert len(document["images"]) == 4 and not progress.exists()
    assert next(i for i in document["images"] if i["file_name"] == first.name)["width"] == 10  # kept, not redone
    # The pre-annotations train a model as an annotation tool's export would.
    assert main(["--phase", "predict", "--image", str(pictures), "--out", str(tmp_path / "drawn2"),
                 "--labels-out", str(tmp_path / "lm"), "--labels-format", "labelme"]) == 0
    for fmt, labels_args in (("coco", ["--labels", str(labels), "--data-dir", str(pictures)]),
                             ("labelme", ["--data-dir", str(tmp_path / "lm")])):
        assert lists_main(["--format", fmt, *labels_args, "--out-dir", str(tmp_path / f"lists-{fmt}"),
                           "--test-ratio", "0", "--verify", "0"]) == 0
        assert main(train_args(tmp_path / f"lists-{fmt}", tmp_path, f"pre-{fmt}", "--epochs", "1")) == 0
        assert (tmp_path / "runs" / f"pre-{fmt}" / "last.pt").is_file()


def test_labels_out_as_a_labelme_folder_and_a_label_txt(sample_dir, tmp_path):
    image = sample_dir / "I" / "000421.jpg"
    for fmt, path in (("labelme", tmp_path / "lm"), ("course", tmp_path / "label.txt")):
        assert main(["--phase", "predict", "--image", str(image), "--out", str(tmp_path / f"{fmt}.png"),
                     "--labels-out", str(path), "--labels-format", fmt]) == 0
    labelme = read_source("labelme", tmp_path / "lm", Report())
    course = read_source("course", tmp_path, Report(), folders=["."])
    assert len(labelme.annotations) == len(course.annotations) >= 2
    for a, b in zip(labelme.annotations, course.annotations):
        np.testing.assert_allclose(a.points, b.points, atol=0.01)


def test_picture_faces_written_by_the_course_writer_are_the_course_format(course_pictures, tmp_path):
    from landmarks.data.writers import course_text
    picture = PictureFaces(course_pictures[0].image, course_pictures[0].width, course_pictures[0].height,
                           course_pictures[0].faces)
    line = course_text([picture], picture.image.parent).splitlines()[0].split()
    assert line[0] == picture.image.name and len(line) == 1 + 4 + 42
