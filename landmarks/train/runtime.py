"""Where training runs: the device, the processes torchrun started, and the allocator."""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back.

    A training step frees and re-allocates the same activation buffers, megabytes
    each; by default glibc returns them to the OS and the next step page-faults
    them back in (about 4,000 faults a step for stage 1). Returns False where the
    C library is not glibc, which changes nothing.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 256 << 20) and mallopt(m_trim_threshold, 256 << 20))


@contextmanager
def denormals_flushed():
    """Within it, float results and inputs under float32's normal range (1.2e-38) count as 0 on
    the CPU, where each such number takes a slow path of a hundred cycles or more.

    Weights the net stops using decay towards 0 under the L2 term, Adam's moments with them;
    once under the normal range every product with them takes that path: a 68-point run's
    epochs went from 10 s to 29 s over 106 epochs as its attention layer's weights sank
    (docs/300w.md, *Training time*). The setting belongs to each thread, and PyTorch's worker
    threads take it from the thread that starts them: entered before the first parallel
    operation, it reaches them all. Off again on the way out, PyTorch's default.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"--device must be cpu, cuda or auto, got {name!r}")
    return torch.device(name)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: dict, device) -> dict:
        """Add numeric ``values`` across ranks."""
        if self.world_size == 1:
            return values
        keys = sorted(values)
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return dict(zip(keys, tensor.tolist()))


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun set up (WORLD_SIZE > 1), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())
