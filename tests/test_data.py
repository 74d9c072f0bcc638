import cv2
import numpy as np
import pytest
import torch

from landmarks.data import (FaceLandmarksDataset, build_lists, normalize_images, sample_negatives, split_by_image,
                            verification_picture)
from landmarks.geometry import expand_box, iou
from landmarks.data.images import load_image
from landmarks.commands.lists import framing
from landmarks.data.labels import read_list
from landmarks.errors import UsageError

from conftest import write_image


def test_split_is_by_image_and_fixed_by_seed():
    items = [(f"img{i % 7}", i) for i in range(30)]
    train, test = split_by_image(items, lambda item: item[0], 0.3, seed=3)
    assert {i[0] for i in train}.isdisjoint({i[0] for i in test})
    assert len({i[0] for i in test}) == 2 and len(train) + len(test) == 30
    assert split_by_image(items, lambda item: item[0], 0.3, seed=3) == (train, test)
    assert split_by_image(items, lambda item: item[0], 0.3, seed=4) != (train, test)
    assert split_by_image(items, lambda item: item[0], 1.0, seed=0)[0] == []
    with pytest.raises(UsageError):
        split_by_image(items, lambda item: item[0], 1.5, seed=0)


def test_build_lists_from_the_sample(sample_dir, tmp_path):
    summary = build_lists(sample_dir, tmp_path, test_ratio=0.2, seed=1)
    train, test = read_list(tmp_path / "train.txt"), read_list(tmp_path / "test.txt")
    assert summary["faces_kept"] == len(train.entries) + len(test.entries) == 94
    assert {e.image for e in train.entries}.isdisjoint({e.image for e in test.entries})
    # Boxes are expanded, clamped and whole; points are relative to them.
    for entry in train.entries:
        w, h = load_image(entry.image, 1).shape[1::-1]
        assert 0 <= entry.box[0] < entry.box[2] <= w and 0 <= entry.box[1] < entry.box[3] <= h
        assert np.all(entry.box == np.round(entry.box))
    first = train.entries[0]
    label = (sample_dir / first.image.parent.name / "label.txt").read_text().splitlines()
    raw = next(line.split() for line in label if line.split()[0] == first.image.name)
    absolute = np.maximum(np.array(raw[5:], float).reshape(21, 2), 0)
    matches = [e for e in train.entries if e.image == first.image]
    assert any(np.allclose(e.points + e.box[:2], absolute, atol=1e-3) for e in matches)


def test_dataset_rescales_points_to_the_112_crop(tmp_path):
    image = write_image(tmp_path / "a.png", width=200, height=100)
    points = np.tile([[10.0, 20.0]], (21, 1))
    points[1] = [60.0, 70.0]
    from landmarks.data.labels import ListEntry
    entry = ListEntry(image, np.array([40.0, 10.0, 120.0, 90.0]), points)  # 80x80 box
    dataset = FaceLandmarksDataset([entry], size=112, normalize=False)
    sample = dataset[0]
    np.testing.assert_allclose(sample["points"][0], [10 * 112 / 80, 20 * 112 / 80], atol=1e-4)
    np.testing.assert_allclose(sample["points"][1], [60 * 1.4, 70 * 1.4], atol=1e-4)
    assert sample["image"].shape == (1, 112, 112) and 0 <= sample["image"].min() and sample["image"].max() <= 1
    rgb = FaceLandmarksDataset([entry], size=64, channels=3, normalize=True)[0]["image"]
    assert rgb.shape == (3, 64, 64) and abs(float(rgb.mean())) < 1e-4 and abs(float(rgb.std()) - 1) < 1e-2


