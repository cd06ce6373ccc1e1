import os
import sys

import pytest
import torch

from charrnn.allocator import keep_freed_memory


def resident_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc setting")
def test_freed_blocks_stay_in_the_process_for_the_next_step():
    assert keep_freed_memory()
    assert keep_freed_memory()  # a second call is harmless
    before = resident_mib()
    block = torch.ones(64, 2**20)  # 256 MiB, every page touched
    del block
    # Left to its defaults glibc unmaps a block this large as soon as it is freed; kept, the
    # next allocation of that size reuses the pages without faulting them in again.
    assert resident_mib() - before > 200
