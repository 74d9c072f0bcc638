"""Turned heads and small faces: the yaw and size breakdown of the whole-picture test, and
training draws balanced by head yaw (--pose-balance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landmarks.data import build_lists
from landmarks.data.dataset import FaceLandmarksDataset, balanced_weights
from landmarks.data.labels import read_list, read_picture_list
from landmarks.data.pose import face_yaws
from landmarks.data.scheme import load_scheme
from landmarks.errors import UsageError
from landmarks.geometry import box_scale
from landmarks.inference.evaluate import evaluate_pictures
from landmarks.inference.landmarker import Landmarker
from landmarks.metrics import SIZE_BINS, YAW_BINS, bin_of, box_normaliser, breakdown, nme


def test_bins_take_each_value_to_the_bin_of_its_lower_edge_and_nan_to_none():
    assert bin_of([0, 29.9, 30, 59, 60, 95, np.nan], YAW_BINS).tolist() == [0, 0, 1, 1, 2, 2, -1]
    assert bin_of([10, 24, 47.9, 48, 96, 300], SIZE_BINS).tolist() == [0, 1, 1, 2, 3, 3]


def test_breakdown_counts_found_and_errors_per_bin_and_leaves_out_empty_bins():
    index = np.array([0, 0, 0, 2, -1])
    found = np.array([True, True, False, False, True])
    found_io = np.array([0.02, 0.04, np.nan, np.nan, 0.01])
    crop_io = np.array([0.02, 0.04, 0.15, 0.30, 0.01])
    table = breakdown(index, YAW_BINS, found, found_io, crop_io)
    assert list(table) == ["frontal <30°", "60°+"]
    front, turned = table["frontal <30°"], table["60°+"]
    assert front["faces"] == 3 and front["found"] == pytest.approx(2 / 3)
    assert front["nme_io_found"] == pytest.approx(3.0) and front["crop_nme_io"] == pytest.approx(7.0)
    assert front["crop_fr_io"] == pytest.approx(100 / 3)
    assert turned["faces"] == 1 and turned["found"] == 0 and np.isnan(turned["nme_io_found"])


def test_balanced_weights_give_each_group_the_same_total_and_leave_ungrouped_samples_at_one():
    weights = balanced_weights([0, 0, 0, 1, -1], power=1.0)
    assert weights[:3].sum() == pytest.approx(weights[3])
    assert weights[4] == 1.0 and weights[:4].sum() == pytest.approx(4.0)
    half = balanced_weights([0, 0, 0, 1], power=0.5)
    assert half[3] / half[0] == pytest.approx(np.sqrt(3))
    assert balanced_weights([0, 0, 1], power=0.0).tolist() == [1.0, 1.0, 1.0]


def turned(face: np.ndarray, degrees: float) -> np.ndarray:
    """Course points of a frontal face with the nose and mouth moved sideways, as a turned head shows them."""
    out = face.copy()
    width = np.ptp(face[:, 0])
    shift = np.sin(np.radians(degrees)) * width * 0.35
    out[10:16, 0] += shift
    out[18:, 0] += shift
    return out


def test_face_yaws_grow_as_the_nose_moves_off_the_eyes_and_are_the_same_either_way(sample_lists):
    scheme = load_scheme("course21")
    face = np.array(next(e.points for e in read_list(sample_lists / "train.txt").entries if e.is_face))
    mirrored = face[list(scheme.flip_permutation)] * [-1, 1] + [200, 0]  # the face's mirror image
    base, mirror = face_yaws(np.stack([face, mirrored]), scheme, (200, 200))
    assert base == pytest.approx(mirror, abs=1.0)
    yaws = face_yaws(np.stack([turned(face, d) for d in (0, 20, 45)]), scheme, (200, 200))
    assert yaws[0] < yaws[1] < yaws[2]
    unlabelled = face.copy()
    unlabelled[3] = np.nan
    assert np.isnan(face_yaws(unlabelled[None], scheme, (200, 200))[0])


def test_weighted_draws_take_samples_in_proportion_to_their_weights(sample_lists, tmp_path):
    entries = read_list(sample_lists / "train.txt").entries
    dataset = FaceLandmarksDataset(entries, size=32, cache_dir=tmp_path)
    n = len(dataset)
    assert sorted(torch.cat([b["index"] for b in dataset.batches(4, shuffle=True)]).tolist()) == list(range(n))
    weights = np.zeros(n)
    weights[[0, 1]] = [1.0, 3.0]
    dataset.set_draw_weights(weights)
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([b["index"] for _ in range(200) for b in dataset.batches(4, shuffle=True, generator=generator)])
    assert set(drawn.tolist()) == {0, 1} and len(drawn) == 200 * n
    assert (drawn == 1).float().mean().item() == pytest.approx(0.75, abs=0.03)
    with pytest.raises(UsageError, match="draw weights"):
        dataset.set_draw_weights(np.zeros(n))


def test_the_whole_picture_test_breaks_found_down_by_yaw_and_face_size(sample_lists):
    pictures, _ = read_picture_list(sample_lists / "test_pictures.txt")
    # The finder proposes the annotated boxes (none in the first picture) and one look is taken:
    # each face's points are then those of its crop from the annotated box, so found must follow
    # the crop errors bin by bin, and the first picture's faces are missed as not proposed.
    boxes = iter([np.zeros((0, 4))] + [p.boxes for p in pictures[1:]])

    def finder(image):
        chosen = next(boxes)
        return chosen, np.ones(len(chosen))

    marker = Landmarker("stage2", detector=finder, refine=False)
    metrics, _ = evaluate_pictures(marker, pictures, operating_threshold=0.5)
    truth = np.concatenate([p.points for p in pictures])
    sizes = np.concatenate([box_scale(p.boxes) for p in pictures])
    assert sum(row["faces"] for row in metrics["by_size"].values()) == metrics["faces"] == len(truth)
    for i, (_, name) in enumerate(SIZE_BINS):
        assert metrics["by_size"].get(name, {"faces": 0})["faces"] == int((bin_of(sizes, SIZE_BINS) == i).sum())
    crops = np.stack([f.points for p in pictures for f in marker.landmarks(load(p.image), p.boxes, verify=False)])
    unseen = np.arange(len(truth)) < len(pictures[0].boxes)
    crop_found = (nme(crops, truth, box_normaliser(truth)) < 0.10) & ~unseen
    yaws = np.concatenate([face_yaws(p.points, marker.scheme, size_of(p.image)) for p in pictures])
    for i, (_, name) in enumerate(YAW_BINS):
        part = bin_of(yaws, YAW_BINS) == i
        if part.any():
            assert metrics["by_yaw"][name]["found"] == pytest.approx(crop_found[part].mean())
    assert len(metrics["missed"]) == int((~crop_found).sum()) and unseen.any()
    causes = metrics["missed_by_cause"]
    assert causes["not proposed"] == int(unseen.sum()) and causes["refused"] == 0  # stage2 has no face branch
    assert [m["face"] for m in metrics["missed"] if m["cause"] == "not proposed"] == list(range(int(unseen.sum())))


def load(path):
    from landmarks.data.images import load_image
    return load_image(path, 3)


def size_of(path):
    image = load(path)
    return image.shape[1], image.shape[0]


def test_a_missed_face_is_put_down_to_the_finder_the_face_branch_or_its_points():
    from landmarks.inference.evaluate import why_missed
    truth_box = np.array([100.0, 100, 200, 200])
    truth = np.stack(np.meshgrid(np.linspace(110, 190, 7), np.linspace(110, 190, 3)), -1).reshape(21, 2)
    far = np.array([[400.0, 400, 480, 480]])
    assert why_missed(truth_box, truth, far, []) == ("not proposed", 0.0)
    cause, overlap = why_missed(truth_box, truth, np.array([[105.0, 100, 205, 200]]), [])
    assert cause == "refused" and overlap == pytest.approx(95 / 105)
    cause, error = why_missed(truth_box, truth, far, [(truth_box + 10, truth + 30)])
    assert cause == "points off" and error == pytest.approx(np.hypot(30, 30) / 80)


def test_list_building_counts_each_parts_faces_by_head_yaw(tmp_path, sample_dir):
    summary = build_lists(sample_dir, tmp_path / "lists", test_ratio=0.25, seed=0)
    spread = summary["yaw_counts"]
    assert set(spread) == {"train", "test"} and list(spread["train"]) == [name for _, name in YAW_BINS]
    for part in ("train", "test"):
        faces = sum(e.is_face for e in read_list(tmp_path / "lists" / f"{part}.txt").entries)
        assert sum(spread[part].values()) == faces > 0


def test_a_detectors_pictures_are_drawn_by_their_rarest_face(sample_lists):
    from landmarks.data.pictures import PictureDataset
    from landmarks.train.run import picture_pose_weights, pose_weights
    pictures, _ = read_picture_list(sample_lists / "train_pictures.txt")
    dataset = PictureDataset(pictures, size=64)
    scheme = load_scheme("course21")
    weights = picture_pose_weights(dataset, scheme, 1.0)
    faces = [(i, p) for i, picture in enumerate(dataset.pictures) for p in picture.points]
    sizes = np.array([size_of(dataset.pictures[i].image) for i, _ in faces])
    per_face = pose_weights(face_yaws(np.stack([p for _, p in faces]), scheme, sizes), 1.0)
    for i in range(len(dataset)):
        assert weights[i] == pytest.approx(max(w for (j, _), w in zip(faces, per_face) if j == i))
    chosen = np.zeros(len(dataset))
    chosen[2] = 1.0
    dataset.set_draw_weights(chosen)
    drawn = torch.cat([b["index"] for b in dataset.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert set(drawn.tolist()) == {2} and len(drawn) == len(dataset)


def test_eye_distance_weights_follow_the_inverse_eye_distance_capped_and_leave_unknown_faces_at_one():
    from landmarks.net.losses import eye_distance_weights
    points = torch.zeros(4, 3, 2)
    points[:, 1, 0] = torch.tensor([40.0, 20.0, 0.5, float("nan")])  # eye distances; a profile; a non-face
    weights = eye_distance_weights(points, (0, 1), power=1.0)
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(2.0)  # half the eye distance, twice the weight
    assert weights[2] / weights[0] == pytest.approx(4.0 / ((40 + 20 + 0.5) / 3 / 40))  # the cap
    assert weights[3] / weights[0] == pytest.approx(1.0 / ((40 + 20 + 0.5) / 3 / 40))  # weighs 1 before scaling
    flat = eye_distance_weights(points, (0, 1), power=0.0)
    assert torch.allclose(flat, torch.ones(4))


def test_eye_weight_makes_a_turned_face_count_more_in_the_training_loss():
    from landmarks.codecs import build_codec
    from landmarks.config import Config
    from landmarks.spec import ModelSpec
    from landmarks.train.tasks import LandmarkTask
    scheme = load_scheme("course21")
    left, right = scheme.interocular
    target = torch.full((2, scheme.num_points, 2), 56.0)
    target[:, left, 0], target[0, right, 0], target[1, right, 0] = 20.0, 92.0, 38.0  # frontal; turned

    def loss_with_error_on(face: int, eye_weight: float) -> float:
        spec = ModelSpec(Config(loss="l1", eye_weight=eye_weight, input_size=112), scheme)
        task = LandmarkTask(spec, build_codec("regression", scheme.num_points))
        predicted = target.clone() / 112
        predicted[face] += 4 / 112  # 4 px off on every point of one face
        batch = {"image": torch.zeros(2, 1, 8, 8), "points": target, "is_face": torch.ones(2, dtype=torch.bool)}
        return float(task.step(lambda image: {"points": predicted.reshape(2, -1)}, batch, "cpu").loss)

    assert loss_with_error_on(0, 0.0) == pytest.approx(loss_with_error_on(1, 0.0))
    assert loss_with_error_on(1, 1.0) == pytest.approx(4 * loss_with_error_on(0, 1.0))  # eyes 72 px apart against 18


def test_hard_face_weights_follow_the_faces_own_losses_capped_and_leave_non_faces_at_one():
    from landmarks.net.losses import hard_face_weights
    per_face = torch.tensor([1.0, 2.0, 1, 1, 1, 1, 1, 30.0, 5.0], requires_grad=True)  # the faces' mean 4.75
    is_face = torch.tensor([True] * 8 + [False])
    weights = hard_face_weights(per_face, is_face, power=1.0)
    assert not weights.requires_grad and weights.mean().item() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(2.0)  # twice the loss, twice the weight
    assert weights[7] / weights[0] == pytest.approx(4.0 * 4.75)  # 30 / 4.75 capped at 4
    assert weights[8] / weights[0] == pytest.approx(4.75)  # a non-face weighs 1 before scaling
    assert torch.allclose(hard_face_weights(per_face, is_face, power=0.0), torch.ones(9))


def test_hard_weight_makes_the_face_the_net_gets_most_wrong_count_more_in_the_training_loss():
    from landmarks.codecs import build_codec
    from landmarks.config import Config
    from landmarks.spec import ModelSpec
    from landmarks.train.tasks import LandmarkTask
    scheme = load_scheme("course21")
    target = torch.full((2, scheme.num_points, 2), 56.0)
    batch = {"image": torch.zeros(2, 1, 8, 8), "points": target, "is_face": torch.ones(2, dtype=torch.bool)}

    def loss(hard_weight: float) -> float:
        spec = ModelSpec(Config(loss="l1", hard_weight=hard_weight, input_size=112), scheme)
        task = LandmarkTask(spec, build_codec("regression", scheme.num_points))
        predicted = target.clone() / 112
        predicted[0] += 1 / 112  # 1 px off on every point of one face, 3 px off on the other
        predicted[1] += 3 / 112
        return float(task.step(lambda image: {"points": predicted.reshape(2, -1)}, batch, "cpu").loss)

    # Face losses 1 and 3: their mean 2 plain; weighed 0.5 and 1.5, (0.5 + 4.5) / 2 = 2.5.
    assert loss(0.0) == pytest.approx(2.0) and loss(1.0) == pytest.approx(2.5)
