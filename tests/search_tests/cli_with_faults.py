"""run_search.py as users run it, with the fault-injecting trial function of
tests/search_tests/faults.py: a fault from a plan file instead of timing.

python -m tests.search_tests.cli_with_faults [run_search.py's arguments]
"""

from __future__ import annotations

import functools
import sys

import run_search
import search

from .faults import trial_with_faults

if __name__ == "__main__":
    # run_search.main imports ``run`` from ``search`` when called, so it gets this one.
    search.run = functools.partial(search.run, trial_fn=trial_with_faults)
    raise SystemExit(run_search.main(sys.argv[1:]))