def test_augmented_batches_keep_shapes_and_vary_with_the_seed(sample_lists):
    from landmarks.data.augment import AugmentSettings
    entries = read_list(sample_lists / "train.txt").entries
    dataset = FaceLandmarksDataset(entries, augment=AugmentSettings(flip=0.5, rotation=10, shift=0.05, scale=0.1),
                                   flip_permutation=read_list(sample_lists / "train.txt").info.scheme.flip_permutation)
    one = next(dataset.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    again = next(dataset.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    other = next(dataset.batches(8, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert one["image"].shape == (8, 1, 112, 112) and one["points"].shape == (8, 21, 2)
    assert torch.equal(one["image"], again["image"]) and not torch.equal(one["image"], other["image"])


def test_missing_image_in_a_list_is_named_and_skipped(sample_lists, tmp_path):
    lines = (sample_lists / "test.txt").read_text().splitlines()
    broken = tmp_path / "list.txt"
    entry = read_list(sample_lists / "test.txt").entries[0]
    broken.write_text(f"{entry.image}" + lines[0][len(lines[0].split()[0]):] + "\n"
                      + "gone.jpg" + lines[0][len(lines[0].split()[0]):] + "\n")
    dataset = FaceLandmarksDataset(read_list(broken).entries)
    assert len(dataset) == 1 and dataset.report.skipped == 1
    assert "gone.jpg: image not found" in dataset.report.problems[0]
    assert f"{broken}:2" in dataset.report.problems[0]


def test_negatives_stay_clear_of_every_face_and_partial_ones_overlap_one():
    faces = np.array([[10.0, 10.0, 60.0, 60.0], [100.0, 20.0, 150.0, 70.0]])
    found = sample_negatives(faces, 300, 200, count=6, max_iou=0.3, rng=np.random.default_rng(0),
                             kinds=("random", "partial"))
    kinds = [kind for _, kind in found]
    assert len(found) >= 10 and kinds.count("random") >= 5 and kinds.count("partial") >= 5
    assert all(iou(box, faces).max() < 0.3 for box, _ in found)
    assert all(iou(box, faces).max() >= 0.1 for box, kind in found if kind == "partial")
    assert all(0 <= box[0] < box[2] <= 300 and 0 <= box[1] < box[3] <= 200 for box, _ in found)


def test_detector_mistakes_are_boxes_off_every_face(tmp_path):
    import cv2

    from landmarks.data.lists import detector_mistakes
    image = tmp_path / "p.png"
    cv2.imwrite(str(image), np.zeros((200, 300, 3), np.uint8))
    faces = np.array([[100.0, 50.0, 150.0, 100.0]])
    boxes = np.array([[90.0, 40.0, 200.0, 150.0],    # holds the face's centre, IoU 0.21
                      [120.0, 70.0, 260.0, 190.0],   # holds the face's centre, its own centre off the face
                      [130.0, 80.0, 170.0, 120.0],   # centred on the face's edge, IoU 0.11
                      [10.0, 10.0, 60.0, 60.0],      # off every face
                      [200.0, 120.0, 260.0, 180.0],  # off every face, scored higher
                      [250.0, 10.0, 252.0, 40.0]])   # too thin to be a crop
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.95])
    mistakes = detector_mistakes(lambda rgb: (boxes, scores), image, faces, 0.3, count=3)
    assert [box.tolist() for box, _ in mistakes] == [boxes[4].tolist(), boxes[3].tolist()]
    assert {kind for _, kind in mistakes} == {"detector"}
    assert len(detector_mistakes(lambda rgb: (boxes, scores), image, faces, 0.3, count=1)) == 1


def test_finder_framed_faces_pairs_each_face_with_the_second_look_box_that_overlaps_it_most(tmp_path):
    import cv2

    from landmarks.inference.landmarker import framed_faces
    image = tmp_path / "p.png"
    cv2.imwrite(str(image), np.zeros((200, 300, 3), np.uint8))
    faces = np.array([[100.0, 50.0, 150.0, 100.0], [10.0, 10.0, 30.0, 30.0], [200.0, 100.0, 260.0, 160.0]])
    looked = np.array([[98.0, 48.0, 156.0, 106.0],   # the first face, looser
                       [102.0, 52.0, 148.0, 98.0],   # the first face, closer: chosen
                       [8.0, 8.0, 40.0, 40.0],       # the small face, 1.6x: IoU 0.39, too far off
                       [180.0, 80.0, 240.0, 140.0]])  # the third face: IoU 0.29

    class Marker:
        def find(self, rgb):
            assert rgb.shape == (200, 300, 3)
            return np.zeros((len(looked), 4)), np.ones(len(looked))

        def _pixels(self, rgb):
            return rgb[:, :, :1]

        def _first_look(self, pixels, boxes, scores):
            assert pixels.shape == (200, 300, 1)
            return [], [], looked

    rgb = load_image(image, 3)
    framed = framed_faces(Marker(), rgb, faces)
    assert [(index, box.tolist()) for index, box in framed] == [(0, looked[1].tolist())]
    assert [index for index, _ in framed_faces(Marker(), rgb, faces, min_iou=0.25)] == [0, 1, 2]


def test_framed_positives_add_training_faces_cropped_where_the_pipeline_looks(sample_dir, tmp_path):
    plain = build_lists(sample_dir, tmp_path / "plain", test_ratio=0.2, seed=0, negatives=1)
    summary = build_lists(sample_dir, tmp_path / "framed", test_ratio=0.2, seed=0, negatives=1,
                          frame_faces=framing("stage3", None), framed_by="stage3")
    for name in ("test", "test_pictures", "train_pictures"):  # only the training crops change
        assert (tmp_path / "plain" / f"{name}.txt").read_text() == (tmp_path / "framed" / f"{name}.txt").read_text()
    train = read_list(tmp_path / "framed" / "train.txt").entries
    framed = [e for e in train if e.attributes.get("framing") == "finder"]
    faces = [e for e in train if e.is_face and "framing" not in e.attributes]
    assert summary["framed_faces"] == len(framed) and len(framed) >= 0.8 * len(faces)
    assert len(train) == plain["train_lines"] + len(framed)
    for entry in framed:  # the same face's points, in image pixels, from another crop
        twins = [f for f in faces if f.image == entry.image]
        same = [f for f in twins if np.allclose(f.points + f.box[:2], entry.points + entry.box[:2], atol=2e-3)]
        assert len(same) == 1 and iou(same[0].box, entry.box[None])[0] > 0.4


def test_loose_negatives_are_crops_around_a_whole_face_that_fills_too_little_of_them():
    faces = np.array([[100.0, 60.0, 150.0, 110.0], [20.0, 20.0, 60.0, 60.0]])
    found = sample_negatives(faces, 400, 300, count=8, max_iou=0.3, rng=np.random.default_rng(0), kinds=("loose",))
    assert len(found) >= 14 and {kind for _, kind in found} == {"loose"}
    for box, _ in found:
        crop = expand_box(box, 0.25)  # what the list line holds and the model sees
        assert iou(crop, faces).max() < 0.3
        assert 0 <= crop[0] and 0 <= crop[1] and crop[2] <= 400 and crop[3] <= 300
        whole = (faces[:, :2] >= crop[:2]).all(1) & (faces[:, 2:] <= crop[2:]).all(1)
        assert whole.sum() == 1
        face = faces[whole][0]
        assert 1.75 <= (crop[2] - crop[0]) / (face[2] - face[0]) <= 2.65


def test_stage3_lists_have_labelled_faces_and_non_faces(sample_dir, tmp_path):
    summary = build_lists(sample_dir, tmp_path, test_ratio=0.2, seed=0, negatives=2)
    data = read_list(tmp_path / "train.txt")
    assert data.stage == 3 and data.non_faces == summary["train_non_faces"] > data.faces
    dataset = FaceLandmarksDataset(data.entries[:40])
    assert dataset.stage == 3 and torch.all(dataset[int(torch.argmin(dataset.is_face.int()))]["points"] == 0)


def test_negative_kinds_are_chosen_on_the_command_line(sample_dir, tmp_path, capsys):
    from landmarks.data.__main__ import main
    assert main(["--data-dir", str(sample_dir), "--out-dir", str(tmp_path), "--negatives", "2",
                 "--negative-kinds", "loose", "--verify", "0"]) == 0
    entries = read_list(tmp_path / "train.txt").entries
    assert {e.attributes.get("negative") for e in entries if not e.is_face} == {"loose"}
    with pytest.raises(SystemExit):
        main(["--data-dir", str(sample_dir), "--negatives", "1", "--negative-kinds", "random,edge"])
    assert "unknown kind edge; choose from random, partial, loose" in capsys.readouterr().err


def test_verification_picture_is_written(sample_lists, tmp_path):
    import cv2
    out = verification_picture(read_list(sample_lists / "train.txt").entries, 6, tmp_path / "v.png")
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 224, 4 * 224, 3) and picture.std() > 10


def test_per_image_normalisation_gives_zero_mean_and_unit_std():
    images = torch.rand(5, 1, 20, 30) * torch.arange(1, 6).reshape(5, 1, 1, 1) * 50
    out = normalize_images(images[..., 2:18, 3:27], per_image=True)  # a strided view, as a margin crop is
    assert out.shape == (5, 1, 16, 24)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), torch.ones(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalize_images(images, per_image=False), images / 255)


