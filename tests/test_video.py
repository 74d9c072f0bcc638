"""Video and camera, tracking and smoothing, the Python API, head pose and aligned crops."""

import json

import cv2
import numpy as np
import pytest

from landmarks.data.images import load_image
from landmarks.data.scheme import load_scheme
from landmarks.detector import main
from landmarks.geometry import affine_points, flip_points, similarity_transform
from landmarks.inference.align import TEMPLATE_112, align_face, alignment_matrix
from landmarks.inference.clips import pan_frames, still_frames, tilt_frames, write_clip
from landmarks.inference.landmarker import Landmarker
from landmarks.data.pose import angles, head_pose
from landmarks.inference.smoothing import OneEuroFilter, OneEuroSettings

from conftest import run_main

COURSE = load_scheme("course21")


@pytest.fixture(scope="module")
def clip(sample_dir, tmp_path_factory):
    """A 12-frame clip of a face panned across the frame."""
    frames, _ = pan_frames(load_image(sample_dir / "I" / "000719.jpg", 3), 12, travel=0.2)
    return write_clip(frames, tmp_path_factory.mktemp("clip") / "pan.mp4")


def test_a_clip_through_predict_gives_one_record_per_frame_and_a_steady_id(clip, tmp_path, capsys):
    out, records = tmp_path / "annotated.mp4", tmp_path / "frames.jsonl"
    assert main(["--phase", "predict", "--video", str(clip), "--out", str(out), "--json-out", str(records),
                 "--align-out", str(tmp_path / "aligned"), "--detector", "haar"]) == 0
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(12))
    assert lines[1]["time"] == pytest.approx(1 / 25, abs=1e-3)
    # Two faces in this picture (one not annotated): each keeps its id in every frame.
    assert all(sorted(f["id"] for f in r["faces"]) == [1, 2] for r in lines)
    first = {f["id"]: f["box"][0] for f in lines[0]["faces"]}
    last = {f["id"]: f["box"][0] for f in lines[-1]["faces"]}
    assert all(last[i] > first[i] + 50 for i in first)  # both moved right with the pan
    face = lines[5]["faces"][0]
    assert len(face["landmarks"]) == 21 and set(face["pose"]) == {"yaw", "pitch", "roll"}
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert len(list((tmp_path / "aligned").glob("pan_*_id1.png"))) == 12
    assert "12 frames, 2 face(s) tracked" in capsys.readouterr().out


@pytest.mark.parametrize("source, message", [
    (["--video", "nowhere.mp4"], "nowhere.mp4: video not found"),
    (["--video", "CORRUPT"], "cannot read video frames"),
    (["--camera", "57"], "camera 57: cannot open it"),
])
def test_bad_video_inputs_end_in_one_clear_line(source, message, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    args = [str(corrupt) if a == "CORRUPT" else str(tmp_path / a) if a.endswith(".mp4") else a for a in source]
    code, err = run_main(["--phase", "predict", *args, "--detector", "haar"], capsys)
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_the_api_gives_the_points_the_cli_prints(sample_dir, tmp_path, capsys):
    image = sample_dir / "I" / "000421.jpg"
    assert main(["--phase", "predict", "--image", str(image), "--detector", "haar", "--json",
                 "--out", str(tmp_path / "p.png")]) == 0
    printed = [f for f in json.loads(capsys.readouterr().out)["faces"] if f["landmarks"] is not None]
    found = [f for f in Landmarker(detector="haar").detect(str(image)) if f.is_face]
    assert len(printed) == len(found) >= 2
    for cli, api in zip(printed, found):
        np.testing.assert_allclose(cli["landmarks"], api.points, atol=0.006)


def test_tracking_an_iterable_of_frames_through_the_api(sample_dir):
    frames = still_frames(load_image(sample_dir / "I" / "000719.jpg", 3), 6)
    marker = Landmarker(detector="haar")
    tracked = list(marker.track((i / 25, f) for i, f in enumerate(frames)))
    assert len(tracked) == 6 and all(sorted(f.id for f in faces) == [1, 2] for faces in tracked)


def test_pose_signs_flip_with_a_mirrored_face():
    # The mean face itself, turned 20 degrees toward the picture's right and 10 up, then projected.
    model = np.array(COURSE.mean_face_3d) * 100
    yaw, pitch = np.radians(20), np.radians(10)
    ry = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]])
    camera = (ry @ rx @ model.T).T + [0, 0, 800]
    points = camera[:, :2] / camera[:, 2:] * 800 + [300, 300]
    y, p, r = head_pose(points, COURSE, (600, 600))
    assert y == pytest.approx(20, abs=2) and p == pytest.approx(10, abs=2) and r == pytest.approx(0, abs=2)
    my, mp, mr = head_pose(flip_points(points, 600, COURSE.flip_permutation), COURSE, (600, 600))
    assert my == pytest.approx(-y, abs=1) and mp == pytest.approx(p, abs=1) and mr == pytest.approx(-r, abs=1)
    # Roll: a head tilted clockwise in the picture.
    turn = np.radians(15)
    rz = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    assert angles(rz)[2] == pytest.approx(15)
    # Schemes without a 3D face take pose from their five points.
    five = load_scheme("five").convert(points, COURSE)
    assert head_pose(five, load_scheme("five"), (600, 600))[0] == pytest.approx(20, abs=6)


