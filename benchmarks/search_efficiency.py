"""Search quality on `digits`, over several seeds: the paper's grid without pruning against TPE
with the default (Hyperband) pruner, both followed by the same confirmation runs.

    python benchmarks/search_efficiency.py [--optimizer adamsrt] [--epochs 8] [--seeds 0 1 2 3 4]
        [--tpe-trials 16] [--confirm-top 3] [--confirm-seeds 2] [--jobs 1]
        [--workdir DIR] [--save results.json] [--load results.json]

Per seed s, each study in its own SQLite storage and checkpoint directory (temporary unless
``--workdir``):

(a) the paper grid (space "paper-grid", grid sampler, no pruning: weight decay × β2, lr fixed),
(b) TPE (space "default": lr, weight decay, β2) with the default Hyperband pruner,

each with ``confirm = ConfirmSpec(top=K, seeds=S)``: once a study's search trials are done, its
K best COMPLETE trials are trained again, unpruned, on seeds s+1 … s+S. The two studies of one
seed share those seeds, hence the same validation splits (the split is drawn from the seed).

Measured per seed:

- reach: the epochs TPE's search trials consumed (the sum of their reported epochs, pruned
  trials included, in completion order, confirmation runs left out) until its best-so-far
  COMPLETE value is ≥ the grid's best − 0.5 points; the reach ratio divides it by the grid's
  total search epochs. Target: ≤ 0.2 on average over the seeds.
- confirmed comparison: the winner the export would pick from each study
  (``search.best_candidate``: the best mean over the confirmation seeds, the search seed's own
  value left out). The grid's parameters are a discrete weight decay × β2 at lr 1e-3 while
  TPE's are continuous, so "the confirmed TPE winner is also the grid's confirmed best" is
  judged by value: TPE's confirmed mean is within 0.5 points of (or above) the grid's best
  confirmed mean. Target: on every seed.
- confirmation epochs, counted apart from the search epochs: they are a cost of both methods.

Within a study, trials run in-process one after another (``executor="local"``, one torch
thread), so epoch counts are exact and in order; they and the accuracies do not depend on
machine load. ``--jobs N`` runs N studies (two per seed) at once in separate processes: the
same numbers, less wall time. ``--workdir DIR`` keeps the storages, so the same command
continues an interrupted run (trials resume from their checkpoints); ``--save`` writes each
finished study's measurements to a JSON file, which ``--load`` reports and plots again without
training (seeds with a study missing are left out and named). Writes a plot of best-so-far
against epochs consumed (one line style per seed; the confirmed winners' means placed after
the confirmation epochs) to benchmarks/search_efficiency.png; prints only what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import (
    ConfirmSpec,
    PrunerSpec,
    StudySpec,
    best_candidate,
    counted_trials,
    open_storage,
    run,
)

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.5  # points of validation accuracy
REACH_TARGET = 0.2  # mean TPE reach / grid search epochs
STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))  # one per seed


def split(trials: list[FrozenTrial]) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """(search trials, confirmation trials) among the counted trials of a study."""
    counted = counted_trials(trials)
    return (
        [t for t in counted if "confirms" not in t.user_attrs],
        [t for t in counted if "confirms" in t.user_attrs],
    )


def epochs(trials: list[FrozenTrial]) -> int:
    return sum(len(t.intermediate_values) for t in trials)


def curve(search: list[FrozenTrial]) -> list[tuple[int, float]]:
    """(epochs consumed so far, best COMPLETE value so far in %) after each search trial."""
    points, used, best = [], 0, float("-inf")
    for t in sorted(search, key=lambda t: (t.datetime_complete, t.number)):
        used += len(t.intermediate_values)
        if t.state == TrialState.COMPLETE:
            best = max(best, 100 * t.value)
        points.append((used, best))
    return points


def epochs_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    return next((e for e, b in points if b >= target), None)


def study_result(url: str, name: str) -> dict[str, Any]:
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()
    search, confirming = split(trials)
    win = best_candidate(trials)
    if win is None or not win.confirmed:
        raise RuntimeError(f"study {name}: no confirmed winner (trials: {len(trials)})")
    values = [100 * win.confirmations[s] for s in sorted(win.confirmations)]
    return {
        "curve": curve(search),
        "search_epochs": epochs(search),
        "confirm_epochs": epochs(confirming),
        "states": {
            s.name.lower(): sum(t.state == s for t in search)
            for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
        "confirm_runs": sum(t.state == TrialState.COMPLETE for t in confirming),
        "winner": {
            "trial": win.trial.number,
            "hparams": win.trial.user_attrs["hparams"],
            "search_value": 100 * win.trial.value,
            "mean": statistics.fmean(values),
            "std": statistics.pstdev(values),
            "seeds": sorted(win.confirmations),
        },
    }


def spec_for(seed: int, kind: str, args: argparse.Namespace) -> StudySpec:
    common = StudySpec(
        name=f"{kind}{seed}",
        dataset=args.dataset,
        model=args.model,
        optimizers=(args.optimizer,),
        epochs=args.epochs,
        seed=seed,
        batch_size=args.batch_size,
        confirm=ConfirmSpec(top=args.confirm_top, seeds=args.confirm_seeds),
    )
    if kind == "grid":
        return common.replace(space="paper-grid", sampler="grid", pruner=PrunerSpec(kind="none"))
    return common.replace(n_trials=args.tpe_trials)


def measure(seed: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one study (``kind``: "grid" or "tpe") of one seed with its confirmation runs, in
    its own storage; return what was measured (plain data)."""
    torch.set_num_threads(1)
    spec = spec_for(seed, kind, args)
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            where = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:  # kept: the same command continues an interrupted study
            where = args.workdir / f"{kind}{seed}"
            where.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{where}/efficiency.db"
        run(
            spec,
            storage_url=url,
            executor="local",
            checkpoint_dir=where / "checkpoints",
            say=lambda _: None,
        )
        return study_result(url, spec.study_name(args.optimizer))


