"""The record of a run: log file, TensorBoard scalars, loss history (CSV) and loss-curve plot."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np

from ..files import atomic_write

log = logging.getLogger("landmarks")


class RunRecord:
    """Log file, TensorBoard scalars, loss history (CSV) and loss-curve PNG of a run."""

    def __init__(self, run_dir: Path, active: bool, resume: bool,
                 plotted: tuple[str, str] = ("val_nme_box", "validation NME_box (%)")):
        self.run_dir, self.active, self.plotted = Path(run_dir), active, plotted
        self.history: list[dict] = []
        self.writer = None
        self.handler = None
        if not active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.run_dir / "history.csv").is_file():
            with open(self.run_dir / "history.csv") as handle:
                self.history = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                                for row in csv.DictReader(handle)]
        self.handler = logging.FileHandler(self.run_dir / "train.log")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(self.handler)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time
            log.warning("tensorboard is not installed; no TensorBoard scalars")

    def add(self, row: dict) -> None:
        if not self.active:
            return
        self.history = [r for r in self.history if int(r["epoch"]) < int(row["epoch"])] + [row]
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        with open(self.run_dir / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        if self.writer:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    group = "train" if key.startswith("train_") else "val" if key.startswith("val_") else "misc"
                    self.writer.add_scalar(f"{group}/{key.split('_', 1)[-1] if group != 'misc' else key}",
                                           value, int(row["epoch"]))
            self.writer.flush()
        plot_history(self.history, self.run_dir / "loss.png", self.plotted)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.handler:
            log.removeHandler(self.handler)
            self.handler.close()


def plot_history(history: list[dict], out_png: Path,
                 plotted: tuple[str, str] = ("val_nme_box", "validation NME_box (%)")) -> None:
    """Train and validation loss per epoch, a validation metric (``plotted``: key, label) on a
    second axis, and for stage 3 a second panel with the accuracy on faces and on non-faces."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    accuracy_keys = [k for k in ("val_acc_face", "val_acc_nonface", "train_acc_face", "train_acc_nonface")
                     if any(k in r for r in history)]
    panels = 2 if accuracy_keys else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4), dpi=100, squeeze=False)
    ax = axes[0, 0]
    ax.plot(epochs, [r.get("train_loss", np.nan) for r in history], label="train loss", color="tab:blue")
    if any("val_loss" in r for r in history):
        ax.plot(epochs, [r.get("val_loss", np.nan) for r in history], label="validation loss", color="tab:orange")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    key, label = plotted
    if any(key in r for r in history):
        twin = ax.twinx()
        twin.plot(epochs, [r.get(key, np.nan) for r in history], label=label, color="tab:green", linestyle="--")
        twin.set_ylabel(label.replace("validation ", ""))
        more = twin.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    ax.legend(lines, labels, loc="upper right")
    if accuracy_keys:
        acc = axes[0, 1]
        for key in accuracy_keys:
            acc.plot(epochs, [r.get(key, np.nan) for r in history], label=key.replace("_", " "),
                     linestyle="-" if key.startswith("val") else ":")
        acc.set_xlabel("epoch")
        acc.set_ylabel("accuracy")
        acc.grid(alpha=0.3)
        acc.legend(loc="lower right")
    fig.tight_layout()
    with atomic_write(out_png) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
