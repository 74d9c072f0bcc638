"""The scheme and the crop recipe travel with the model; finetuning across schemes; auxiliary heads."""

import csv
import json

import numpy as np
import pytest
import torch

from landmarks.checkpoint import load_model
from landmarks.data import build_lists
from landmarks.data.labels import read_picture_list
from landmarks.detector import main
from landmarks.errors import UsageError
from landmarks.geometry import crop_box

from conftest import run_main, train_args


@pytest.fixture(scope="module")
def five_point_run(sample_dir, tmp_path_factory):
    """Five-point lists (with a yaw attribute) and a short run that learns yaw beside the points."""
    tmp = tmp_path_factory.mktemp("five")
    build_lists(sample_dir, tmp / "lists", test_ratio=0.25, seed=0, scheme="five", yaw=True)
    assert main(train_args(tmp / "lists", tmp, "five", "--epochs", "3", "--aux", "yaw=0.5")) == 0
    return tmp


def test_a_five_point_run_records_its_scheme_and_learns_the_attribute(five_point_run):
    loaded = load_model(five_point_run / "runs" / "five" / "last.pt")
    assert loaded.spec.scheme.name == "five" and loaded.net.ip3.out_features == 10
    assert loaded.spec.attributes == {"yaw": ["left", "frontal", "right"]}
    history = list(csv.DictReader(open(five_point_run / "runs" / "five" / "history.csv")))
    assert {"train_aux_yaw_loss", "val_aux_yaw_loss", "val_aux_yaw_acc"} <= set(history[0])
    assert float(history[-1]["train_aux_yaw_loss"]) < float(history[0]["train_aux_yaw_loss"])


def test_test_and_predict_take_the_scheme_from_the_model(five_point_run, sample_dir, tmp_path, capsys):
    model = str(five_point_run / "runs" / "five" / "last.pt")
    metrics_file = tmp_path / "m.json"
    code = main(["--phase", "test", "--model", model, "--test-list", str(five_point_run / "lists" / "test.txt"),
                 "--metrics-json", str(metrics_file), "--cache-dir", str(tmp_path / "c"), "--quiet"])
    assert code == 0
    metrics = json.loads(metrics_file.read_text())
    assert 0 <= metrics["aux_yaw_acc"] <= 1 and metrics["nme_io"] > 0
    label = (sample_dir / "I" / "label.txt").read_text().split()
    capsys.readouterr()
    assert main(["--phase", "predict", "--model", model, "--image", str(sample_dir / "I" / label[0]),
                 "--box", ",".join(label[1:5]), "--json", "--out", str(tmp_path / "p.png")]) == 0
    face = json.loads(capsys.readouterr().out)["faces"][0]
    assert len(face["landmarks"]) == 5
    # A 21-point list is refused for the 5-point model, with the way out.
    build_lists(sample_dir, tmp_path / "l21", test_ratio=1.0)
    code, err = run_main(["--phase", "test", "--model", model, "--test-list", str(tmp_path / "l21" / "test.txt"),
                          "--no-cache"], capsys)
    assert code == 2 and "holds 21-point faces but the model predicts 5 (five)" in err


def test_finetune_across_schemes_keeps_the_trunk_and_grows_a_new_head(sample_lists, five_point_run, tmp_path,
                                                                      capsys, caplog):
    assert main(train_args(sample_lists, tmp_path, "s21", "--epochs", "1")) == 0
    source = load_model(tmp_path / "runs" / "s21" / "last.pt")
    args = ["--phase", "finetune", "--model", str(tmp_path / "runs" / "s21" / "last.pt"),
            "--list-dir", str(five_point_run / "lists"), "--runs-dir", str(tmp_path / "runs"),
            "--cache-dir", str(tmp_path / "cache"), "--quiet", "--epochs", "1", "--device", "cpu",
            "--freeze", "conv1,conv2,conv3,conv4,ip1,ip2"]
    code, err = run_main(args + ["--run-name", "without-scheme"], capsys)
    assert code == 2 and "pass --scheme five (a new landmark head)" in err  # lists of another scheme
    assert main(args + ["--run-name", "to5", "--scheme", "five"]) == 0
    result = load_model(tmp_path / "runs" / "to5" / "last.pt")
    assert main(args + ["--run-name", "to5-again", "--scheme", "five"]) == 0  # the new head drawn from the seed
    again = load_model(tmp_path / "runs" / "to5-again" / "last.pt").net.state_dict()
    assert all(torch.equal(value, again[key]) for key, value in result.net.state_dict().items())
    assert result.spec.scheme.name == "five" and result.net.ip3.out_features == 10
    for name in ("conv1_1", "conv4_2", "ip1", "ip2"):  # the trunk came over and stayed (frozen)
        for a, b in zip(getattr(source.net, name).parameters(), getattr(result.net, name).parameters()):
            assert torch.equal(a, b), name
    assert "finetune: new layers" in caplog.text and "ip3" in caplog.text