def test_the_aligned_crop_puts_the_eye_centres_at_the_template():
    five = load_scheme("five")
    # Five points that are the template turned, scaled and moved: the fit must be exact.
    angle, scale = np.radians(25), 1.7
    turn = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = TEMPLATE_112 @ turn.T + [140, 90]
    matrix = alignment_matrix(points, five)
    np.testing.assert_allclose(affine_points(points, matrix), TEMPLATE_112, atol=1e-6)
    image = np.zeros((400, 400, 3), np.uint8)
    for x, y in points[:2]:  # bright dots on the eye centres
        cv2.circle(image, (int(x), int(y)), 3, (255, 255, 255), -1)
    crop = align_face(image, points, five, 112)
    for x, y in TEMPLATE_112[:2]:
        assert crop[int(y), int(x)].min() > 150
    np.testing.assert_allclose(similarity_transform(points, points)[:, :2], np.eye(2), atol=1e-9)


def test_one_euro_filter_calms_a_still_signal_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    still = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=0.5))
    raw = 100 + rng.normal(0, 1.0, (200, 2))
    smooth = np.array([still(v, t / 30, scale=100) for t, v in enumerate(raw)])
    assert np.abs(np.diff(smooth[50:], axis=0)).mean() < np.abs(np.diff(raw[50:], axis=0)).mean() / 3
    moving = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=0.5))
    ramp = np.stack([np.arange(100) * 5.0, np.zeros(100)], 1)
    followed = np.array([moving(v, t / 30, scale=100) for t, v in enumerate(ramp)])
    assert abs(followed[-1, 0] - ramp[-1, 0]) < 3 * 5.0  # under 3 frames behind


def test_a_tilting_clip_turns_the_picture_clockwise_and_gives_the_matrices_that_move_its_points():
    image = np.zeros((60, 80, 3), np.uint8)
    image[28:33, 58:63] = 255  # a dot right of the centre (40, 30)
    frames, matrices = tilt_frames(image, 4, most=90.0, noise=0.0)
    assert len(frames) == len(matrices) == 4 and frames[0].shape == image.shape
    np.testing.assert_allclose(affine_points([[40, 30]], matrices[-1]), [[40, 30]], atol=1e-6)
    moved = affine_points([[60.5, 30.5]], matrices[-1])[0]  # a quarter turn clockwise: now below the centre
    np.testing.assert_allclose(moved, [39.5, 50.5], atol=1e-6)
    assert frames[-1][int(moved[1]), int(moved[0])].min() > 200
