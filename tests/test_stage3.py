"""Stage 3: face/non-face branch, masked loss, per-class accuracy, full-picture prediction."""

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landmarks.data import build_lists
from landmarks.detector import main
from landmarks.data.labels import read_list
from landmarks.net.losses import stage3_loss


def test_landmark_loss_is_masked_to_faces_and_zero_without_faces():
    per_sample = torch.tensor([5.0, 100.0, 7.0])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]], requires_grad=True)
    is_face = torch.tensor([True, False, True])
    total, cls, landmark = stage3_loss(per_sample, logits, is_face, 0.5, 2.0, torch.tensor([1.0, 1.0]))
    assert landmark.item() == pytest.approx(6.0)  # the non-face's 100 is ignored
    assert cls.item() == pytest.approx(F.cross_entropy(logits, is_face.long()).item())
    assert total.item() == pytest.approx(0.5 * cls.item() + 2.0 * 6.0)
    no_faces = torch.tensor([False, False, False])
    total, _, landmark = stage3_loss(per_sample, logits, no_faces, 1.0, 1.0, torch.tensor([1.0, 1.0]))
    assert float(landmark) == 0 and torch.isfinite(total)
    total.backward()
    assert torch.isfinite(logits.grad).all()


def test_class_weights_change_the_classification_loss():
    per_sample = torch.zeros(2)
    logits = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    is_face = torch.tensor([True, False])
    _, even, _ = stage3_loss(per_sample, logits, is_face, 1.0, 1.0, torch.tensor([1.0, 1.0]))
    _, skewed, _ = stage3_loss(per_sample, logits, is_face, 1.0, 1.0, torch.tensor([3.0, 1.0]))
    assert float(skewed) > float(even)  # the misclassified non-face weighs more


def test_stage3_train_and_test_report_per_class_accuracy(sample_dir, tmp_path):
    lists = tmp_path / "lists3"
    build_lists(sample_dir, lists, test_ratio=0.25, seed=0, negatives=2)
    common = ["--list-dir", str(lists), "--cache-dir", str(tmp_path / "cache"), "--quiet", "--device", "cpu"]
    assert main(["--phase", "train", "--classify", "--epochs", "3", "--runs-dir", str(tmp_path / "runs"),
                 "--run-name", "s3", *common]) == 0
    header = (tmp_path / "runs" / "s3" / "history.csv").read_text().splitlines()[0].split(",")
    for key in ("train_cls_loss", "train_landmark_loss", "train_acc_face", "train_acc_nonface", "val_acc_nonface"):
        assert key in header
    metrics_file, predictions = tmp_path / "m.json", tmp_path / "p.txt"
    assert main(["--phase", "test", "--model", str(tmp_path / "runs" / "s3" / "last.pt"), "--test-list",
                 str(lists / "test.txt"), "--metrics-json", str(metrics_file), "--predictions-out",
                 str(predictions), *common]) == 0
    metrics = json.loads(metrics_file.read_text())
    data = read_list(lists / "test.txt")
    assert metrics["faces"] == data.faces and {"acc", "acc_face", "acc_nonface"} <= set(metrics)
    expected_acc = (metrics["acc_face"] * data.faces + metrics["acc_nonface"] * data.non_faces) / len(data.entries)
    assert metrics["acc"] == pytest.approx(expected_acc)
    # Landmarks only for crops classified as faces.
    lines = predictions.read_text().splitlines()
    predicted_faces = round(metrics["acc_face"] * data.faces + (1 - metrics["acc_nonface"]) * data.non_faces)
    assert len(lines) == predicted_faces
    # --min-face-prob sets where a crop counts as a face for --predictions-out too.
    every = tmp_path / "every.txt"
    at_zero = tmp_path / "m0.json"
    assert main(["--phase", "test", "--model", str(tmp_path / "runs" / "s3" / "last.pt"), "--test-list",
                 str(lists / "test.txt"), "--predictions-out", str(every), "--min-face-prob", "0",
                 "--metrics-json", str(at_zero), *common]) == 0
    assert len(every.read_text().splitlines()) == len(data.entries)
    # ... and for the accuracy: at 0 every crop is a face.
    zero = json.loads(at_zero.read_text())
    assert zero["acc_face"] == 1.0 and zero["acc_nonface"] == 0.0 and zero["nme_box"] == metrics["nme_box"]
    # Each kind of non-face gets its own accuracy.
    assert {"acc_nonface_random", "acc_nonface_partial"} <= set(metrics)
    # The sweep over face thresholds holds the accuracy at the model's own one.
    assert metrics["threshold_sweep"]["0.5"] == pytest.approx([metrics["acc_face"], metrics["acc_nonface"]])


