"""Interrupted training: atomic checkpoints, resume after a stop or a SIGKILL."""

import signal
import subprocess
import sys
import time

import torch

from landmarks.checkpoint import load_model, read_checkpoint
from landmarks.detector import main

from conftest import REPO, train_args


def test_resumed_run_ends_with_the_same_weights(tmp_path, sample_lists):
    assert main(train_args(sample_lists, tmp_path, "full", "--epochs", "4", "--augment")) == 0
    assert main(train_args(sample_lists, tmp_path, "part", "--epochs", "2", "--augment")) == 0
    assert main(["--phase", "train", "--resume", str(tmp_path / "runs" / "part"), "--epochs", "4",
                 "--list-dir", str(sample_lists), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    full_model, part_model = load_model(tmp_path / "runs" / "full" / "last.pt"), load_model(tmp_path / "runs" / "part" / "last.pt")
    full, a, part, b = full_model.net, full_model.payload, part_model.net, part_model.payload
    assert a["epoch"] == b["epoch"] == 3
    for (name, x), y in zip(full.state_dict().items(), part.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)
    history = (tmp_path / "runs" / "part" / "history.csv").read_text().splitlines()
    assert len(history) == 5  # header + 4 epochs


def test_sigkill_mid_run_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path, sample_lists):
    run_dir = tmp_path / "runs" / "killed"
    command = [sys.executable, "-m", "landmarks.detector", *train_args(sample_lists, tmp_path, "killed"),
               "--epochs", "400", "--batch-size", "8"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run_dir / "last.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # well inside a later epoch
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    payload = read_checkpoint(run_dir / "last.pt")
    done = payload["epoch"] + 1
    assert 1 <= done < 400
    code = main(["--phase", "train", "--resume", str(run_dir), "--epochs", str(done + 2),
                 "--list-dir", str(sample_lists), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert code == 0 and read_checkpoint(run_dir / "last.pt")["epoch"] == done + 1


def test_weight_average_is_what_is_saved_and_a_resumed_run_keeps_it(tmp_path, sample_lists):
    ema = ("--ema", "0.9", "--augment")
    assert main(train_args(sample_lists, tmp_path, "full", "--epochs", "4", *ema)) == 0
    assert main(train_args(sample_lists, tmp_path, "part", "--epochs", "2", *ema)) == 0
    assert main(["--phase", "train", "--resume", str(tmp_path / "runs" / "part"), "--epochs", "4",
                 "--list-dir", str(sample_lists), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    full, part = (read_checkpoint(tmp_path / "runs" / name / "last.pt") for name in ("full", "part"))
    # The model saved is the average, not the weights the optimizer last left.
    assert any(not torch.allclose(full["model"][k], v) for k, v in full["training_weights"].items()
               if v.is_floating_point())
    for key in ("model", "training_weights"):
        for name, x in full[key].items():
            torch.testing.assert_close(x, part[key][name], rtol=1e-5, atol=1e-6, msg=f"{key} {name}")
    assert load_model(tmp_path / "runs" / "full" / "last.pt").spec.config.ema == 0.9