def _two_face_entries(tmp_path):
    from landmarks.data.labels import ListEntry
    points = np.tile([[30.0, 40.0]], (21, 1))
    return [ListEntry(write_image(tmp_path / f"{name}.png", seed=seed), np.array([10.0, 10.0, 90.0, 90.0]), points)
            for name, seed in (("a", 1), ("b", 2))]


def test_crop_cache_is_reused_and_a_changed_list_or_image_rebuilds_it(tmp_path, monkeypatch):
    import landmarks.data.dataset
    entries = _two_face_entries(tmp_path)
    cache = tmp_path / "cache"
    first = FaceLandmarksDataset(entries, cache_dir=cache)
    cut_crops = landmarks.data.dataset.cut_crops
    calls = []
    monkeypatch.setattr(landmarks.data.dataset, "cut_crops", lambda *args, **kw: calls.append(1) or cut_crops(*args, **kw))
    again = FaceLandmarksDataset(entries, cache_dir=cache)
    assert calls == [] and torch.equal(again[1]["image"], first[1]["image"])
    entries[0].box[2] -= 4  # another box: other crops
    FaceLandmarksDataset(entries, cache_dir=cache)
    write_image(entries[1].image, width=130, seed=9)  # another picture under the same name
    changed = FaceLandmarksDataset(entries, cache_dir=cache)
    assert len(calls) == 2 and len(list(cache.glob("crops-*.npz"))) == 3
    assert not torch.equal(changed[1]["image"], first[1]["image"])