def test_the_threshold_sweep_counts_each_class_at_each_threshold():
    from landmarks.train import threshold_sweep
    prob = np.array([0.95, 0.6, 0.2, 0.8, 0.4, 0.05])
    is_face = np.array([True, True, True, False, False, False])
    sweep = threshold_sweep(prob, is_face, (0.1, 0.5, 0.9))
    assert sweep[0.1] == pytest.approx((1.0, 1 / 3))  # of the non-faces only 0.05 is called one
    assert sweep[0.5] == pytest.approx((2 / 3, 2 / 3))
    assert sweep[0.9] == pytest.approx((1 / 3, 1.0))
    faces_only = threshold_sweep(prob[:3], is_face[:3], (0.5,))[0.5]
    assert faces_only[0] == pytest.approx(2 / 3) and np.isnan(faces_only[1])


def test_shipped_stage3_finds_several_faces_in_a_group_picture(sample_dir, tmp_path, capsys):
    image = sample_dir / "I" / "000421.jpg"  # three annotated faces
    assert main(["--phase", "predict", "--model", "stage3", "--image", str(image), "--json",
                 "--out", str(tmp_path / "group.png")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    faces = [f for f in result["faces"] if f["landmarks"] is not None]
    assert len(faces) >= 2
    for face in faces:
        points = np.array(face["landmarks"])
        x1, y1, x2, y2 = face["crop_box"]
        assert np.all((points[:, 0] >= x1) & (points[:, 0] <= x2) & (points[:, 1] >= y1) & (points[:, 1] <= y2))


def test_shipped_stage3_gives_no_landmarks_where_there_is_no_face(tmp_path, capsys):
    rng = np.random.default_rng(0)
    wall = np.clip(np.linspace(60, 200, 320)[None, :, None] + rng.normal(0, 6, (240, 320, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "wall.png"), wall)
    assert main(["--phase", "predict", "--model", "stage3", "--image", str(tmp_path / "wall.png"), "--json",
                 "--out", str(tmp_path / "a.png")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["faces"] == []
    # A candidate box on the wall is rejected by the classifier: no landmarks.
    assert main(["--phase", "predict", "--model", "stage3", "--image", str(tmp_path / "wall.png"), "--json",
                 "--box", "100,60,200,160", "--out", str(tmp_path / "b.png")]) == 0
    face = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["faces"][0]
    assert face["landmarks"] is None and face["face_prob"] < 0.5


def test_square_negatives_are_squares_of_face_size_clear_of_every_face(sample_lists, tmp_path):
    import runpy
    from pathlib import Path

    from landmarks.data.labels import read_picture_list
    from landmarks.geometry import box_scale, iou
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "tools" / "square_negatives.py"))
    out = tmp_path / "squares.txt"
    assert script["main"](["--pictures", str(sample_lists / "train_pictures.txt"), "--out", str(out)]) == 0
    squares = read_list(out).entries
    pictures = {p.image.resolve(): p for p in read_picture_list(sample_lists / "train_pictures.txt")[0]}
    faces = sum(len(p.boxes) for p in pictures.values())
    assert 0.8 * 2 * faces <= len(squares) <= 2 * faces
    for square in squares:
        assert not square.is_face and square.attributes == {"negative": "square"}
        boxes = pictures[square.image.resolve()].boxes
        width, height = square.box[2:] - square.box[:2]
        assert abs(width - height) <= 1 and iou(square.box, boxes).max() < 0.3
        assert (0.9 * box_scale(boxes).min() - 1 <= width <= 2.4 * box_scale(boxes).max() + 1)


def test_the_log_says_when_a_list_holds_no_crop_of_a_class():
    from landmarks.train.run import accuracy_text
    assert accuracy_text(float("nan")) == "(none listed)" and accuracy_text(0.98) == "0.9800"
