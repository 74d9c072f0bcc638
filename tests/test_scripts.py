"""Each script in scripts/ (benchmarks) and scripts/tools/ runs on the sample and gives what it
says; tiny sizes, so the figures themselves are not the point, their presence and sense are."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from landmarks.checkpoint import load_model, resolve_model, save_checkpoint
from landmarks.data.labels import read_list, read_picture_list

REPO = Path(__file__).resolve().parents[1]


def run_script(path: str, argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """``python path argv`` in this process -> (exit status, stdout)."""
    monkeypatch.syspath_prepend(str((REPO / path).parent))  # as `python PATH.py` puts it first
    code = runpy.run_path(str(REPO / path))["main"](argv)
    return code, capsys.readouterr().out


def numbers(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", line)]


def test_bench_predict_times_each_backend(capsys, monkeypatch):
    code, out = run_script("scripts/bench_predict.py", ["--models", "stage1", "--repeats", "5", "--nodes", "3"],
                           capsys, monkeypatch)
    rows = {line.split()[3]: numbers(line) for line in out.splitlines() if line.startswith("stage1 ")}
    assert code == 0 and {"eager", "torchscript"} <= set(rows)
    assert all(row[-2] > 0 and row[-1] > 0 for row in rows.values())  # ms a face, faces a second
    nodes = [line.split() for line in out.splitlines() if line.startswith("  ") and " us " in line]
    assert len(nodes) == 3 and all(float(n[0]) > 0 for n in nodes)
    assert float(nodes[0][0]) >= float(nodes[-1][0]) and any(n[3] == "Conv" for n in nodes)  # slowest first


def test_bench_designs_compares_the_cascade_with_the_single_shot_detector(capsys, monkeypatch):
    code, out = run_script("scripts/bench_designs.py", ["--repeats", "1"], capsys, monkeypatch)
    # Each row: smallest face, scales, ms. Smaller faces need more scales; times are the
    # benchmark's to compare, not a test's (a busy machine can reorder them).
    pyramid = [numbers(line)[-3:] for line in out.splitlines() if line.startswith("MTCNN")]
    assert code == 0 and len(pyramid) >= 2 and pyramid[0][1] > pyramid[-1][1] > 0
    assert all(ms > 0 for _, _, ms in pyramid)
    assert any(line.startswith("single-shot detector") for line in out.splitlines())


def test_bench_pictures_times_each_finder_with_each_backend(sample_lists, capsys, monkeypatch):
    code, out = run_script("scripts/bench_pictures.py", ["--pictures", str(sample_lists / "test_pictures.txt"),
                                                         "--count", "2", "--rounds", "1", "--detectors", "default",
                                                         "--backends", "onnxruntime", "torch"],
                           capsys, monkeypatch)
    assert code == 0
    rows = {line.split()[0]: numbers(line) for line in out.splitlines() if line.startswith("net/")}
    assert set(rows) == {"net/onnxruntime", "net/torch"}
    for decode, detector, landmarks, pipeline, with_decode, faces in rows.values():
        assert detector > 0 and landmarks > 0 and with_decode >= pipeline
    assert rows["net/onnxruntime"][5] == rows["net/torch"][5]  # the same faces found either way


def test_bench_train_compares_the_course_style_loop_with_ours(sample_lists):
    # Its own process: the course-style loop's DataLoader workers import the script by name.
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_train.py"), "--list",
                             str(sample_lists / "train.txt"), "--samples", "32", "--rounds", "1"],
                            capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0 and "(a) course style:" in out and "(b) ours:" in out, result.stderr
    assert numbers(next(line for line in out.splitlines() if line.startswith("speed-up")))[1] > 0


def test_bench_video_measures_jitter_lag_and_speed(sample_dir, capsys, monkeypatch):
    code, out = run_script("scripts/bench_video.py", ["--picture", str(sample_dir / "I" / "000495.jpg"),
                                                      "--frames", "16"], capsys, monkeypatch)
    jitter = numbers(next(line for line in out.splitlines() if line.startswith("jitter")))
    assert code == 0 and jitter[1] < jitter[0]  # smoothed below raw
    assert "frames a second" in out and "lag on the pan" in out


def test_face_free_check_finds_no_face_where_there_is_none(sample_lists, tmp_path, capsys, monkeypatch):
    code, out = run_script("scripts/face_free_check.py", ["--pictures", str(sample_lists / "test_pictures.txt"),
                                                          "--min-side", "60", "--out", str(tmp_path / "found")],
                           capsys, monkeypatch)
    used, _, found, with_any = numbers(out)[:4]
    assert code == 0 and used >= 5 and found == 0 and not (tmp_path / "found").exists()


def test_photo_checks_close_ups_count_found_faces(sample_lists, capsys, monkeypatch):
    code, out = run_script("scripts/photo_checks.py", ["closeup", "--pictures", str(sample_lists / "test_pictures.txt"),
                                                       "--count", "3", "--fractions", "0.5", "--detectors", "default"],
                           capsys, monkeypatch)
    row = numbers(next(line for line in out.splitlines() if re.match(r"\s*0\.5 net", line)))
    assert code == 0 and row[1] >= 1 and 0 <= row[2] <= 1


def test_make_clip_writes_the_frames_asked_for(sample_dir, tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.mp4"
    code, _ = run_script("scripts/tools/make_clip.py", [str(sample_dir / "I" / "000495.jpg"), str(clip),
                                                        "--frames", "6", "--motion", "still"], capsys, monkeypatch)
    capture = cv2.VideoCapture(str(clip))
    assert code == 0 and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()


def test_mean_face_3d_prints_the_five_point_template(sample_dir, capsys, monkeypatch):
    code, out = run_script("scripts/tools/mean_face_3d.py", ["--data-dir", str(sample_dir)], capsys, monkeypatch)
    rows = [numbers(line.split("#")[0]) for line in out.splitlines() if line.startswith("    [")]
    assert code == 0 and len(rows) == 21 and all(len(row) == 3 for row in rows)
    assert rows[6][:2] == [-0.5, -0.0] and rows[9][:2] == [0.5, -0.0]  # the outer eye corners set the scale


def test_ship_model_packs_a_checkpoint_under_five_megabytes(tmp_path, capsys, monkeypatch):
    code, out = run_script("scripts/tools/ship_model.py", [str(resolve_model("stage1")), "mine", "--models-dir",
                                                           str(tmp_path)], capsys, monkeypatch)
    shipped = load_model(tmp_path / "mine.pt")
    assert code == 0 and shipped.config.net == "stage1" and (tmp_path / "mine.pt").stat().st_size < 5_000_000


def test_pack_crops_keeps_the_points_on_their_pixels(sample_lists, tmp_path, capsys, monkeypatch):
    code, _ = run_script("scripts/tools/pack_crops.py", [str(sample_lists), "--out", str(tmp_path / "packed")],
                         capsys, monkeypatch)
    original = read_list(sample_lists / "test.txt").entries
    packed = read_list(tmp_path / "packed" / sample_lists.name / "test.txt").entries
    assert code == 0 and len(packed) == len(original)
    for before, after in zip(original, packed):  # the points keep their place in the crop box
        np.testing.assert_allclose(after.points / (after.box[2:] - after.box[:2]),
                                   before.points / (before.box[2:] - before.box[:2]), atol=0.01)


def test_edge_crops_cut_each_face_crop_on_one_side(sample_lists, tmp_path, capsys, monkeypatch):
    out = tmp_path / "edge.txt"
    code, _ = run_script("scripts/tools/edge_crops.py", ["--list", str(sample_lists / "test.txt"), "--out", str(out)],
                         capsys, monkeypatch)
    before, after = read_list(sample_lists / "test.txt").entries, read_list(out).entries
    assert code == 0 and len(after) == len(before)
    for a, b in zip(before, after):
        moved = np.abs(a.box - b.box) > 1e-6
        assert moved.sum() == 1  # one side moved in
        np.testing.assert_allclose(a.points + a.box[:2], b.points + b.box[:2], atol=1e-3)


def test_make_mosaics_put_four_pictures_in_one(sample_lists, tmp_path, capsys, monkeypatch):
    code, _ = run_script("scripts/tools/make_mosaics.py", ["--pictures", str(sample_lists / "train_pictures.txt"),
                                                           "--out-dir", str(tmp_path), "--size", "400x300"],
                         capsys, monkeypatch)
    pictures, _ = read_picture_list(sample_lists / "train_pictures.txt")
    mosaics, _ = read_picture_list(tmp_path / "mosaics.txt")
    assert code == 0 and len(mosaics) == len(pictures) // 4
    assert cv2.imread(str(mosaics[0].image)).shape == (300, 400, 3)


@pytest.mark.parametrize("script", ["scripts/tools/square_negatives.py", "scripts/tools/edge_crops.py"])
def test_a_tool_refuses_to_write_over_its_input(script, sample_lists, tmp_path, capsys, monkeypatch):
    given = tmp_path / "given.txt"
    source = sample_lists / ("test_pictures.txt" if "square" in script else "test.txt")
    given.write_bytes(source.read_bytes())
    flag = "--pictures" if "square" in script else "--list"
    code, _ = run_script(script, [flag, str(given), "--out", str(given)], capsys, monkeypatch)
    assert code == 2 and given.read_bytes() == source.read_bytes()


def test_drop_points_leaves_a_share_of_the_points_unlabelled_or_the_faces_out(sample_lists, tmp_path, capsys,
                                                                              monkeypatch):
    source = sample_lists / "train.txt"
    code, _ = run_script("scripts/tools/drop_points.py", ["--list", str(source), "--out", str(tmp_path / "a" / "t.txt"),
                                                          "--share", "0.3"], capsys, monkeypatch)
    faces = read_list(source).entries
    masked = read_list(tmp_path / "a" / "t.txt").entries
    gaps = np.array([np.isnan(e.points).any(-1) for e in masked])
    assert code == 0 and len(masked) == len(faces) and 0.2 < gaps.mean() < 0.4
    for before, after in zip(faces, masked):
        np.testing.assert_array_equal(after.points[~np.isnan(after.points).any(-1)],
                                      before.points[~np.isnan(after.points).any(-1)].round(3))
    for folder, extra in (("c", []), ("b", ["--drop-faces"])):  # few gaps: some faces keep every point
        code, _ = run_script("scripts/tools/drop_points.py", ["--list", str(source), "--out",
                                                              str(tmp_path / folder / "t.txt"), "--share", "0.03",
                                                              *extra], capsys, monkeypatch)
        assert code == 0
    few = np.array([np.isnan(e.points).any() for e in read_list(tmp_path / "c" / "t.txt").entries])
    whole = read_list(tmp_path / "b" / "t.txt").entries
    assert 0 < len(whole) == int((~few).sum()) < len(faces)
    assert all(not np.isnan(e.points).any() for e in whole) and (tmp_path / "b" / "lists.json").is_file()


def test_weight_soup_writes_the_weighted_mean_of_its_models(tmp_path, capsys, monkeypatch):
    start = load_model(resolve_model("faces"), expect_task=None)
    moved = {k: v + 1.0 if v.is_floating_point() else v for k, v in start.net.state_dict().items()}
    start.net.load_state_dict(moved)
    save_checkpoint(tmp_path / "moved.pt", start.net, start.spec)
    out = tmp_path / "soup.pt"
    code, text = run_script("docs/experiments/weight_soup.py",
                            ["--models", "faces", str(tmp_path / "moved.pt"), "--weights", "3", "1", "--out", str(out)],
                            capsys, monkeypatch)
    soup = load_model(out, expect_task="faces").net.state_dict()
    shipped = load_model(resolve_model("faces"), expect_task=None).net.state_dict()
    key = next(k for k, v in shipped.items() if v.is_floating_point() and v.abs().sum() > 0)
    assert code == 0 and "written" in text
    assert torch.allclose(soup[key], shipped[key] + 0.25, atol=1e-5)  # a quarter of the way to +1
    before = out.read_bytes()
    code = runpy.run_path(str(REPO / "docs/experiments/weight_soup.py"))["main"](
        ["--models", "faces", str(out), "--out", str(out)])
    assert code == 2 and "--out" in capsys.readouterr().err and out.read_bytes() == before


def test_weight_soup_names_the_model_that_does_not_fit(capsys):
    code = runpy.run_path(str(REPO / "docs/experiments/weight_soup.py"))["main"](["--models", "faces", "stage2"])
    err = capsys.readouterr().err
    assert code == 2 and "stage2.pt is not the first model's kind" in err
