"""DistributedDataParallel on 2 CPU processes (gloo)."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, lists: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from landmarks import detector
    from landmarks.train import run

    captured = {}
    real_fit = run.fit

    def fit_and_keep(model, *args, **kwargs):
        result = real_fit(model, *args, **kwargs)
        captured["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        return result

    run.fit = fit_and_keep
    code = detector.main(["--phase", "train", "--list-dir", lists, "--runs-dir", f"{out}/runs", "--run-name", "ddp",
                          "--epochs", "2", "--max-steps", "3", "--batch-size", "8", "--augment", "--quiet",
                          "--no-cache", "--device", "cpu"])
    assert code == 0
    torch.save(captured["state"], f"{out}/rank{rank}.pt")


def test_two_processes_end_with_identical_weights(sample_lists, tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(sample_lists), str(tmp_path)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Only rank 0 writes the run folder, and the weights there are the trained ones.
    run = tmp_path / "runs" / "ddp"
    saved = torch.load(run / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(saved[k], a[k]) for k in a)
    assert (run / "train.log").read_text().count("epoch 2/2") == 1


def find_torchrun():
    beside_python = Path(sys.executable).parent / "torchrun"
    return str(beside_python) if beside_python.exists() else shutil.which("torchrun")


@pytest.mark.skipif(find_torchrun() is None, reason="torchrun not installed")
def test_torchrun_command_line(sample_lists, tmp_path):
    torchrun = find_torchrun()
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "landmarks.detector",
         "--phase", "train", "--list-dir", str(sample_lists), "--runs-dir", str(tmp_path / "runs"),
         "--run-name", "tr", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--quiet", "--no-cache",
         "--device", "cpu"], cwd=REPO, capture_output=True, text=True, timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "tr" / "last.pt").is_file()
    assert result.stdout.count("run folder:") == 1  # rank 0 alone reports
