"""Ctrl-C and SIGTERM while a search runs: they set a flag the driver's loop checks, so the
trials in flight are queued again before the driver stops; a second press is part of the same
stop."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def signals_to_flag(executor: Any) -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM set a flag the loop checks; an in-process trial is interrupted."""
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)
        if getattr(executor, "training", False):
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, _after_stop(h) if caught else h)


# After a stop, a Ctrl-C pressed again within this many seconds belongs to the same stop.
STOP_GRACE_S = 10.0


def _after_stop(previous: Any) -> Callable[[int, object], None]:
    """A handler that ignores the signal for STOP_GRACE_S after a stop, then hands it to
    ``previous``. Restored at once, the default handler turned a second Ctrl-C, pressed while
    the first was reported, into a KeyboardInterrupt raised in whatever ran then (a progress
    bar's ``__del__`` at exit: a traceback on the terminal)."""
    stopped = time.monotonic()

    def handler(signum: int, frame: object) -> None:
        if time.monotonic() - stopped < STOP_GRACE_S:
            return
        original = previous if previous is not None else signal.SIG_DFL
        signal.signal(signum, original)
        if callable(original):
            original(signum, frame)
        elif original == signal.SIG_DFL:
            os.kill(os.getpid(), signum)  # now with the default action

    return handler
