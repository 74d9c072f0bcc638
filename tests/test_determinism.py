"""Determinism: the same seed and list give the same weights on a CPU."""

import torch

from landmarks.checkpoint import load_model
from landmarks.detector import main

from conftest import train_args


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, sample_lists):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(train_args(sample_lists, tmp_path, name, "--epochs", "2", "--seed", seed, "--augment")) == 0
    a, b, c = (load_model(tmp_path / "runs" / n / "last.pt").net.state_dict() for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