def short(hparams: dict[str, Any]) -> str:
    parts = [f"lr {hparams['lr']:.2g}", f"wd {hparams['weight_decay']:.2g}"]
    if "betas" in hparams:
        parts.append(f"β2 {hparams['betas'][1]:.4g}")
    if "momentum" in hparams:
        parts.append(f"momentum {hparams['momentum']:.3g}")
    return ", ".join(parts)


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    """Print the table and the summary; return whether both targets are met."""
    print(
        f"{args.dataset} / {args.model} / {args.optimizer}, {args.epochs} epochs per trial, "
        f"batch {args.batch_size}; grid: paper-grid, no pruning; TPE: {args.tpe_trials} trials, "
        f"Hyperband; confirmation: top {args.confirm_top} on {args.confirm_seeds} new seeds"
    )
    print(
        f"reach = search epochs until best-so-far >= grid best - {TOLERANCE} points; "
        f"gap = TPE confirmed mean - grid best confirmed mean (points)"
    )
    header = (
        f"{'seed':>4} {'grid ep':>7} {'grid reach':>10} {'grid best':>9} {'grid conf':>9} "
        f"{'tpe ep':>6} {'tpe reach':>9} {'ratio':>5} {'tpe best':>8} {'tpe conf':>8} "
        f"{'gap':>6} {'within':>6} {'conf ep grid/tpe':>16}"
    )
    print(header)
    ratios, within = [], []
    for r in rows:
        g, t = r["grid"], r["tpe"]
        grid_best = g["curve"][-1][1]
        target = grid_best - TOLERANCE
        g_reach = epochs_to_reach(g["curve"], target)
        t_reach = epochs_to_reach(t["curve"], target)
        ratio = t_reach / g["search_epochs"] if t_reach is not None else None
        ratios.append(ratio)
        gap = t["winner"]["mean"] - g["winner"]["mean"]
        ok = gap >= -TOLERANCE
        within.append(ok)
        print(
            f"{r['seed']:>4} {g['search_epochs']:>7} {g_reach!s:>10} {grid_best:>9.2f} "
            f"{g['winner']['mean']:>9.2f} {t['search_epochs']:>6} {t_reach or '-'!s:>9} "
            f"{f'{ratio:.2f}' if ratio is not None else '-':>5} {t['curve'][-1][1]:>8.2f} "
            f"{t['winner']['mean']:>8.2f} {gap:>+6.2f} {'yes' if ok else 'NO':>6} "
            f"{str(g['confirm_epochs']) + '/' + str(t['confirm_epochs']):>16}"
        )
    print()
    print("confirmed winners (mean ± std over the confirmation seeds; search-seed value):")
    for r in rows:
        for key in ("grid", "tpe"):
            w, st = r[key]["winner"], r[key]["states"]
            print(
                f"  seed {r['seed']} {key:<4} #{w['trial']:<3} {short(w['hparams']):<40} "
                f"{w['mean']:6.2f} ± {w['std']:.2f} on seeds {w['seeds']} "
                f"(search {w['search_value']:.2f}); search trials: {st['complete']} complete, "
                f"{st['pruned']} pruned, {st['fail']} failed"
            )
    print()
    reached = [x for x in ratios if x is not None]
    n = len(rows)
    if reached:
        spread = statistics.stdev(reached) if len(reached) > 1 else 0.0
        print(
            f"reach ratio: {statistics.fmean(reached):.3f} ± {spread:.3f} (mean ± sample std) "
            f"over {len(reached)} of {n} seeds"
            + (f"; not reached on {n - len(reached)} seed(s)" if len(reached) < n else "")
        )
        if len(reached) < n:
            floor = [
                x if x is not None else r["tpe"]["search_epochs"] / r["grid"]["search_epochs"]
                for x, r in zip(ratios, rows, strict=True)
            ]
            print(
                f"  with an unreached seed at its whole search (a lower bound: it never "
                f"reached): mean >= {statistics.fmean(floor):.3f} over {n} seeds"
            )
    else:
        print(f"reach ratio: grid best - {TOLERANCE} never reached on any of {n} seeds")
    print(
        f"confirmed TPE winner within {TOLERANCE} points of (or above) the grid's best "
        f"confirmed mean: {sum(within)} of {n} seeds"
    )
    gaps = [r["tpe"]["winner"]["mean"] - r["grid"]["winner"]["mean"] for r in rows]
    print(f"gap (points): mean {statistics.fmean(gaps):+.2f}, min {min(gaps):+.2f}")
    for key in ("grid", "tpe"):
        search = [r[key]["search_epochs"] for r in rows]
        confirm = [r[key]["confirm_epochs"] for r in rows]
        print(
            f"{key} epochs per seed: search {statistics.fmean(search):.1f} "
            f"(min {min(search)}, max {max(search)}), confirmation "
            f"{statistics.fmean(confirm):.1f} (min {min(confirm)}, max {max(confirm)})"
        )
    reach_ok = len(reached) == n and statistics.fmean(reached) <= REACH_TARGET
    every_ok = all(within)
    print(
        f"targets: mean reach ratio <= {REACH_TARGET}: {'met' if reach_ok else 'NOT met'}; "
        f"confirmed winner within {TOLERANCE} points on every seed: "
        f"{'met' if every_ok else 'NOT met'}"
    )
    return reach_ok and every_ok


