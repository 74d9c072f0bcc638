"""The allocator setting the train phase makes: freed buffers are reused, not faulted back in."""

import platform
import subprocess
import sys

import pytest

CHURN = """
import resource, sys, torch
from landmarks.train.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def churn():
    for _ in range(10):
        buffers = [torch.ones(10 << 20) for _ in range(3)]  # 40 MB: glibc maps these afresh by default
        del buffers
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_keep_freed_memory_stops_page_faults_on_reused_buffers():
    assert page_faults("default") > 100_000  # 30 x 40 MB faulted in again, 4 KB at a time
    assert page_faults("keep") < 1_000
