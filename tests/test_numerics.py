"""Numerical safety: a NaN loss stops the run and keeps the last good checkpoint."""

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
