"""The per-process dataset cache: what ``load_raw`` read, what a dataset function returned."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["CACHE_SIZE", "clear_dataset_cache", "dataset_cache"]

_T = TypeVar("_T")

#: Datasets kept in memory per process: a worker running trial after trial of one study reads
#: its dataset once; two entries cover the train-only read of an up-front check and the run's.
CACHE_SIZE = 2


class _Cache:
    """A small least-recently-used map from a dataset's identity to what was read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._lock = threading.RLock()  # held while loading: one read per dataset, even racing

    def get(self, key: Hashable, load: Callable[[], _T]) -> _T:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            value = load()
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


dataset_cache = _Cache(CACHE_SIZE)


def clear_dataset_cache() -> None:
    """Forget every dataset read in this process (the next read goes to the source again)."""
    dataset_cache.clear()
