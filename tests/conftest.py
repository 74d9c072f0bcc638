"""Shared fixtures: the shipped sample data and small images made on the fly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_lists(tmp_path_factory) -> Path:
    """Stage-1 lists of the shipped sample, built once per session."""
    from landmarks.data import build_lists

    out = tmp_path_factory.mktemp("lists")
    build_lists(SAMPLE, out, test_ratio=0.25, seed=0)
    return out


def write_image(path: Path, width: int = 120, height: int = 100, channels: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image if channels > 1 else image[:, :, 0])
    return path


def label_line(name: str, box=(20, 20, 80, 80), points=None) -> str:
    """A valid label.txt line; points default to a grid inside the box."""
    if points is None:
        x1, y1, x2, y2 = box
        xs = np.linspace(x1 + 5, x2 - 5, 7)
        ys = np.linspace(y1 + 5, y2 - 5, 3)
        points = [(x, y) for y in ys for x in xs]
    numbers = list(box) + [v for p in points for v in p]
    return " ".join([name] + [f"{v:g}" for v in numbers])


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A data folder I/ with two random images and three faces."""
    folder = tmp_path / "data" / "I"
    write_image(folder / "a.jpg", seed=1)
    write_image(folder / "b.jpg", seed=2)
    lines = [label_line("a.jpg"), label_line("a.jpg", (50, 10, 110, 70)), label_line("b.jpg")]
    (folder / "label.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "data"


def run_main(args, capsys):
    """main(args) -> (exit code, stderr stripped)."""
    from landmarks.detector import main

    code = main(args)
    return code, capsys.readouterr().err.strip()


def train_args(lists, tmp, name, *extra):
    return ["--phase", "train", "--list-dir", str(lists), "--runs-dir", str(tmp / "runs"), "--run-name", name,
            "--cache-dir", str(tmp / "cache"), "--quiet", "--device", "cpu", *extra]
