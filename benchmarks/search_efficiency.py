"""Search efficiency on `digits`: the paper's full grid without pruning against TPE with the
default (Hyperband) pruner, over 3 seeds. Reports the epochs each needs to come within 0.5
points of the grid's best validation accuracy, the final bests, and plots best-so-far against
epochs consumed.

    python benchmarks/search_efficiency.py [--optimizer adamsrt] [--epochs 8] [--seeds 0 1 2]

Trials run in-process one after another (no Ray), so "epochs consumed" is exact and in order.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import StudySpec, open_storage, run
from search._spec import PrunerSpec

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.5  # points of validation accuracy
STYLES = ("-", "--", ":")  # one per seed


def curve(url: str, name: str) -> list[tuple[int, float]]:
    """(epochs consumed so far, best validation accuracy so far in %) after each trial."""
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    points, epochs, best = [], 0, float("-inf")
    for t in sorted(study.trials, key=lambda t: t.datetime_complete):
        epochs += len(t.intermediate_values)
        if t.state == optuna.trial.TrialState.COMPLETE:
            best = max(best, 100 * t.value)
        points.append((epochs, best))
    return points


def epochs_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    return next((e for e, b in points if b >= target), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adamsrt")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tpe-trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plot", type=Path, default=HERE / "search_efficiency.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    fig, ax = plt.subplots(figsize=(8, 5))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/efficiency.db"
        for seed in args.seeds:
            common = dict(
                dataset="digits",
                model="resnet20",
                optimizers=(args.optimizer,),
                epochs=args.epochs,
                seed=seed,
                batch_size=64,
            )
            grid = StudySpec(
                name=f"grid{seed}",
                space="paper-grid",
                sampler="grid",
                pruner=PrunerSpec(kind="none"),
                **common,
            )
            tpe = StudySpec(name=f"tpe{seed}", n_trials=args.tpe_trials, **common)
            for spec in (grid, tpe):
                run(spec, storage_url=url, executor="local", say=lambda _: None)
            a = curve(url, grid.study_name(args.optimizer))
            b = curve(url, tpe.study_name(args.optimizer))
            target = a[-1][1] - TOLERANCE
            rows.append(
                (
                    seed,
                    a[-1][0],
                    epochs_to_reach(a, target),
                    a[-1][1],
                    b[-1][0],
                    epochs_to_reach(b, target),
                    b[-1][1],
                )
            )
            ax.step(
                *zip(*a, strict=False),
                where="post",
                color="tab:blue",
                linestyle=STYLES[seed % len(STYLES)],
                alpha=0.8,
                label="paper grid, no pruning" if seed == args.seeds[0] else None,
            )
            ax.step(
                *zip(*b, strict=False),
                where="post",
                color="tab:orange",
                linestyle=STYLES[seed % len(STYLES)],
                alpha=0.8,
                label="TPE + Hyperband pruner" if seed == args.seeds[0] else None,
            )
    print(
        f"digits / resnet20 / {args.optimizer}, {args.epochs} epochs per trial; reach = epochs until best >= grid best - {TOLERANCE}"
    )
    print(
        f"{'seed':>4} {'grid epochs':>11} {'grid reach':>10} {'grid best':>9} {'tpe epochs':>10} {'tpe reach':>9} {'tpe best':>8} {'tpe reach / grid epochs':>24}"
    )
    for seed, ae, ar, ab, be, br, bb in rows:
        ratio = f"{br / ae:.2f}" if br is not None else "not reached"
        print(
            f"{seed:>4} {ae:>11} {ar!s:>10} {ab:>9.2f} {be:>10} {br!s:>9} {bb:>8.2f} {ratio:>24}"
        )
    reached = [br / ae for _, ae, _, _, _, br, _ in rows if br is not None]
    if reached:
        print(
            f"mean (tpe epochs to reach) / (grid epochs): {statistics.mean(reached):.2f} over {len(reached)} of {len(rows)} seeds"
        )
    ax.set_xlabel("epochs consumed")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(
        f"Search efficiency on digits / resnet20 / {args.optimizer} ({len(args.seeds)} seeds)"
    )
    ax.set_ylim(bottom=max(0, min(min(r[3], r[6]) for r in rows) - 3))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
