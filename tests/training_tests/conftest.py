"""Run the trainer tests on one intra-op thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    # The tiny 8x8 models gain nothing from intra-op threads, and on a shared 2-core machine
    # OpenMP's spinning threads made single epochs 100x slower whenever another process ran.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