def test_the_crop_expansion_travels_with_the_model(sample_dir, tmp_path, capsys, caplog):
    build_lists(sample_dir, tmp_path / "wide", test_ratio=0.25, ratio=0.4)
    assert main(train_args(tmp_path / "wide", tmp_path, "wide", "--epochs", "1")) == 0
    model = tmp_path / "runs" / "wide" / "last.pt"
    assert load_model(model).config.expand == 0.4
    label = (sample_dir / "II" / "label.txt").read_text().split()
    image, face = sample_dir / "II" / label[0], np.array(label[1:5], float)
    capsys.readouterr()
    assert main(["--phase", "predict", "--model", str(model), "--image", str(image), "--box",
                 ",".join(label[1:5]), "--json", "--out", str(tmp_path / "p.png")]) == 0
    got = json.loads(capsys.readouterr().out)["faces"][0]["crop_box"]
    from PIL import Image
    width, height = Image.open(image).size
    np.testing.assert_allclose(got, crop_box(face, width, height, 0.4))
    # Lists cut with another expansion are refused, not silently mis-cropped.
    code, _ = run_main(["--phase", "test", "--model", str(model), "--test-list", str(tmp_path / "wide" / "test.txt"),
                        "--no-cache"], capsys)
    assert code == 0
    build_lists(sample_dir, tmp_path / "narrow", test_ratio=0.25)
    code, err = run_main(["--phase", "test", "--model", str(model), "--test-list", str(tmp_path / "narrow" / "test.txt"),
                          "--no-cache"], capsys)
    assert code == 2 and "crops expanded by 0.25 but the model was trained on 0.4" in err
    code, err = run_main(train_args(tmp_path / "wide", tmp_path, "clash", "--expand", "0.3"), capsys)
    assert code == 2 and "were cut with 0.4" in err
    # A finetune crops as its lists were cut (it often moves to another scheme, framed otherwise), and says so.
    assert main(["--phase", "finetune", "--model", str(model), "--list-dir", str(tmp_path / "narrow"), "--runs-dir",
                 str(tmp_path / "runs"), "--run-name", "narrowed", "--epochs", "1", "--no-cache", "--quiet"]) == 0
    assert load_model(tmp_path / "runs" / "narrowed" / "last.pt").config.expand == 0.25
    assert "the model saw crops grown by 0.4 on every side, the lists' are grown by 0.25" in caplog.text


def test_an_attribute_the_lists_lack_is_named(sample_lists, tmp_path, capsys):
    code, err = run_main(train_args(sample_lists, tmp_path, "x", "--aux", "smile"), capsys)
    assert code == 2 and "--aux smile: the lists carry no such attribute (they carry: none)" in err


def test_an_auxiliary_task_stops_when_its_validation_loss_stalls():
    from landmarks.config import Config
    from landmarks.data import load_scheme
    from landmarks.spec import ModelSpec
    from landmarks.train import LandmarkTask
    spec = ModelSpec(Config(aux=("yaw",), aux_patience=2), load_scheme("five"), {"yaw": ["l", "f", "r"]})
    task = LandmarkTask(spec, spec.codec(spec.build()))
    notes = [task.after_validation(e, {"aux_yaw_loss": v}) for e, v in enumerate([1.0, 0.8, 0.9, 0.85, 0.7])]
    assert notes[:3] == [[], [], []] and "stops after epoch 4" in notes[3][0]
    assert task.active_aux() == {} and task.aux_state["yaw"]["stopped"] == 4
    again = LandmarkTask(spec, spec.codec(spec.build()))
    again.load_state_dict(task.state_dict())  # resumed runs keep the decision
    assert again.active_aux() == {}


def test_derived_points_scores_a_models_points_in_a_scheme_derived_from_its_own(sample_lists):
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from landmarks.data.labels import read_picture_list
    from landmarks.data.scheme import load_scheme
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "tools" / "derived_points.py"))
    pictures = read_picture_list(sample_lists / "test_pictures.txt")[0]
    truth = {tuple(np.round(box, 3)): points for p in pictures for box, points in zip(p.boxes, p.points)}
    course, five = load_scheme("course21"), load_scheme("five")

    class Marker:  # answers each annotated face's points, moved right by ``shift`` pixels
        scheme = course

        def __init__(self, shift):
            self.shift = np.array([shift, 0.0])

        def landmarks(self, rgb, boxes, verify):
            assert not verify
            return [SimpleNamespace(points=truth[tuple(np.round(box, 3))] + self.shift) for box in boxes]

    assert script["derived_metrics"](Marker(0.0), pictures, five)["nme_io"] == 0.0
    moved = script["derived_metrics"](Marker(2.0), pictures, five)
    eyes = np.array([five.convert(points, course)[list(five.interocular)] for points in truth.values()])
    expected = np.mean(2.0 / np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=1)) * 100
    assert moved["faces"] == len(truth) and moved["nme_io"] == pytest.approx(expected)