def test_crop_cache_writers_started_together_do_not_collide(tmp_path):
    import threading
    from landmarks.data.dataset import store_crops
    path = tmp_path / "cache" / "crops-x.npz"
    crops, kept = np.zeros((3, 8, 8), np.uint8), np.arange(3)
    start, failures = threading.Barrier(8), []

    def write():
        start.wait()
        try:
            store_crops(path, crops, kept)
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            failures.append(error)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with np.load(path) as stored:
        assert np.array_equal(stored["kept"], kept)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind


def test_an_unwritable_crop_cache_only_warns(tmp_path, caplog):
    entries = _two_face_entries(tmp_path)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    dataset = FaceLandmarksDataset(entries, cache_dir=blocked / "cache")
    assert len(dataset) == 2
    assert "could not write the crop cache" in caplog.text


def test_set_augment_changes_what_later_batches_get_and_refuses_a_change_of_margin(sample_lists):
    from landmarks.data.augment import AugmentSettings
    entries = read_list(sample_lists / "train.txt").entries[:8]
    plain = FaceLandmarksDataset(entries)
    erased = FaceLandmarksDataset(entries, augment=AugmentSettings(erase=1.0))

    def first_batch(dataset):
        return next(dataset.batches(8, shuffle=False, generator=torch.Generator().manual_seed(0)))["image"]

    assert not torch.equal(first_batch(erased), first_batch(plain))
    erased.set_augment(AugmentSettings(erase=1.0).light())
    assert torch.equal(first_batch(erased), first_batch(plain))
    with pytest.raises(ValueError, match="without geometry"):
        erased.set_augment(AugmentSettings(rotation=10))


