"""The trials a driver has launched and not yet told: one registry, which the heartbeat reads.

The heartbeat records, every interval, that each trial in flight is alive, so that a driver
started after this one died finds its trials stale and queues them again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna

from ._storage import ResilientStorage
from ._trial import TrialJob


@dataclass
class Flight:
    """A trial the driver launched and has not told yet."""

    study: optuna.Study
    trial_id: int
    job: TrialJob
    handle: Any
    attempt: int = 1  # runs of the trial in this driver (a lost runner's trial runs again)
    worker: Any = None  # the trial's `worker` attribute last seen (it changes on a retry)
    epochs: int = 0
    last_progress: float | None = None  # when a runner started or last finished an epoch


class InFlight:
    """The driver's trials in flight, by trial id; safe to read from the heartbeat thread."""

    def __init__(self) -> None:
        self._flights: dict[int, Flight] = {}
        self._lock = threading.Lock()

    def add(self, flight: Flight) -> None:
        with self._lock:
            self._flights[flight.trial_id] = flight

    def pop(self, trial_id: int) -> Flight | None:
        with self._lock:
            return self._flights.pop(trial_id, None)

    def by_handle(self, handle: Any) -> Flight | None:
        with self._lock:
            return next((f for f in self._flights.values() if f.handle is handle), None)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._flights)

    def __iter__(self) -> Iterator[Flight]:
        with self._lock:
            return iter(list(self._flights.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._flights)


class Heartbeat:
    """Records a heartbeat for every trial in ``inflight`` each ``interval`` seconds."""

    def __init__(self, storage: ResilientStorage, inflight: InFlight, interval: float) -> None:
        self.storage, self.inflight, self.interval = storage, inflight, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            for trial_id in self.inflight.ids():
                with contextlib.suppress(Exception):  # a missed beat is made up next time
                    self.storage.record_heartbeat(trial_id)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
