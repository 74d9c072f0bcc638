"""Numerical safety: a NaN loss stops the run and keeps the last good checkpoint; numbers under
float32's normal range do not slow training."""

import platform

import pytest
import torch

from landmarks.checkpoint import read_checkpoint
from landmarks.detector import main

from conftest import REPO, run_main, train_args


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path, sample_lists, capsys,
                                                                                  monkeypatch):
    from landmarks.train.tasks import LandmarkTask
    real, calls = LandmarkTask.step, {"train": 0}

    def poisoned(self, model, batch, device):
        out = real(self, model, batch, device)
        if model.training:
            calls["train"] += 1
            if calls["train"] == 4:  # epoch 2, step 2 (2 steps an epoch)
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(LandmarkTask, "step", poisoned)
    code, err = run_main(train_args(sample_lists, tmp_path, "nan", "--epochs", "3", "--batch-size", "40"), capsys)
    assert code == 1 and "loss became nan at epoch 2, step 2" in err
    assert read_checkpoint(tmp_path / "runs" / "nan" / "last.pt")["epoch"] == 0


def test_gradient_clipping_bounds_the_step(tmp_path, sample_lists):
    assert main(train_args(sample_lists, tmp_path, "clip", "--epochs", "1", "--grad-clip", "0.5")) == 0


def test_plain_sgd_on_the_stage1_net_diverges_without_clipping_and_trains_with_it(tmp_path, sample_lists, capsys):
    # The walkthrough's SGD command: without --grad-clip the first steps blow up, and the error says what helps.
    sgd = ["--config", str(REPO / "configs" / "stage1.toml"), "--optimizer", "sgd", "--epochs", "4", "--batch-size", "16"]
    code, err = run_main(train_args(sample_lists, tmp_path, "plain", *sgd, "--lr", "0.01"), capsys)
    assert code == 1 and "loss became" in err and "try --grad-clip 10" in err
    code, err = run_main(train_args(sample_lists, tmp_path, "clipped", *sgd, "--lr", "0.003", "--grad-clip", "10"), capsys)
    assert code == 0, err
    history = (tmp_path / "runs" / "clipped" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    losses = [float(line.split(",")[header.index("train_loss")]) for line in history[1:]]
    assert losses[-1] < losses[0] / 2


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="flush-to-zero is an x86 setting here")
def test_training_counts_numbers_under_the_normal_range_as_zero(tmp_path, sample_lists, monkeypatch):
    # Weights decayed under float32's normal range took each epoch onto the CPU's slow path.
    from landmarks.train import run
    real_fit, seen = run.fit, []

    def fit_and_look(*args, **kwargs):
        seen.append(float(torch.tensor([1e-39]) * 2))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(run, "fit", fit_and_look)
    assert main(train_args(sample_lists, tmp_path, "flush", "--epochs", "1", "--max-steps", "1")) == 0
    assert seen == [0.0]
    assert float(torch.tensor([1e-39]) * 2) == pytest.approx(2e-39)  # PyTorch's default again afterwards