def test_light_epochs_switch_the_augmentation_for_the_last_epochs_only(sample_lists, tmp_path, caplog):
    import logging

    from conftest import train_args
    from landmarks.detector import main
    with caplog.at_level(logging.INFO, logger="landmarks"):
        assert main(train_args(sample_lists, tmp_path, "light", "--epochs", "3", "--augment", "--erase", "0.5",
                               "--light-epochs", "1")) == 0
    switches = [line for line in caplog.text.splitlines() if "lighter augmentation" in line]
    assert len(switches) == 1 and "epoch 3: lighter augmentation for the last 1 epochs" in switches[0]


def test_training_validates_on_the_lists_validation_part(sample_dir, tmp_path, caplog):
    """best.pt must not be chosen on the test faces: lists built with --val-ratio validate on val.txt."""
    import logging

    from conftest import train_args
    from landmarks.detector import main
    summary = build_lists(sample_dir, tmp_path / "lists", test_ratio=0.2, val_ratio=0.2, seed=0)
    val_lines = len((tmp_path / "lists" / "val.txt").read_text().splitlines())
    test_lines = len((tmp_path / "lists" / "test.txt").read_text().splitlines())
    assert val_lines and test_lines and val_lines != test_lines, summary
    with caplog.at_level(logging.INFO, logger="landmarks"):
        assert main(train_args(tmp_path / "lists", tmp_path, "v", "--epochs", "1")) == 0
    assert f"validating on {tmp_path / 'lists' / 'val.txt'}" in caplog.text
    assert f"{tmp_path / 'lists' / 'val.txt'}: {val_lines} crops" in caplog.text
    assert "test.txt:" not in caplog.text


def test_a_warped_crop_matches_the_resized_crop_upright_and_undoes_a_turn():
    from landmarks.data.images import crop_resize, warp_crop
    from landmarks.geometry import turned_crop_matrix
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 2)
    box = np.array([120.0, 80.0, 220.0, 180.0])
    matrix = turned_crop_matrix(box, 0.0, 56, 0.25)  # a 150 px region shrunk to 56: the area pre-resize
    warped = warp_crop(image, matrix, 56, 56).astype(float)
    resized = crop_resize(image, [95, 55, 245, 205], 56, 56).astype(float)
    assert np.abs(warped - resized).mean() < 0.5
    turn = cv2.getRotationMatrix2D((170, 130), -40, 1.0)  # the picture turned 40 degrees clockwise on screen
    turned = cv2.warpAffine(image, turn, (400, 300))
    undone = warp_crop(turned, turned_crop_matrix(box, 40.0, 56, 0.25), 56, 56).astype(float)
    assert np.abs(undone - resized)[8:-8, 8:-8].mean() < 3.0
    assert np.abs(warp_crop(turned, matrix, 56, 56).astype(float) - resized)[8:-8, 8:-8].mean() > 8.0
    assert warp_crop(image, turned_crop_matrix([900, 900, 950, 950], 30.0, 32), 32, 32).max() == 0  # outside


def test_the_check_before_training_finds_a_left_right_swap_and_a_point_out_of_place(sample_lists):
    from landmarks.data.scheme import load_scheme
    from landmarks.data.verify import suspicious_points
    scheme = load_scheme("course21")
    faces = np.array([e.points for e in read_list(sample_lists / "train.txt").entries if e.is_face])
    assert suspicious_points(faces, scheme.flip_permutation) == []  # the sample as annotated
    spoilt = faces.copy()
    spoilt[3] = faces[3][list(scheme.flip_permutation)]  # left and right exchanged
    size = np.ptp(faces[7], axis=0).max()
    spoilt[7, 13] += [0.0, 0.4 * size]  # the top of the upper lip dragged onto the chin
    found = suspicious_points(spoilt, scheme.flip_permutation)
    assert found[0] == (3, None, "swap") and [(face, point) for face, point, _ in found[1:]] == [(7, 13)]
