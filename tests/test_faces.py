"""The face finder: box codec, NMS and matching, whole-picture metrics, training, predict's edge cases."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from landmarks.checkpoint import load_model
from landmarks.codecs import CentreBoxes
from landmarks.detector import main
from landmarks.errors import UsageError
from landmarks.geometry import affine_points, box_centre
from landmarks.inference.faces import HaarFinder, NetFinder
from landmarks.inference import landmarker as landmarker_module
from landmarks.inference.landmarker import Face, Landmarker, LandmarkerSettings, merge_duplicates
from landmarks.metrics import average_precision, match_boxes, match_faces, precision_recall

from conftest import run_main


def test_box_codec_round_trips_and_its_loss_is_small_at_the_target():
    codec = CentreBoxes(stride=4)
    boxes = [np.array([[10.3, 20.7, 50.1, 71.9], [100.0, 100.0, 120.0, 126.0]]), np.zeros((0, 4))]
    target = codec.encode(boxes, 40, 48)
    assert target["mask"].sum() == 2 and target["heat"].max() == 1.0 and target["heat"][1].max() == 0
    raw = {"heat": torch.logit(target["heat"].clamp(1e-4, 1 - 1e-4)), "size": target["size"],
           "offset": target["offset"]}
    (found, scores), (none, _) = codec.decode(raw, threshold=0.5)
    order = torch.argsort(found[:, 0])
    torch.testing.assert_close(found[order], torch.tensor(boxes[0], dtype=torch.float32), atol=1e-4, rtol=0)
    assert len(none) == 0 and (scores > 0.99).all()
    total, heat, size, offset = codec.loss(raw, target)
    assert float(size) == 0 and float(offset) == 0
    worse = codec.loss({**raw, "size": raw["size"] + 0.5}, target)[0]
    assert float(worse) > float(total)


def test_decoding_keeps_one_box_per_face_where_peaks_overlap():
    codec = CentreBoxes(stride=4)
    heat = torch.full((1, 1, 20, 20), -9.0)
    heat[0, 0, 5, 5], heat[0, 0, 5, 7] = 3.0, 2.0  # two peaks 2 cells apart, same big box: one face
    size = torch.full((1, 2, 20, 20), float(np.log(10.0)))
    boxes, scores = codec.decode({"heat": heat, "size": size, "offset": torch.zeros(1, 2, 20, 20)}, 0.3)[0]
    assert len(boxes) == 1 and float(scores[0]) == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def test_match_boxes_is_greedy_by_score_and_takes_each_true_box_once():
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 21, 30, 31], [50, 50, 60, 60]])
    hits = match_boxes(boxes, [0.5, 0.9, 0.8, 0.7], truth)
    assert hits.tolist() == [False, True, True, False]  # the higher-scored duplicate takes the face
    precision, recall = precision_recall([0.5, 0.9, 0.8, 0.7], hits, 2)
    np.testing.assert_allclose(recall, [0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(precision, [1.0, 1.0, 2 / 3, 0.5])
    assert average_precision([0.5, 0.9, 0.8, 0.7], hits, 2) == pytest.approx(1.0)
    assert average_precision([0.9, 0.5], [False, True], 2) == pytest.approx(0.25)


def test_match_faces_counts_a_face_found_below_ten_percent_nme_box():
    truth = np.zeros((2, 21, 2))
    truth[0] = np.random.default_rng(0).uniform(0, 100, (21, 2))
    truth[1] = truth[0] + 300
    size = np.sqrt(np.prod(truth[0].max(0) - truth[0].min(0)))
    close = truth[0] + [0.05 * size, 0]  # NME_box 5 %
    far = truth[1] + [0.2 * size, 0]  # 20 %: not found
    nmes, used = match_faces([far, close, close + 1e-3], truth)
    assert nmes[0] == pytest.approx(0.05) and np.isnan(nmes[1])
    assert used.tolist() == [False, True, False]  # the second copy finds nothing: a false face


def test_merging_duplicates_keeps_the_likelier_face():
    points = np.zeros((21, 2))
    faces = [Face(np.array([0, 0, 10, 10.0]), np.zeros(4), points, 0.6, 0.9),
             Face(np.array([1, 1, 11, 11.0]), np.zeros(4), points, 0.99, 0.9),
             Face(np.array([40, 40, 50, 50.0]), np.zeros(4), points, 0.7, 0.5),
             Face(np.array([0, 0, 10, 10.0]), np.zeros(4), None, 0.01, 0.9)]
    kept = merge_duplicates(faces)
    assert [f.face_prob for f in kept] == [0.99, 0.7, 0.01]  # the finder's order, rejected faces last


def test_merging_drops_a_look_at_part_of_a_face_already_found():
    points = np.zeros((21, 2))
    whole = Face(np.array([0, 0, 100, 100.0]), np.zeros(4), points, 0.9, 0.5)
    part = Face(np.array([10, 50, 60, 100.0]), np.zeros(4), points, 0.6, 0.4)  # IoU 0.25, all inside
    neighbour = Face(np.array([70, 0, 150, 80.0]), np.zeros(4), points, 0.8, 0.5)  # 3/8 of it covered
    assert merge_duplicates([part, whole, neighbour]) == [whole, neighbour]
    assert merge_duplicates([part, whole], covered=1.01) == [part, whole]  # overlap alone keeps both


def test_a_tiny_detector_run_lowers_its_loss_and_predicts_boxes(sample_lists, tmp_path, capsys):
    from conftest import REPO
    assert main(["--phase", "train", "--config", str(REPO / "configs" / "faces.toml"), "--list-dir", str(sample_lists),
                 "--runs-dir", str(tmp_path / "runs"), "--run-name", "faces", "--epochs", "6", "--batch-size", "8",
                 "--input-size", "192", "--lr", "0.005", "--quiet", "--device", "cpu"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "runs" / "faces" / "history.csv")))
    assert float(rows[-1]["train_loss"]) < 0.7 * float(rows[0]["train_loss"])
    assert {"val_ap", "val_recall", "val_false_per_picture"} <= set(rows[0])
    loaded = load_model(tmp_path / "runs" / "faces" / "last.pt", expect_task="faces")
    boxes, scores = NetFinder(loaded, threshold=0.0)(np.zeros((90, 120, 3), np.uint8))
    assert boxes.shape[1] == 4 and len(boxes) == len(scores) and len(boxes) <= 200  # the codec's top_k
    # A detector where a landmark model is expected (and the reverse) is refused, saying what it is.
    code, err = run_main(["--phase", "test", "--model", str(tmp_path / "runs" / "faces" / "last.pt"),
                          "--test-list", str(sample_lists / "test.txt")], capsys)
    assert code == 2 and "is a face detector, but a landmark model was expected" in err
    code, err = run_main(["--phase", "predict", "--image", str(sample_lists / "verify.png"), "--detector", "stage1"],
                         capsys)
    assert code == 2 and "is a landmark model, but a face detector was expected" in err


@pytest.mark.parametrize("make", [
    lambda: np.full((60, 80), 128, np.uint8),  # grey
    lambda: np.dstack([np.full((60, 80, 3), 90, np.uint8), np.full((60, 80), 255, np.uint8)]),  # 4 channels
    lambda: np.zeros((1, 1, 3), np.uint8),  # one pixel
    lambda: np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8),  # huge
])
def test_predict_takes_odd_pictures_without_failing(make, tmp_path, capsys):
    path = tmp_path / "odd.png"
    cv2.imwrite(str(path), make())
    code = main(["--phase", "predict", "--image", str(path), "--json", "--out", str(tmp_path / "o.png")])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["image"] == str(path)
    assert result["faces"] == []  # flat, one-pixel and noise pictures hold no face


def test_the_detector_size_changes_the_pictures_it_sees_not_where_its_boxes_land(sample_dir, capsys):
    from landmarks.data.images import load_image
    from landmarks.geometry import iou
    image = load_image(sample_dir / "I" / "000421.jpg", 3)
    # One look at each size (a sure face under 24 px at 320 would send 320 to a second look at 640).
    found = {size: Landmarker("stage3", detector_size=size, detector_zoom_below=0).find(image)
             for size in (None, 320, 640)}
    assert Landmarker("stage3", detector_size=320).finder.size == 320
    for size in (320, 640):  # boxes in picture pixels at every size: the sure faces land where they did
        boxes, scores = found[size]
        sure = boxes[scores >= 0.5]
        assert len(sure) >= 2 and all(iou(box, found[None][0]).max() > 0.6 for box in sure)
    assert len(found[640][0]) > len(found[320][0])  # a larger picture shows the net smaller faces
    code, err = run_main(["--phase", "predict", "--image", str(sample_dir / "I" / "000421.jpg"),
                          "--detector", "haar", "--detector-size", "640"], capsys)
    assert code == 2 and "--detector-size is for a trained face detector" in err


def test_a_second_look_is_wanted_only_for_a_small_face_the_detector_is_sure_of():
    from landmarks.inference.faces import needs_zoom
    boxes = np.array([[0, 0, 100, 100], [0, 0, 20, 20]], float)
    assert needs_zoom(boxes, np.array([0.9, 0.5]), sure=0.2, below=24)
    assert not needs_zoom(boxes, np.array([0.9, 0.1]), sure=0.2, below=24)  # the small one is unsure
    assert not needs_zoom(boxes, np.array([0.9, 0.5]), sure=0.2, below=0)  # zoom off
    assert not needs_zoom(boxes[:1], np.array([0.9]), sure=0.2, below=24)
    assert not needs_zoom(np.zeros((0, 4)), np.zeros(0), sure=0.2, below=24)


def test_two_looks_merge_to_the_better_scoring_box_of_each_face():
    from landmarks.inference.faces import merge_looks
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [1, 0, 11, 10], [100, 0, 110, 10]], float)
    kept, scores = merge_looks(boxes, np.array([0.3, 0.8, 0.6, 0.1]))
    np.testing.assert_array_equal(kept, boxes[[1, 2, 3]])
    np.testing.assert_array_equal(scores, [0.8, 0.6, 0.1])


def test_the_second_look_finds_a_crowd_of_small_faces_and_leaves_other_pictures_alone(sample_dir):
    from landmarks.data.formats import parse_label_line
    from landmarks.data.images import load_image
    from landmarks.inference.faces import make_finder
    image = load_image(sample_dir / "I" / "000421.jpg", 3)
    truth = np.array([parse_label_line(line)[1] for line in (sample_dir / "I" / "label.txt").open()
                      if line.startswith("000421.jpg")])
    (h, w), n = image.shape[:2], 3
    sh, sw = h // n, w // n  # the picture shrunk to a third, nine times over: 27 faces of 11-18 px
    crowd = np.tile(cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA), (n, n, 1))
    crowd_truth = np.concatenate([truth * [sw / w, sh / h, sw / w, sh / h] + [c * sw, r * sh, c * sw, r * sh]
                                  for r in range(n) for c in range(n)])
    one_look, two_looks = make_finder("faces", zoom_below=0, zoom_out=0), make_finder("faces", zoom_out=0)
    found = {}
    for name, finder in (("one", one_look), ("two", two_looks)):
        boxes, scores = finder(crowd)
        sure = scores >= finder.default_threshold
        found[name] = int(match_boxes(boxes[sure], scores[sure], crowd_truth).sum())
    assert found["two"] >= max(2 * found["one"], 0.6 * len(crowd_truth)), found
    for got, want in zip(two_looks(image), one_look(image)):  # faces of 48 px and more: one look
        np.testing.assert_array_equal(got, want)
    with pytest.raises(UsageError, match="--detector-zoom-below"):
        make_finder("haar", zoom_below=10)


def test_a_picture_with_no_sure_face_is_looked_at_again_at_half_the_size():
    from landmarks.inference.faces import make_finder
    unsure = (np.array([[10.0, 10, 50, 50]]), np.array([0.3]))
    sure = (np.array([[100.0, 100, 300, 300]]), np.array([0.9]))

    def looking(finder, answers):
        sizes = []

        def look(rgb, size):
            sizes.append(size)
            boxes, scores = answers[len(sizes) - 1]
            return boxes, scores, 1.0
        finder.look = look
        return sizes

    finder = make_finder("faces")
    picture = np.zeros((400, 300, 3), np.uint8)
    sizes = looking(finder, [unsure, sure])
    boxes, scores = finder(picture)
    assert sizes == [448, 224]  # the large face is found by the second look, and both looks' faces kept
    np.testing.assert_array_equal(scores, [0.9, 0.3])
    np.testing.assert_array_equal(boxes, np.concatenate([sure[0], unsure[0]]))
    sizes = looking(finder, [sure])
    assert finder(picture)[1].tolist() == [0.9] and sizes == [448]  # a sure face: one look
    finder = make_finder("faces", zoom_out=0)
    sizes = looking(finder, [unsure])
    assert finder(picture)[1].tolist() == [0.3] and sizes == [448]  # off
    with pytest.raises(UsageError, match="--detector-zoom-out"):
        make_finder("faces", zoom_out=1.0)
    with pytest.raises(UsageError, match="--detector-zoom-out"):
        make_finder("haar", zoom_out=0.5)
    # Where asked, a sure close-up (here a side of 200 in a picture whose shorter side is 300) takes it too.
    close_up = make_finder("faces", zoom_out_close_up=0.6)
    sizes = looking(close_up, [sure, unsure])
    assert close_up(picture)[1].tolist() == [0.9, 0.3] and sizes == [448, 224]
    farther = make_finder("faces", zoom_out_close_up=0.7)
    sizes = looking(farther, [sure])
    assert farther(picture)[1].tolist() == [0.9] and sizes == [448]
    with pytest.raises(UsageError, match="--detector-zoom-out-close-up"):
        make_finder("faces", zoom_out_close_up=-0.1)
    with pytest.raises(UsageError, match="--detector-zoom-out-close-up"):
        make_finder("haar", zoom_out_close_up=0.4)


def test_a_box_is_a_close_ups_from_a_share_of_the_pictures_shorter_side():
    from landmarks.inference.faces import is_close_up
    boxes = np.array([[0.0, 0, 100, 40], [0, 0, 99, 99]])
    assert is_close_up(boxes, (400, 300, 3), 1 / 3).tolist() == [True, False]  # the longer side, against 300
    assert is_close_up(np.zeros((0, 4)), (400, 300)).shape == (0,)


def test_the_haar_cascade_gives_its_faces_in_one_order_whatever_the_thread_count(sample_dir):
    from landmarks.data.images import load_image
    image, finder, threads = load_image(sample_dir / "I" / "000421.jpg", 3), HaarFinder(), cv2.getNumThreads()
    try:
        runs = []
        for count in (1, 8, 8, 16):  # OpenCV's threads hand their boxes back in any order
            cv2.setNumThreads(count)
            runs.append(finder.raw(image))
    finally:
        cv2.setNumThreads(threads)
    assert len(runs[0]) >= 2 and all(np.array_equal(run, runs[0]) for run in runs)


def test_the_api_takes_arrays_and_paths_alike(sample_dir):
    marker = Landmarker("stage2", detector="haar")
    image = sample_dir / "I" / "000421.jpg"
    from landmarks.data.images import load_image
    by_path, by_array = marker.detect(image), marker.detect(load_image(image, 3))
    assert len(by_path) == len(by_array) >= 2
    for a, b in zip(by_path, by_array):
        np.testing.assert_allclose(a.points, b.points, atol=1e-3)  # px; threads may sum in another order
    gray = marker.detect(load_image(image, 1)[:, :, 0])  # a 2-D gray array works too
    assert len(gray) >= 1 and all(f.points.shape == (21, 2) for f in gray)
    assert set(marker.timings) == {"detector_ms", "landmarks_ms"}


def test_the_api_gives_the_nets_points_on_the_crop_it_reports(sample_dir):
    from landmarks.checkpoint import resolve_model
    from landmarks.data.images import load_image
    from landmarks.inference.landmarker import as_image
    loaded = load_model(resolve_model("stage3"))
    marker = Landmarker(loaded, detector=None, test_flip=False)
    rgb = as_image(load_image(sample_dir / "I" / "000421.jpg", 3))
    box = np.array([[60.0, 40.0, 200.0, 190.0]])
    face = marker.landmarks(rgb, box, verify=False)[0]
    crop = marker._crops(marker._pixels(rgb), face.crop_box[None])
    with torch.no_grad():
        shares, prob = loaded.spec.inference_model(loaded.net, False)(crop)
    np.testing.assert_allclose(face.points, face.crop_box[:2] + shares[0].numpy() * (face.crop_box[2:] - face.crop_box[:2]),
                               atol=1e-2)
    assert abs(face.face_prob - float(prob[0])) < 1e-4


def test_pictures_are_fitted_to_the_detector_padded_at_right_and_bottom_with_the_mean_colour():
    from landmarks.data.pictures import PADDING_COLOUR, fit_picture
    image = np.random.default_rng(0).integers(0, 256, (300, 350, 3), dtype=np.uint8)
    canvas, scale = fit_picture(image, 448)
    assert canvas.shape == (384, 448, 3) and canvas.dtype == np.uint8 and scale == 448 / 350
    np.testing.assert_array_equal(canvas, cv2.resize(image, (448, 384), interpolation=cv2.INTER_LINEAR))
    tall, _ = fit_picture(image[:, :40], 448)  # 40 x 300 -> 60 x 448, padded to 64 wide
    assert tall.shape == (448, 64, 3)
    assert (tall[:, 60:] == np.array(PADDING_COLOUR, np.uint8)).all() and not (tall[:, :60] == PADDING_COLOUR).all()


def test_pictures_are_normalised_per_channel_channels_first_for_every_byte_value():
    from landmarks.data.pictures import PICTURE_MEAN, PICTURE_STD, normalise_pictures
    batch = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    out = normalise_pictures(batch)
    assert out.shape == (2, 3, 5, 7) and out.dtype == torch.float32
    expected = (torch.from_numpy(batch).float() / 255.0 - torch.tensor(PICTURE_MEAN)) / torch.tensor(PICTURE_STD)
    torch.testing.assert_close(out, expected.permute(0, 3, 1, 2), rtol=0, atol=1e-6)
    every = normalise_pictures(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, 3))
    assert torch.allclose(every[0, :, 0, 0], -torch.tensor(PICTURE_MEAN) / torch.tensor(PICTURE_STD))
    assert torch.allclose(every[0, :, 15, 15], (1 - torch.tensor(PICTURE_MEAN)) / torch.tensor(PICTURE_STD))


def test_turned_training_crops_keep_each_box_on_its_face_at_its_size(tmp_path):
    from landmarks.data.labels import Picture
    from landmarks.data.pictures import PictureAugment, PictureDataset
    image = np.zeros((200, 300, 3), np.uint8)
    image[40:80, 200:260] = 255  # a 60 x 40 "face" off the centre
    cv2.imwrite(str(tmp_path / "p.png"), image)
    picture = Picture(tmp_path / "p.png", np.array([[200.0, 40, 260, 80]]), np.zeros((1, 21, 2)))
    still = dict(zoom=(1, 1), flip=0, brightness=0, contrast=0, saturation=0, gray=0)
    upright = PictureDataset([picture], size=128, augment=PictureAugment(**still), workers=1)
    turned = PictureDataset([picture], size=128, augment=PictureAugment(**still, rotation=60, rotation_share=1.0),
                            workers=1)
    rng = np.random.default_rng(0)
    _, plain_boxes, _ = upright.augmented(0, np.random.default_rng(0))
    across = []  # the picture fills the crop's width, so only a turn moves the face sideways
    for _ in range(10):
        crop, boxes, scale = turned.augmented(0, rng)
        assert boxes.shape == (1, 4)
        bright = np.argwhere(crop.mean(2) > 200)[:, ::-1]  # x, y of the face's pixels
        np.testing.assert_allclose(bright.mean(0), box_centre(boxes[0]), atol=1.0)
        np.testing.assert_allclose(boxes[0, 2:] - boxes[0, :2], plain_boxes[0, 2:] - plain_boxes[0, :2])
        across.append(box_centre(boxes[0])[0])
    assert np.ptp(across) > 10


def test_a_detector_run_refuses_landmark_crop_augmentation_by_name(sample_lists, tmp_path, capsys):
    from conftest import REPO, train_args
    config = ["--config", str(REPO / "configs" / "faces.toml"), "--epochs", "1", "--input-size", "64"]
    code, err = run_main(train_args(sample_lists, tmp_path, "d", *config, "--flip", "0.5", "--shift", "0.1"), capsys)
    assert code != 0 and "--flip, --shift: landmark-crop augmentation" in err and "--rotation only" in err
    code, err = run_main(train_args(sample_lists, tmp_path, "d", *config, "--edge-most", "0.4"), capsys)
    assert code != 0 and "--edge-most: landmark-crop augmentation" in err
    code, err = run_main(train_args(sample_lists, tmp_path, "d", *config, "--light-epochs", "2"), capsys)
    assert code != 0 and "--light-epochs: landmark-crop augmentation" in err
    assert not (tmp_path / "runs" / "d").exists()
    code, err = run_main(train_args(sample_lists, tmp_path, "d", *config, "--augment"), capsys)
    assert code != 0 and "--flip" in err and "--rotation," not in err


def test_a_landmark_run_refuses_the_detectors_picture_zoom(sample_lists, tmp_path, capsys):
    from conftest import train_args
    code, err = run_main(train_args(sample_lists, tmp_path, "l", "--epochs", "1", "--picture-zoom", "3"), capsys)
    assert code != 0 and "--picture-zoom: a face detector's training pictures" in err and "--scale" in err
    assert not (tmp_path / "runs" / "l").exists()


def test_a_detector_run_reads_the_picture_lists_it_is_given(sample_dir, tmp_path):
    """A folder with picture lists only (as packed for another machine) is not rebuilt from --data-dir."""
    from landmarks.data import build_lists
    build_lists(sample_dir, tmp_path / "full", test_ratio=0.3, seed=0)
    only = tmp_path / "pictures"
    only.mkdir()
    lines = (tmp_path / "full" / "train_pictures.txt").read_text().splitlines()[:5]
    (only / "train_pictures.txt").write_text("".join(f"../full/{line}\n" for line in lines))
    from conftest import REPO
    code = main(["--phase", "train", "--config", str(REPO / "configs" / "faces.toml"), "--list-dir", str(only),
                 "--runs-dir", str(tmp_path / "runs"), "--run-name", "d", "--epochs", "1", "--input-size", "128",
                 "--quiet", "--device", "cpu"])
    assert code == 0 and not (only / "train.txt").exists()
    assert len((only / "train_pictures.txt").read_text().splitlines()) == 5  # not overwritten


def test_mosaics_shrink_four_pictures_into_quarters_and_move_their_faces_along(sample_lists, tmp_path):
    import runpy

    from conftest import REPO
    from landmarks.data.labels import Picture, read_picture_list
    make_mosaics = runpy.run_path(str(REPO / "scripts" / "tools" / "make_mosaics.py"))
    pictures, _ = read_picture_list(sample_lists / "train_pictures.txt")
    assert make_mosaics["main"](["--pictures", str(sample_lists / "train_pictures.txt"),
                                 "--out-dir", str(tmp_path / "m")]) == 0
    mosaics, report = read_picture_list(tmp_path / "m" / "mosaics.txt")
    assert len(mosaics) == len(pictures) // 4 and not report.problems
    images = [np.full((100, 200, 3), 255, np.uint8), np.zeros((300, 100, 3), np.uint8)]
    faces = [Picture(pictures[0].image, np.array([[20.0, 10, 60, 50]]), np.zeros((1, 21, 2))),
             Picture(pictures[0].image, np.array([[10.0, 30, 90, 110]]), np.full((1, 21, 2), 50.0))]
    canvas, placed = make_mosaics["mosaic"](faces, images, 800, 600)
    # first: 200x100 -> 400x200 in the top-left quarter; second: 100x300 -> 100x300 at x 400
    np.testing.assert_allclose(placed.boxes, [[40, 20, 120, 100], [410, 30, 490, 110]])
    np.testing.assert_allclose(placed.points[1], np.full((21, 2), [450, 50]))
    assert canvas[50, 50].tolist() == [255, 255, 255] and canvas[50, 450].tolist() == [0, 0, 0]
    assert canvas[250, 50].tolist() == [124, 124, 124]  # outside any picture


def test_closeups_centre_the_face_at_the_asked_share_of_the_side_and_stay_inside_the_picture():
    import runpy

    from conftest import REPO
    closeup = runpy.run_path(str(REPO / "scripts" / "photo_checks.py"))["closeup"]
    image = np.zeros((400, 600, 3), np.uint8)
    image[100:200, 250:350] = 255  # the face box, 100 px
    square, matrix = closeup(image, np.array([250.0, 100, 350, 200]), 0.5, 400)
    assert square.shape == (400, 400, 3)
    box = affine_points([[250.0, 100], [350, 200]], matrix)
    np.testing.assert_allclose(box, [[100, 100], [300, 300]])  # half the side, in the middle
    assert square[200, 200].tolist() == [255] * 3 and square[50, 50].tolist() == [0] * 3
    assert closeup(image, np.array([250.0, 100, 350, 200]), 0.25, 400) is None  # 400 px around it leaves the picture


def test_tilted_pictures_carry_their_points_along():
    import runpy

    from conftest import REPO
    tilted = runpy.run_path(str(REPO / "scripts" / "photo_checks.py"))["tilted"]
    image = np.zeros((200, 300, 3), np.uint8)
    image[95:106, 245:256] = 255  # a dot at (250, 100), 100 px right of the centre
    turned, matrix = tilted(image, 90)  # counter-clockwise: the dot goes 100 px above the centre
    np.testing.assert_allclose(affine_points([250.0, 100], matrix), [150, 0], atol=1e-9)
    assert turned[5, 150].tolist() == [255] * 3 and turned[100, 250].tolist() == [0] * 3


def test_a_tilted_head_is_looked_at_turned_upright_and_its_points_come_back_closer(sample_dir):
    from landmarks.data.formats import parse_label_line
    from landmarks.data.images import load_image
    from landmarks.metrics import box_normaliser, nme
    image = load_image(sample_dir / "I" / "000421.jpg", 3)
    truth = np.array([parse_label_line(line)[2] for line in (sample_dir / "I" / "label.txt").open()
                      if line.startswith("000421.jpg")])
    (h, w) = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), -40, 1.0)  # 40 degrees clockwise on screen
    tilted, tilted_truth = cv2.warpAffine(image, turn, (w, h)), affine_points(truth, turn)
    errors, turns = {}, {}
    for name, above in (("turned", LandmarkerSettings.turn_above), ("unturned", 0)):
        faces = [f for f in Landmarker(turn_above=above).detect(tilted) if f.is_face]
        found, _ = match_faces([f.points for f in faces], tilted_truth, 0.5)
        errors[name] = found
        turns[name] = [f.turn for f in faces]
    both = ~np.isnan(errors["unturned"])  # the third face of the picture is blacked out
    assert both.sum() >= 2 and not np.isnan(errors["turned"][both]).any(), errors
    # the two heads lean a few degrees themselves, either way
    assert all(t == pytest.approx(40, abs=12) for t in turns["turned"]) and not any(turns["unturned"]), turns
    assert errors["turned"][both].mean() < 0.8 * errors["unturned"][both].mean(), errors
    upright = Landmarker().detect(image)  # an upright picture: no face turned, as before
    assert upright and not any(f.turn for f in upright)
    turned = Face(np.zeros(4), np.zeros(4), np.zeros((21, 2)), 1.0, turn=40.0)
    assert turned.to_dict()["crop_turn"] == 40.0 and "crop_turn" not in Face(np.zeros(4), np.zeros(4), None).to_dict()
    from landmarks.inference.predict import faces_as_text
    assert "turned 40 degrees" in faces_as_text(sample_dir / "x.jpg", None, [turned])


def test_a_phone_photo_stored_on_its_side_is_read_upright_for_prediction(sample_dir, tmp_path):
    from PIL import Image
    from landmarks.data.images import load_image
    from landmarks.inference.landmarker import as_image
    upright = Image.open(sample_dir / "I" / "000421.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: shown turned 90 degrees clockwise
    upright.rotate(90, expand=True).save(tmp_path / "side.jpg", quality=95, exif=exif)
    stored = load_image(tmp_path / "side.jpg")  # lists and training: the pixels as stored
    assert stored.shape[:2] == (upright.width, upright.height)
    shown = as_image(tmp_path / "side.jpg")
    assert shown.shape[:2] == (upright.height, upright.width)
    assert np.abs(shown.astype(float) - np.asarray(upright, dtype=float)).mean() < 4
    assert len([f for f in Landmarker().detect(tmp_path / "side.jpg") if f.is_face]) >= 2


def underexposed(image: np.ndarray, stops: float) -> np.ndarray:
    """``stops`` fewer stops of light, as ``scripts/photo_checks.py dark`` makes them."""
    import runpy

    from conftest import REPO
    return runpy.run_path(str(REPO / "scripts" / "photo_checks.py"))["underexposed"](image, stops)


def test_a_dark_picture_is_lifted_to_the_floor_and_a_lit_one_left_alone():
    from landmarks.inference.faces import DARK_FLOOR, DARK_TARGET, lift_dark
    rng = np.random.default_rng(0)
    lit = rng.integers(60, 250, (120, 160, 3), dtype=np.uint8)
    assert lift_dark(lit) is lit
    dark = underexposed(lit, 5)
    lifted = lift_dark(dark)
    linear_mean = ((lifted / 255.0) ** 2.2).mean()
    assert ((dark / 255.0) ** 2.2).mean() < DARK_FLOOR and abs(linear_mean - DARK_TARGET) < 0.01
    order = np.argsort(dark.ravel(), kind="stable")
    assert (np.diff(lifted.ravel()[order].astype(int)) >= 0).all()  # brighter stays brighter


def test_the_detector_finds_the_faces_of_a_picture_five_stops_too_dark(sample_dir):
    from landmarks.data.images import load_image
    from landmarks.inference.faces import make_finder
    rgb = load_image(sample_dir / "I" / "000471.jpg", 3)  # five faces
    finder = make_finder("default")
    dark = underexposed(rgb, 5)
    assert (finder(rgb)[1] >= 0.2).sum() == (finder(dark)[1] >= 0.2).sum() == 5
    # Shown the dark picture as it is, the detector loses most of them.
    assert (finder.look(dark, finder.size)[1] >= 0.2).sum() <= 2


def test_the_first_look_crops_a_close_ups_candidate_wider_and_leaves_smaller_ones():
    boxes = np.array([[100.0, 100, 200, 200], [10, 10, 60, 60]])  # sides 100 and 50 in a 300 x 400 picture
    marker = Landmarker("stage2", detector=None)
    grown = marker._grown(boxes, (300, 400))
    np.testing.assert_allclose(grown[0], [90, 90, 210, 210])  # a quarter of 300 or more: 1.2 times, same centre
    np.testing.assert_array_equal(grown[1], boxes[1])
    np.testing.assert_array_equal(Landmarker("stage2", detector=None, first_look_grow=1)._grown(boxes, (300, 400)), boxes)
    assert marker._grown(np.zeros((0, 4)), (300, 400)).shape == (0, 4)
    with pytest.raises(UsageError, match="--first-look-grow"):
        Landmarker("stage2", detector=None, first_look_grow=0.9)


def test_a_face_whose_box_moved_on_its_second_look_is_looked_at_once_more(monkeypatch):
    marker = Landmarker("stage2", detector=None)
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(50, 150, (21, 2)), rng.uniform(10, 40, (21, 2))])
    faces = [Face(np.zeros(4), np.zeros(4), p, 1.0, 0.9) for p in points]
    faces.append(Face(np.zeros(4), np.zeros(4), None, 0.1, 0.5))  # refused: stays as it is
    settled_box = marker.scheme.face_boxes(points[0][None])[0]
    before = np.array([settled_box, [0.0, 0, 20, 20], [0, 0, 10, 10]])  # the second face's box moved
    looked = []

    def look_again(pixels, again, scores=None):
        looked.append(again)
        return [Face(np.ones(4), np.ones(4), p + 1, 1.0, s) for p, s in zip(again, scores)]

    monkeypatch.setattr(marker, "_look_from_points", look_again)
    settled = marker._settled(None, faces, before)
    assert len(looked) == 1 and len(looked[0]) == 1 and np.array_equal(looked[0][0], points[1])
    assert settled[0] is faces[0] and settled[2] is faces[2]
    np.testing.assert_array_equal(settled[1].points, points[1] + 1)
    assert Landmarker("stage2", detector=None, settle_iou=0)._settled(None, faces, before) == faces
    with pytest.raises(UsageError, match="--settle-iou"):
        Landmarker("stage2", detector=None, settle_iou=1.5)


def test_a_small_face_the_finder_is_sure_of_is_kept_from_the_lower_branch_probability():
    rng = np.random.default_rng(0)
    picture = rng.integers(100, 140, (200, 200, 3), dtype=np.uint8)  # no face: the branch doubts every crop
    small, large = np.array([[50.0, 50, 70, 70]]), np.array([[50.0, 50, 150, 150]])

    def kept(box, score, small_face_prob):
        marker = Landmarker("stage3", detector=lambda image: (box, np.array([score])), refine=False,
                            small_face_prob=small_face_prob)
        face, = marker.detect(picture)
        assert face.face_prob < marker.min_face_prob
        return face.is_face

    assert kept(small, 0.9, 0.0)  # 20 px, sure: kept from probability 0 on
    assert not kept(small, Landmarker.SMALL_FACE_SCORE - 0.01, 0.0)  # the finder not sure enough
    assert not kept(large, 0.9, 0.0)  # 100 px: the branch's own threshold
    assert not kept(small, 0.9, 1.0)  # 1: as any other face


class ThresholdFinder:
    """A finder with a threshold, as a trained one has: its candidates from that score on."""

    def __init__(self, boxes, scores, threshold=0.2):
        self.boxes, self.scores, self.threshold = np.asarray(boxes, float), np.asarray(scores, float), threshold

    def __call__(self, image):
        keep = self.scores >= self.threshold
        return self.boxes[keep], self.scores[keep]


def test_candidates_a_little_under_the_finders_threshold_go_on_and_need_a_surer_face_branch(monkeypatch):
    picture = np.full((200, 300, 3), 120, np.uint8)
    boxes = [[10.0, 10, 90, 90], [110, 10, 190, 90], [210, 10, 290, 90]]
    scores = [0.3, 0.17, 0.1]  # sure, a little under the threshold (0.2), far under it

    def kept(branch_prob, unsure_face_prob):
        # As the shipped finder, made by the Landmarker from its name; here with scores chosen.
        monkeypatch.setattr(landmarker_module, "make_finder", lambda *args: ThresholdFinder(boxes, scores))
        marker = Landmarker("stage3", refine=False, unsure_face_prob=unsure_face_prob)
        monkeypatch.setattr(marker, "_run", lambda batch, first_look=False: (
            np.full((len(batch), marker.scheme.num_points, 2), 0.5), np.full(len(batch), branch_prob)))
        return [f.score for f in marker.detect(picture) if f.is_face], marker

    found, marker = kept(0.97, 0.95)
    assert found == [0.3, 0.17] and marker.candidate_floor == pytest.approx(0.15) and marker.finder_threshold == 0.2
    assert kept(0.9, 0.95)[0] == [0.3]  # the branch not sure enough for the finder's doubt
    found, marker = kept(0.97, 1.0)  # 1: none go on, the finder's threshold as it is
    assert found == [0.3] and marker.candidate_floor == 0.2
    given = ThresholdFinder(boxes, scores)  # a finder passed in is left as it is
    assert Landmarker("stage3", detector=given).candidate_floor == given.threshold == 0.2
