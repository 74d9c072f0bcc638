"""Points left unlabelled (NaN): lists carry them, flips keep them with their point, the losses
leave them out (their gradient too), and the metrics score the labelled points only."""

import json

import numpy as np
import pytest
import torch

from landmarks.codecs import build_codec
from landmarks.data.augment import mirror_points
from landmarks.data.labels import ListEntry, read_list, write_list
from landmarks.data.scheme import load_scheme
from landmarks.data.writers import coco_document, pictures_of
from landmarks.detector import main
from landmarks.metrics import landmark_metrics, nme
from landmarks.net.losses import LOSSES, point_loss

from conftest import train_args


@pytest.mark.parametrize("name", LOSSES.names())
def test_a_point_loss_leaves_unlabelled_points_out_gradient_and_all(name):
    torch.manual_seed(0)
    pred = torch.randn(3, 5, 2, requires_grad=True)
    target = torch.randn(3, 5, 2) * 3
    target[0, 1] = float("nan")
    target[2, 4] = float("nan")
    loss = point_loss(name)(pred, target, reduction="none")
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(pred.grad).all()
    assert (pred.grad[0, 1] == 0).all() and (pred.grad[2, 4] == 0).all()
    kept = [0, 2, 3, 4]
    alone = point_loss(name)(pred[:1, kept], target[:1, kept], reduction="none")
    assert loss[0].item() == pytest.approx(alone[0].item(), rel=1e-6)


@pytest.mark.parametrize("codec, coord_weight", [("simcc", 0.0), ("simcc", 1.0), ("heatmap_offset", 0.0)])
def test_a_head_loss_leaves_unlabelled_points_out(codec, coord_weight):
    torch.manual_seed(0)
    head = build_codec(codec, 4, simcc_coord_weight=coord_weight)
    raw = ({"x": torch.randn(2, 4, 224, requires_grad=True), "y": torch.randn(2, 4, 224, requires_grad=True)}
           if codec == "simcc" else
           {"heat": torch.randn(2, 4, 14, 14, requires_grad=True), "offset": torch.randn(2, 8, 14, 14, requires_grad=True)})
    target = torch.rand(2, 4, 2) * 100 + 6
    target[1, 2] = float("nan")
    loss = head.loss(raw, target, 112, point_loss("l1"), reduction="none")
    loss.sum().backward()
    grads = [t.grad for t in raw.values()]
    assert torch.isfinite(loss).all() and all(torch.isfinite(g).all() for g in grads)
    assert all((g[1, 2] == 0).all() for g in grads[:1])  # no pull on the unlabelled point's bins or map
    other = target.clone()
    other[1, 2] = 50.0  # any value there: the loss does not change
    again = head.loss(raw, other, 112, point_loss("l1"), reduction="none").detach()
    assert again[0].item() == pytest.approx(loss[0].item()) and again[1].item() != pytest.approx(loss[1].item())


def test_a_flip_moves_the_gap_with_its_point():
    scheme = load_scheme("course21")
    points = torch.arange(42, dtype=torch.float64).reshape(1, 21, 2)
    points[0, 6] = float("nan")  # the left eye's outer corner
    mirrored = mirror_points(points, 100.0, scheme.flip_permutation)
    assert torch.isnan(mirrored[0, 9]).all() and torch.isfinite(mirrored[0, :9]).all()  # now the right one's


def test_metrics_score_the_labelled_points_only():
    truth = np.zeros((2, 4, 2))
    truth[:, 1] = [10.0, 0.0]
    truth[:, 2:] = [[0.0, 10.0], [10.0, 10.0]]
    pred = truth + [0.0, 1.0]  # every point 1 px off
    pred[0, 3] += [0.0, 50.0]  # far off, but unlabelled in the truth below
    truth_gap = truth.copy()
    truth_gap[0, 3] = np.nan
    np.testing.assert_allclose(nme(pred, truth_gap, [10.0, 10.0]), [0.1, 0.1])
    no_eyes = truth_gap.copy()
    no_eyes[1, 0] = np.nan  # face 1 cannot be scored by its eye distance
    metrics = landmark_metrics(pred, no_eyes, (0, 1))
    assert metrics["nme_io"] == pytest.approx(10.0) and metrics["fr_io@0.1"] == pytest.approx(0.0)


def test_lists_keep_unlabelled_points_as_nan(tmp_path):
    points = np.arange(42, dtype=float).reshape(21, 2)
    points[3] = np.nan
    (tmp_path / "a.jpg").write_bytes(b"")
    write_list(tmp_path / "train.txt", [ListEntry(tmp_path / "a.jpg", np.array([0.0, 0, 50, 50]), points)])
    assert " nan nan " in (tmp_path / "train.txt").read_text()
    back = read_list(tmp_path / "train.txt").entries[0].points
    assert np.isnan(back[3]).all() and np.array_equal(back[:3], points[:3])


def test_a_coco_export_with_hidden_points_trains_through_the_cli(sample_dir, tmp_path, capsys):
    from landmarks.commands.lists import main as lists_main
    from landmarks.data.formats import read_source
    from landmarks.data.labels import Report
    document = coco_document(pictures_of(read_source("course", sample_dir, Report())), load_scheme("course21"),
                             sample_dir)
    rng = np.random.default_rng(0)
    for annotation in document["annotations"]:
        triples = np.array(annotation["keypoints"], dtype=float).reshape(21, 3)
        triples[rng.random(21) < 0.2, 2] = 0
        annotation["keypoints"] = triples.reshape(-1).tolist()
    (tmp_path / "faces.json").write_text(json.dumps(document))
    assert lists_main(["--format", "coco", "--labels", str(tmp_path / "faces.json"), "--data-dir", str(sample_dir),
                       "--out-dir", str(tmp_path / "lists"), "--test-ratio", "0.25", "--verify", "4"]) == 0
    entries = read_list(tmp_path / "lists" / "train.txt").entries
    assert len(entries) > 60 and sum(np.isnan(e.points).any() for e in entries) > 0.9 * len(entries)
    assert main(train_args(tmp_path / "lists", tmp_path, "hidden", "--epochs", "2", "--augment")) == 0
    history = (tmp_path / "runs" / "hidden" / "history.csv").read_text().splitlines()
    assert len(history) == 3 and "nan" not in history[-1].lower()


def test_the_cumulative_error_curve_leaves_out_faces_that_cannot_be_scored():
    from landmarks.metrics import cumulative_error_curve
    xs, ys = cumulative_error_curve([0.01, np.nan, 0.03], 0.1, steps=10)
    assert ys[-1] == 1.0 and ys[2] == 0.5  # two faces scored: half at 0.02, both by 0.10
