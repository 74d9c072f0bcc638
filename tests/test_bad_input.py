"""Bad input gets one clear line naming the file, with exit 1 for bad data and 2 for wrong usage."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from landmarks.detector import main
from landmarks.errors import DataError
from landmarks.data.images import load_image

from conftest import run_main, train_args, write_image


def test_missing_data_folder_is_one_line_with_exit_1(tmp_path, capsys):
    code, err = run_main(["--phase", "train", "--data-dir", str(tmp_path / "nowhere"),
                     "--list-dir", str(tmp_path / "lists"), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 1 and err == f"error: {tmp_path / 'nowhere'}: data folder not found"


def test_bad_label_lines_are_skipped_and_strict_fails(tiny_data, tmp_path, capsys, caplog):
    label = tiny_data / "I" / "label.txt"
    label.write_text(label.read_text() + "a.jpg 1 2 3\n")
    args = ["--phase", "train", "--data-dir", str(tiny_data), "--list-dir", str(tmp_path / "lists"),
            "--runs-dir", str(tmp_path / "runs"), "--epochs", "1", "--quiet", "--no-cache", "--test-ratio", "0"]
    code, err = run_main(args, capsys)
    assert code == 0 and f"{label}:4: expected 47 fields" in caplog.text
    code, err = run_main(args[:-4] + ["--strict", "--list-dir", str(tmp_path / "lists2")], capsys)
    assert code == 1 and err.splitlines()[-1].startswith(f"error: {label}:4: expected 47 fields")
    assert "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys, sample_lists):
    code, err = run_main(train_args(sample_lists, tmp_path, "x", "--device", "cuda"), capsys)
    assert code == 2 and "no CUDA GPU" in err


def test_unwritable_output_folder(tmp_path, capsys, sample_lists):
    (tmp_path / "file").write_text("")
    code, err = run_main(train_args(sample_lists, tmp_path, "x") + ["--runs-dir", str(tmp_path / "file" / "runs")], capsys)
    assert code == 2 and "cannot write here" in err


def test_wrong_stage_list_for_the_net(tmp_path, capsys, sample_dir):
    from landmarks.data import build_lists
    build_lists(sample_dir, tmp_path / "lists3", negatives=1)
    code, err = run_main(train_args(tmp_path / "lists3", tmp_path, "x"), capsys)
    assert code == 2 and "non-face lines (stage 3)" in err and "--classify" in err
    code, err = run_main(train_args(tmp_path / "nolists", tmp_path, "y", "--classify", "--data-dir", str(sample_dir)), capsys)
    assert code == 2 and "has no non-face lines" in err


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "image file is empty"),
    (lambda p: p.write_text("hello"), "not a readable image"),
    (lambda p: p.write_bytes(open(write_image(p.with_suffix(".full.jpg"), 200, 200), "rb").read()[:8000]),
     "cannot decode image .*truncated"),
])
def test_broken_images_are_named(tmp_path, make, message):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(DataError, match=message) as error:
        load_image(path)
    assert str(path) in str(error.value)


def test_grayscale_rgba_and_16_bit_images_load(tmp_path):
    Image.fromarray(np.full((10, 12), 200, np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((10, 12, 4), 100, np.uint8)).save(tmp_path / "a.png")
    cv2.imwrite(str(tmp_path / "w.png"), np.full((10, 12), 65535, np.uint16))
    assert load_image(tmp_path / "g.png", 3).shape == (10, 12, 3)
    assert load_image(tmp_path / "a.png", 1).shape == (10, 12, 1)
    assert load_image(tmp_path / "w.png", 1).max() == 255


def test_checkpoints_of_the_wrong_kind_are_refused(tmp_path, capsys, sample_lists):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    assert main(train_args(sample_lists, tmp_path, "a", "--epochs", "1")) == 0
    good = (tmp_path / "runs" / "a" / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    payload = torch.load(tmp_path / "runs" / "a" / "last.pt", weights_only=False)
    payload["config"]["net"] = "mobilenet"
    torch.save(payload, tmp_path / "mismatch.pt")
    capsys.readouterr()
    for name, message in [("notes.pt", "not a checkpoint"), ("other.pt", "not a landmarks-checkpoint"),
                          ("cut.pt", "truncated or damaged"), ("mismatch.pt", "weights do not fit a 'mobilenet' net")]:
        code, err = run_main(["--phase", "test", "--model", str(tmp_path / name), "--test-list",
                         str(sample_lists / "test.txt"), "--no-cache"], capsys)
        assert code == 1 and message in err and str(tmp_path / name) in err, (name, err)
        assert len(err.splitlines()) == 1


def test_runs_started_together_do_not_race_on_the_write_check(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from landmarks.train.run import writable_folder

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: writable_folder(tmp_path / "runs"), range(64)))
    assert results == [tmp_path / "runs"] * 64 and not list((tmp_path / "runs").iterdir())