def plot(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    fig, ax = plt.subplots(figsize=(12, 5.5))
    first = True
    for i, r in enumerate(rows):
        style = STYLES[i % len(STYLES)]
        for key, color, label in (
            ("grid", "tab:blue", "paper grid, no pruning"),
            ("tpe", "tab:orange", "TPE + Hyperband pruner"),
        ):
            res = r[key]
            ax.step(
                *zip(*res["curve"], strict=True),
                where="post",
                color=color,
                linestyle=style,
                alpha=0.8,
                label=f"{label} (search)" if first else None,
            )
            ax.plot(
                res["search_epochs"] + res["confirm_epochs"],
                res["winner"]["mean"],
                marker="o" if key == "grid" else "s",
                color=color,
                linestyle="none",
                alpha=0.8,
                label=f"{label}: confirmed winner mean,\nat search + confirmation epochs"
                if first
                else None,
            )
        first = False
    for i, r in enumerate(rows):  # one legend entry per seed's line style
        ax.plot([], [], color="gray", linestyle=STYLES[i % len(STYLES)], label=f"seed {r['seed']}")
    grid_epochs = statistics.fmean(r["grid"]["search_epochs"] for r in rows)
    ax.axvline(REACH_TARGET * grid_epochs, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel("epochs consumed (search, then confirmation)")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(
        f"Search quality on {args.dataset} / {args.model} / {args.optimizer} "
        f"({len(rows)} seeds; dotted vertical: {REACH_TARGET} × grid search epochs)"
    )
    low = min(
        min(r[k]["curve"][-1][1], r[k]["winner"]["mean"]) for r in rows for k in ("grid", "tpe")
    )
    ax.set_ylim(bottom=max(0, low - 3), top=100.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


def save(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--optimizer", default="adamsrt")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tpe-trials", type=int, default=16)
    parser.add_argument("--confirm-top", type=int, default=3)
    parser.add_argument("--confirm-seeds", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--jobs", type=int, default=1, help="studies run at once (processes; 2 per seed)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the storages and checkpoints here (default: temporary); "
        "the same command continues an interrupted run",
    )
    parser.add_argument("--save", type=Path, help="write each study's measurements here (JSON)")
    parser.add_argument(
        "--load", type=Path, help="report and plot the measurements of --save; train nothing"
    )
    parser.add_argument("--plot", type=Path, default=HERE / "search_efficiency.png")
    args = parser.parse_args(argv)
    if args.confirm_top < 1 or args.confirm_seeds < 1:
        parser.error("--confirm-top and --confirm-seeds must be at least 1")
    torch.set_num_threads(1)
    if args.load is not None:
        saved = json.loads(args.load.read_text())
        results, setting = saved["results"], saved["setting"]
        for key, value in setting.items():
            setattr(args, key, value)
    else:
        setting = {
            k: getattr(args, k)
            for k in (
                "dataset",
                "model",
                "optimizer",
                "epochs",
                "batch_size",
                "tpe_trials",
                "confirm_top",
                "confirm_seeds",
                "seeds",
            )
        }
        results = {}
        tasks = [(seed, kind) for seed in args.seeds for kind in ("grid", "tpe")]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            futures = {
                pool.submit(measure, seed, kind, args): (seed, kind) for seed, kind in tasks
            }
            for future in as_completed(futures):
                seed, kind = futures[future]
                results[f"{kind}{seed}"] = future.result()
                if args.save is not None:
                    save(args.save, {"setting": setting, "results": results})
    rows = [
        {"seed": seed, "grid": results[f"grid{seed}"], "tpe": results[f"tpe{seed}"]}
        for seed in sorted({int(k[4:] if k.startswith("grid") else k[3:]) for k in results})
        if f"grid{seed}" in results and f"tpe{seed}" in results
    ]
    missing = [
        f"{kind}{seed}"
        for seed in args.seeds
        for kind in ("grid", "tpe")
        if f"{kind}{seed}" not in results
    ]
    if not rows:
        print(f"no seed has both studies measured yet (missing: {', '.join(missing)})")
        return 1
    report(rows, args)
    if missing:
        print(f"not measured yet (left out above): {', '.join(missing)}")
    plot(rows, args)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
