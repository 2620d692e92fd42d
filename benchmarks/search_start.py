"""How long a search takes to start: a private local Ray up, then its runners warm (imports,
the dataset, a model and an optimizer) and back from a first, empty trial.

    python benchmarks/search_start.py [--repeats 5] [--workers 2]

Each start runs in a fresh process, as ``run_search.py`` does, alternating between this
search's Ray settings and Ray's defaults (which start one idle worker per CPU ahead of the
runners); it prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("search", "ray-defaults")


def one_start(settings: str, workers: int, tmp: str) -> dict[str, float]:
    """In this process: start Ray and ``workers`` warm runners; the seconds each took."""
    sys.path.insert(0, str(ROOT))
    import ray

    if settings == "ray-defaults":
        init = ray.init

        def init_with_ray_defaults(*args, **kwargs):  # type: ignore[no-untyped-def]
            kwargs.pop("_system_config", None)
            return init(*args, **kwargs)

        ray.init = init_with_ray_defaults
    from search import load_spec
    from search._executors import RayRunners, start_ray
    from search._trial import warm_up

    spec = load_spec(ROOT / "studies" / "demo.toml")
    start = time.perf_counter()
    owned = start_ray(None, Path(tmp) / "ray.log", [])
    up = time.perf_counter()
    warm = functools.partial(warm_up, spec, f"sqlite:///{tmp}/start.db", None, 60.0)
    pool = RayRunners(
        None, 1, 0, _empty_trial, lambda _: None, owned=owned, workers=workers, warm_up=warm
    )
    ray.get([runner.run.remote(None) for runner in pool.idle])
    warm_s = time.perf_counter()
    pool.close()
    return {"ray": up - start, "runners": warm_s - up, "total": warm_s - start}


def _empty_trial(job: object):  # type: ignore[no-untyped-def]
    from search import TrialOutcome

    return TrialOutcome("complete", 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="start-") as tmp:
            print(json.dumps(one_start(args.child, args.workers, tmp)))
        return 0
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
    for _ in range(args.repeats):
        for settings in SETTINGS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", settings, "--workers", str(args.workers)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs[settings].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.workers} runners, median of {args.repeats} interleaved starts (seconds):")
    print(f"{'settings':<14} {'Ray up':>8} {'runners warm':>13} {'total':>8}")
    medians = {}
    for settings, rows in runs.items():
        medians[settings] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        m = medians[settings]
        print(f"{settings:<14} {m['ray']:8.2f} {m['runners']:13.2f} {m['total']:8.2f}")
    ratio = medians["search"]["total"] / medians["ray-defaults"]["total"]
    print(f"start, this search ÷ Ray's defaults: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