def teacher_error_px(teacher, student, lists):
    """Teacher points for a list's crops, and their median distance from the annotated points
    (pixels of a 112-pixel crop)."""
    from landmarks.data.dataset import FaceLandmarksDataset
    from landmarks.data.labels import read_list
    from landmarks.train.distill import teacher_points

    entries = read_list(lists / "train.txt").entries
    shares = teacher_points(teacher, student, FaceLandmarksDataset(entries, num_points=student.num_points))
    truth = torch.tensor(np.stack([e.points / (e.box[2:] - e.box[:2]) for e in entries]), dtype=torch.float32)
    assert shares.shape == truth.shape
    return float(((shares - truth).norm(dim=-1).mean(dim=1) * 112).median())


def test_a_teacher_gives_its_points_on_the_training_crops_in_the_runs_scheme(five_point_run, sample_lists):
    from landmarks.checkpoint import resolve_model
    from landmarks.train.distill import teacher_points

    teacher = load_model(resolve_model("stage2"))  # the shipped 21-point model
    # Its own scheme: the shipped model's points lie within a few pixels of the annotations.
    assert teacher_error_px(teacher, teacher.spec, sample_lists) < 4.0
    # A five-point run: the 21 points are converted as the scheme file says (eye centres, nose
    # tip and mouth corners) and land as close.
    five = load_model(five_point_run / "runs" / "five" / "last.pt")
    assert teacher_error_px(teacher, five.spec, five_point_run / "lists") < 4.0
    # A scheme the run's does not derive from is refused, naming both.
    with pytest.raises(UsageError, match=r"predicts five \(5 points\), the run learns course21 \(21\), which does not"):
        teacher_points(five, teacher.spec, None)


def test_whole_pictures_of_a_scheme_the_model_derives_from_are_converted_to_its_points(tmp_path):
    from landmarks.data.labels import Picture
    from landmarks.data.scheme import load_scheme
    from landmarks.inference.evaluate import in_scheme
    ibug, course = load_scheme("ibug68"), load_scheme("course21")
    points = np.random.default_rng(0).uniform(50, 150, (2, 68, 2))
    pictures = [Picture(tmp_path / "a.jpg", np.array([[50.0, 50, 150, 150]] * 2), points),
                Picture(tmp_path / "b.jpg", np.zeros((0, 4)), np.zeros((0, 68, 2)))]
    seen = in_scheme(pictures, ibug, course)
    assert seen[0].points.shape == (2, 21, 2) and seen[1].points.shape == (0, 21, 2)
    assert np.allclose(seen[0].points[:, 6], points[:, 36])  # outer eye corner: one 68-point index
    assert np.allclose(seen[0].points[:, 16], points[:, 36:42].mean(1))  # eye centre: the mean of six
    # The boxes are those the course's data would draw around these points, not the 68 points' tight box.
    assert np.allclose(seen[0].boxes, course.face_boxes(seen[0].points))
    assert seen[1].boxes.shape == (0, 4) and pictures[0].points.shape == (2, 68, 2)  # the input is kept


def test_the_whole_picture_test_takes_pictures_of_a_scheme_the_model_derives_from(five_point_run, sample_lists,
                                                                                 tmp_path, capsys):
    model = str(five_point_run / "runs" / "five" / "last.pt")
    metrics_file = tmp_path / "m.json"
    capsys.readouterr()
    assert main(["--phase", "test", "--model", model, "--test-pictures", str(sample_lists / "test_pictures.txt"),
                 "--metrics-json", str(metrics_file)]) == 0
    assert "course21 faces seen as five" in capsys.readouterr().out
    pictures, _ = read_picture_list(sample_lists / "test_pictures.txt")
    assert json.loads(metrics_file.read_text())["faces"] == sum(len(p.boxes) for p in pictures)
    # The course's 21 points do not derive from five: refused, naming both.
    code, err = run_main(["--phase", "test", "--model", "stage2", "--test-pictures",
                          str(five_point_run / "lists" / "test_pictures.txt")], capsys)
    assert code == 2 and "the model predicts 21 (course21, which does not derive from five)" in err


def test_a_grey_model_finetuned_in_colour_sees_a_grey_picture_as_before():
    import dataclasses

    from landmarks.checkpoint import resolve_model

    def in_colour(spec):
        return dataclasses.replace(spec, config=dataclasses.replace(spec.config, channels=3))

    grey = load_model(resolve_model("stage2"))
    colour = load_model(resolve_model("stage2"), spec_change=in_colour)
    assert grey.config.channels == 1 and colour.config.channels == 3
    assert "conv1_1.conv.weight" not in colour.new_layers  # spread over the colours, not drawn anew
    picture = torch.rand(2, 1, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        before = grey.net.eval()(picture)["points"]["x"]  # the SimCC head's x bins
        after = colour.net.eval()(picture.repeat(1, 3, 1, 1))["points"]["x"]
        tinted = colour.net(picture.repeat(1, 3, 1, 1) * torch.tensor([1.0, 0.5, 0.0])[None, :, None, None])
    assert torch.allclose(before, after, atol=1e-3)  # float rounding of the thirds
    assert not torch.allclose(before, tinted["points"]["x"], atol=1e-2)  # the colours are read, not ignored
