"""Numerical safety: a NaN loss stops the run and keeps the last good checkpoint."""

from landmarks.checkpoint import read_checkpoint
from landmarks.detector import main

from conftest import run_main, train_args


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
