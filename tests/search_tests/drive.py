"""A driver process for the fault tests: ``run`` with the fault-injecting trial function.

python -m tests.search_tests.drive SPEC STORAGE CHECKPOINT_DIR (local|ray)
"""

from __future__ import annotations

import sys

from search import Interrupted, SearchStopped, StorageError, load_spec, run
from training import freeze_at_exit

from .faults import trial_with_faults


def main(argv: list[str]) -> int:
    freeze_at_exit()  # as run_search.py does
    spec_path, storage, checkpoint_dir, executor, *outage = argv  # outage: seconds ridden out
    try:
        run(
            load_spec(spec_path),
            storage_url=storage,
            executor=executor,
            checkpoint_dir=checkpoint_dir,
            heartbeat_interval=1,
            trial_fn=trial_with_faults,
            outage_s=float(outage[0]) if outage else 60.0,
        )
    except Interrupted as stop:
        return 128 + stop.signum
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SearchStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
