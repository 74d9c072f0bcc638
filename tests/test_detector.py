"""Every phase through main([...]) on the shipped sample."""

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from landmarks.checkpoint import load_model
from landmarks.detector import main
from landmarks.data.labels import read_list


def common(lists, tmp):
    return ["--list-dir", str(lists), "--cache-dir", str(tmp / "cache"), "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(sample_lists, tmp_path_factory):
    """One short stage-1 run on the sample, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("run")
    code = main(["--phase", "train", "--runs-dir", str(tmp / "runs"), "--run-name", "s1", "--epochs", "6",
                 "--lr", "0.003", *common(sample_lists, tmp)])
    assert code == 0
    return tmp / "runs" / "s1"


def test_train_lowers_the_loss_and_writes_the_run_folder(trained):
    for name in ("best.pt", "last.pt", "loss.png", "history.csv", "train.log", "config.json", "summary.json"):
        assert (trained / name).is_file(), name
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(trained / "history.csv")))
    assert len(rows) == 6
    assert float(rows[-1]["train_loss"]) < 0.5 * float(rows[0]["train_loss"])
    assert {"val_loss", "val_nme_box", "val_nme_io", "lr"} <= set(rows[0])
    assert "epoch 6/6" in (trained / "train.log").read_text()
    payload = torch.load(trained / "last.pt", weights_only=False)
    assert {"model", "optimizer", "scheduler", "epoch", "best", "config"} <= set(payload)


def test_test_phase_writes_metrics_and_predictions(trained, sample_lists, tmp_path, capsys):
    metrics_file, predictions = tmp_path / "m.json", tmp_path / "pred.txt"
    code = main(["--phase", "test", "--model", str(trained / "best.pt"), "--metrics-json", str(metrics_file),
                 "--predictions-out", str(predictions), "--test-list", str(sample_lists / "test.txt"),
                 *common(sample_lists, tmp_path)])
    assert code == 0
    metrics = json.loads(metrics_file.read_text())
    entries = read_list(sample_lists / "test.txt").entries
    assert metrics["faces"] == len(entries)
    assert {"loss", "nme_box", "nme_io", "fr_io@0.1", "auc_io@0.1"} <= set(metrics)
    assert 0 < metrics["nme_box"] < 100 and 0 <= metrics["auc_io@0.1"] <= 1
    lines = predictions.read_text().splitlines()
    assert len(lines) == len(entries)
    fields = lines[0].split()
    assert len(fields) == 47 and fields[0] == entries[0].listed_as
    np.testing.assert_allclose([float(v) for v in fields[1:5]], entries[0].box)
    # Predicted points are in image pixels: near the face box, not in 0..112 crop units.
    points = np.array(fields[5:], float).reshape(21, 2)
    box = entries[0].box
    assert np.all(points[:, 0] > box[0] - 20) and np.all(points[:, 0] < box[2] + 20)
    assert "NME_box" in capsys.readouterr().out


def test_finetune_keeps_frozen_layers_bit_identical(trained, sample_lists, tmp_path):
    code = main(["--phase", "finetune", "--model", str(trained / "best.pt"), "--freeze", "conv1,conv2",
                 "--epochs", "2", "--runs-dir", str(tmp_path / "runs"), "--run-name", "ft",
                 *common(sample_lists, tmp_path)])
    assert code == 0
    before, after = load_model(trained / "best.pt"), load_model(tmp_path / "runs" / "ft" / "last.pt")
    config_before, config_after = before.config, after.config
    before, after = before.net, after.net
    for name in ("conv1_1", "conv2_1", "conv2_2"):
        for a, b in zip(getattr(before, name).parameters(), getattr(after, name).parameters()):
            assert torch.equal(a, b), name
    assert not torch.equal(before.ip1[0].weight, after.ip1[0].weight)
    assert config_after.lr == pytest.approx(config_before.learning_rate / 10)


def test_finetune_with_an_unknown_layer_is_a_usage_error(trained, sample_lists, tmp_path, capsys):
    code = main(["--phase", "finetune", "--model", str(trained / "best.pt"), "--freeze", "conv7",
                 "--runs-dir", str(tmp_path / "runs"), *common(sample_lists, tmp_path)])
    assert code == 2
    assert "unknown layer conv7; valid names: conv1, conv1_1" in capsys.readouterr().err


def test_predict_draws_and_prints_landmarks(trained, sample_dir, tmp_path, capsys):
    image = sample_dir / "I" / (sample_dir / "I" / "label.txt").read_text().split()[0]
    box = ",".join((sample_dir / "I" / "label.txt").read_text().split()[1:5])
    out = tmp_path / "pred.png"
    code = main(["--phase", "predict", "--model", str(trained / "best.pt"), "--image", str(image),
                 "--box", box, "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["faces"]) == 1 and len(result["faces"][0]["landmarks"]) == 21
    drawn, original = cv2.imread(str(out)), cv2.imread(str(image))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).sum() > 0


def test_predict_on_a_folder_skips_other_files_and_reports_no_face(trained, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    cv2.imwrite(str(folder / "blank.png"), np.full((80, 80, 3), 127, np.uint8))
    (folder / "notes.txt").write_text("not a picture")
    code = main(["--phase", "predict", "--model", str(trained / "best.pt"), "--image", str(folder),
                 "--out", str(tmp_path / "out")])
    assert code == 0
    captured = capsys.readouterr()
    assert "skipping 1 non-image file(s)" in captured.err and "notes.txt" in captured.err
    assert "no face found" in captured.err and (tmp_path / "out" / "blank_landmarks.png").is_file()
    assert "0 face(s)" in captured.out


def test_predict_json_on_a_folder_prints_only_json_lines_and_writes_them(trained, sample_dir, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in ("000421.jpg", "000297.jpg"):
        (folder / name).write_bytes((sample_dir / "I" / name).read_bytes())
    cv2.imwrite(str(folder / "blank.png"), np.full((80, 80, 3), 127, np.uint8))
    (folder / "notes.txt").write_text("not a picture")
    json_out = tmp_path / "found.jsonl"
    code = main(["--phase", "predict", "--model", str(trained / "best.pt"), "--image", str(folder), "--json",
                 "--json-out", str(json_out), "--out", str(tmp_path / "out")])
    assert code == 0
    captured = capsys.readouterr()
    printed = [json.loads(line) for line in captured.out.splitlines()]  # every stdout line is JSON
    assert [Path(r["image"]).name for r in printed] == ["000297.jpg", "000421.jpg", "blank.png"]
    assert [json.loads(line) for line in json_out.read_text().splitlines()] == printed
    assert "notes.txt" in captured.err
    assert printed[2]["faces"] == [] and all(len(f["landmarks"]) == 21 for f in printed[1]["faces"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_the_same_landmarks(trained, sample_lists, tmp_path, fmt):
    pytest.importorskip("onnxruntime")
    out = tmp_path / f"model.{fmt}"
    assert main(["--phase", "export", "--model", str(trained / "best.pt"), "--format", fmt, "--out", str(out)]) == 0
    # One file the model, one its settings: no weights in a file beside them, under a temporary name.
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, f"{out.name}.json"]
    loaded = load_model(trained / "best.pt")
    model, config = loaded.spec.inference_model(loaded.net), loaded.config
    from landmarks.data import FaceLandmarksDataset
    batch = next(FaceLandmarksDataset(read_list(sample_lists / "test.txt").entries).batches(16))["image"]
    with torch.no_grad():
        expected = model(batch).numpy() * config.input_size
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": batch.numpy()})[0] * config.input_size
    else:
        got = torch.jit.load(str(out))(batch).detach().numpy() * config.input_size
    assert np.abs(got - expected).max() <= 1e-3


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_onnx_export_without_its_packages_says_what_to_install(trained, tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes ``import <missing>`` fail
    out = tmp_path / "m.onnx"
    code = main(["--phase", "export", "--model", str(trained / "best.pt"), "--format", "onnx", "--out", str(out)])
    assert code != 0 and f"needs the {missing} package: pip install 'landmarks[export]'" in capsys.readouterr().err
    assert not out.exists()


def test_predict_without_onnxruntime_says_what_to_install(trained, sample_dir, tmp_path, monkeypatch, capsys):
    onnx_file = tmp_path / "m.onnx"
    assert main(["--phase", "export", "--model", str(trained / "best.pt"), "--out", str(onnx_file)]) == 0
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    image = sample_dir / "II" / (sample_dir / "II" / "label.txt").read_text().split()[0]
    code = main(["--phase", "predict", "--image", str(image), "--model", str(onnx_file), "--backend", "onnxruntime",
                 "--out", str(tmp_path / "p.png")])
    assert code != 0 and "needs the onnxruntime package: pip install 'landmarks[export]'" in capsys.readouterr().err


def test_predict_with_onnxruntime_matches_torch(trained, sample_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "m.onnx"
    main(["--phase", "export", "--model", str(trained / "best.pt"), "--out", str(onnx_file)])
    image = sample_dir / "II" / (sample_dir / "II" / "label.txt").read_text().split()[0]
    box = ",".join((sample_dir / "II" / "label.txt").read_text().split()[1:5])
    capsys.readouterr()
    results = []
    for extra in (["--model", str(trained / "best.pt")], ["--model", str(onnx_file), "--backend", "onnxruntime"]):
        assert main(["--phase", "predict", "--image", str(image), "--box", box, "--json",
                     "--out", str(tmp_path / "p.png"), *extra]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    a = np.array(results[0]["faces"][0]["landmarks"])
    b = np.array(results[1]["faces"][0]["landmarks"])
    assert np.abs(a - b).max() < 0.02
