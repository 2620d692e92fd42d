"""Search quality on `digits`, over several seeds: the paper's grid without pruning against TPE
with the default (Hyperband) pruner, both followed by the same confirmation runs.

    python benchmarks/search_efficiency.py [--optimizer adamsrt] [--epochs 8] [--seeds 0 1 2 3 4]
        [--tpe-trials 16] [--confirm-top 3] [--confirm-seeds 2]
        [--tpe-brackets {within,pooled,both}] [--jobs 1] [--workdir DIR]
        [--save results.json] [--load results.json]

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

``--tpe-brackets`` picks how the driver's sampler may see the TPE study's trials: ``within``
(the product: the driver loads each study with its Hyperband pruner, with which Optuna's
``_filter_study`` means to show the sampler only the trial's own bracket), ``pooled`` (the
driver's studies loaded with a NopPruner instead, as before that change: every bracket's
trials; ``search._driver.make_pruner`` patched in the study's process, while the trials still
prune with Hyperband, since ``search._trial`` binds its own ``make_pruner``), or ``both``: each
mode its own TPE study, under the same study name (a trial's Hyperband bracket hashes the study
name), against the same grid study; the report then says per seed whether the two modes
sampled the same parameters.

Within a study, trials run in-process one after another (``executor="local"``, one torch
thread), so epoch counts are exact and in order; they and the accuracies do not depend on
machine load. ``--jobs N`` runs N studies (per seed: the grid and one per TPE mode) at once in
separate processes: the same numbers, less wall time. ``--workdir DIR`` keeps the storages, so the same command
continues an interrupted run (trials resume from their checkpoints); ``--save`` writes each
finished study's measurements to a JSON file, which ``--load`` reports and plots again without
training (seeds with a study missing are left out and named); a ``--save`` file that exists
already keeps the studies it holds of the same setting (a grid measured for one mode serves
the other's run). Writes a plot of best-so-far against epochs consumed (one line style per
seed, one colour per method; the confirmed winners' means placed after the confirmation
epochs) to benchmarks/search_efficiency.png; prints only what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import re
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from unittest import mock

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import search._driver
import search._sampling
import search._trial
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
#: --tpe-brackets mode → the kind of its TPE studies (results key, directory); "tpe" alone, as
#: before the modes, is the product's own.
MODES = {"within": "tpe", "pooled": "tpe-pooled"}
MODE_COLORS = {"within": "tab:orange", "pooled": "tab:green"}
#: Pooled drawn wide and pale under the others: where both TPE modes coincide, both show.
WIDTHS = {"grid": 1.5, "within": 1.5, "pooled": 4.0}


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
        "sampled": [[t.number, t.params] for t in sorted(search, key=lambda t: t.number)],
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
    # Every TPE mode under one study name: a trial's Hyperband bracket hashes the study name.
    common = StudySpec(
        name=f"{'grid' if kind == 'grid' else 'tpe'}{seed}",
        dataset=args.dataset,
        model=args.model,
        optimizers=(args.optimizer,),
        epochs=args.epochs,
        seed=seed,
        batch_size=args.batch_size,
        confirm=ConfirmSpec(top=args.confirm_top, seeds=args.confirm_seeds),
    )
    if kind == "grid":
        # The sampler follows from the space: "grid".
        return common.replace(space="paper-grid", sampler=None, pruner=PrunerSpec(kind="none"))
    return common.replace(n_trials=args.tpe_trials)


def _driver_without_pruner(calls: list[str]) -> Any:
    """``make_pruner`` for the driver's studies in the pooled mode: a NopPruner, so Optuna's
    bracket filter leaves the sampler every trial. Records each call."""

    def make(spec: StudySpec) -> optuna.pruners.BasePruner:
        calls.append(spec.pruner.kind)
        return optuna.pruners.NopPruner()

    return make


def measure(seed: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one study (``kind``: "grid", "tpe" or "tpe-pooled") of one seed with its
    confirmation runs, in its own storage; return what was measured (plain data)."""
    torch.set_num_threads(1)
    spec = spec_for(seed, kind, args)
    calls: list[str] = []
    with contextlib.ExitStack() as stack:
        if kind == MODES["pooled"]:
            # The driver's studies only: a trial loads its own study with the pruner of
            # search._trial's own binding of make_pruner, which stays Hyperband.
            assert search._trial.make_pruner is search._sampling.make_pruner
            stack.enter_context(
                mock.patch.object(search._driver, "make_pruner", _driver_without_pruner(calls))
            )
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
        if kind == MODES["pooled"] and not calls:
            raise RuntimeError(f"{kind}{seed}: the driver never made its pruner; nothing patched")
        return study_result(url, spec.study_name(args.optimizer))


def short(hparams: dict[str, Any]) -> str:
    parts = [f"lr {hparams['lr']:.2g}", f"wd {hparams['weight_decay']:.2g}"]
    if "betas" in hparams:
        parts.append(f"β2 {hparams['betas'][1]:.4g}")
    if "momentum" in hparams:
        parts.append(f"momentum {hparams['momentum']:.3g}")
    return ", ".join(parts)


def report(rows: list[dict[str, Any]], mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Print one mode's table and summary against the grid; return the summary figures."""
    print(
        f"== TPE brackets: {mode} == {args.dataset} / {args.model} / {args.optimizer}, "
        f"{args.epochs} epochs per trial, batch {args.batch_size}; grid: paper-grid, no pruning; "
        f"TPE: {args.tpe_trials} trials, Hyperband; confirmation: top {args.confirm_top} on "
        f"{args.confirm_seeds} new seeds"
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
    summary: dict[str, Any] = {
        "mode": mode,
        "seeds": [r["seed"] for r in rows],
        "unreached": [r["seed"] for x, r in zip(ratios, rows, strict=True) if x is None],
    }
    if reached:
        spread = statistics.stdev(reached) if len(reached) > 1 else 0.0
        summary["reach"] = (statistics.fmean(reached), spread, len(reached))
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
            summary["reach_floor"] = statistics.fmean(floor)
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
    summary["within"], summary["gap"] = sum(within), (statistics.fmean(gaps), min(gaps))
    print(f"gap (points): mean {statistics.fmean(gaps):+.2f}, min {min(gaps):+.2f}")
    for key in ("grid", "tpe"):
        search_ep = [r[key]["search_epochs"] for r in rows]
        confirm = [r[key]["confirm_epochs"] for r in rows]
        summary[f"{key}_epochs"] = (statistics.fmean(search_ep), statistics.fmean(confirm))
        print(
            f"{key} epochs per seed: search {statistics.fmean(search_ep):.1f} "
            f"(min {min(search_ep)}, max {max(search_ep)}), confirmation "
            f"{statistics.fmean(confirm):.1f} (min {min(confirm)}, max {max(confirm)})"
        )
    reach_ok = len(reached) == n and statistics.fmean(reached) <= REACH_TARGET
    every_ok = all(within)
    summary["targets"] = (reach_ok, every_ok)
    print(
        f"targets: mean reach ratio <= {REACH_TARGET}: {'met' if reach_ok else 'NOT met'}; "
        f"confirmed winner within {TOLERANCE} points on every seed: "
        f"{'met' if every_ok else 'NOT met'}"
    )
    print()
    return summary


def compare(by_mode: dict[str, list[dict[str, Any]]], summaries: list[dict[str, Any]]) -> None:
    """Both TPE modes side by side: their summaries, and on each seed whether the two studies
    sampled the same parameters and got the same values."""
    print("== TPE brackets: within against pooled (the same grid) ==")
    for s in summaries:
        reach = (
            f"{s['reach'][0]:.3f} ± {s['reach'][1]:.3f} over {s['reach'][2]} seeds"
            if "reach" in s
            else "never reached"
        )
        print(
            f"{s['mode']:>7}: reach ratio {reach}; never reached on seeds {s['unreached'] or '-'}"
            f"; winner within {TOLERANCE}: {s['within']} of {len(s['seeds'])}; gap mean "
            f"{s['gap'][0]:+.2f}, min {s['gap'][1]:+.2f}; TPE epochs per seed: search "
            f"{s['tpe_epochs'][0]:.1f}, confirmation {s['tpe_epochs'][1]:.1f}; targets "
            f"{'met' if all(s['targets']) else 'NOT met'}"
        )
    within = {r["seed"]: r["tpe"] for r in by_mode["within"]}
    for r in by_mode["pooled"]:
        a, b = within.get(r["seed"]), r["tpe"]
        if a is None:
            continue
        pa, pb = dict(map(tuple, a.get("sampled", []))), dict(map(tuple, b.get("sampled", [])))
        if not pa or not pb:
            print(f"  seed {r['seed']}: sampled parameters not saved")
            continue
        same = sum(pa.get(n) == p for n, p in pb.items())
        print(
            f"  seed {r['seed']}: {same} of {len(pb)} search trials sampled the same parameters "
            f"in both modes; curves {'identical' if a['curve'] == b['curve'] else 'differ'}, "
            f"confirmed winner means {a['winner']['mean']:.2f} (within) / "
            f"{b['winner']['mean']:.2f} (pooled)"
        )
    print()


def plot(by_mode: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    fig, ax = plt.subplots(figsize=(12, 5.5))
    modes = list(by_mode)
    rows = by_mode[modes[0]]
    lines = [("grid", "tab:blue", "paper grid, no pruning", rows)]
    for mode in modes:
        label = "TPE + Hyperband pruner" + (f", brackets {mode}" if len(modes) > 1 else "")
        lines.append((mode, MODE_COLORS[mode], label, by_mode[mode]))
    for key, color, label, mode_rows in lines:
        wide = WIDTHS[key] > 2
        for i, r in enumerate(mode_rows):
            res = r["grid" if key == "grid" else "tpe"]
            style = STYLES[i % len(STYLES)]
            ax.step(
                *zip(*res["curve"], strict=True),
                where="post",
                color=color,
                linestyle=style,
                linewidth=WIDTHS[key],
                alpha=0.35 if wide else 0.8,
                zorder=1 if wide else 2,
                label=f"{label} (search)" if i == 0 else None,
            )
            ax.plot(
                res["search_epochs"] + res["confirm_epochs"],
                res["winner"]["mean"],
                marker="o" if key == "grid" else "s",
                markersize=11 if wide else 6,
                color=color,
                linestyle="none",
                alpha=0.35 if wide else 0.8,
                zorder=1 if wide else 2,
                label=f"{label}: confirmed winner mean,\nat search + confirmation epochs"
                if i == 0
                else None,
            )
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
        min(r[k]["curve"][-1][1], r[k]["winner"]["mean"])
        for mode_rows in by_mode.values()
        for r in mode_rows
        for k in ("grid", "tpe")
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


def _same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two settings measure the same studies (seeds and modes aside)."""
    apart = ("seeds", "tpe_brackets")
    return {k: v for k, v in a.items() if k not in apart} == {
        k: v for k, v in b.items() if k not in apart
    }


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
        "--tpe-brackets",
        choices=("within", "pooled", "both"),
        default="within",
        help="the driver's sampler fits each trial on its Hyperband bracket's trials (within, "
        "the product), on every trial (pooled: the driver's studies loaded without their "
        "pruner), or run both against one grid (default: within)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="studies run at once (processes; per seed: the grid and each TPE mode)",
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
        setting.setdefault("tpe_brackets", "within")  # saved before the modes
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
                "tpe_brackets",
            )
        }
        results = {}
        if args.save is not None and args.save.exists():
            # Studies of the same setting measured already (another mode's run: its grid) are
            # kept, not trained again.
            before = json.loads(args.save.read_text())
            if _same_setting(before.get("setting", {}), setting):
                results = before["results"]
    modes = ["within", "pooled"] if args.tpe_brackets == "both" else [args.tpe_brackets]
    if args.load is not None:  # every mode the file holds
        modes = [m for m in MODES if any(re.fullmatch(rf"{MODES[m]}\d+", k) for k in results)]
    kinds = ["grid"] + [MODES[m] for m in modes]
    if args.load is None:
        tasks = [
            (seed, kind) for seed in args.seeds for kind in kinds if f"{kind}{seed}" not in results
        ]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
            futures = {
                pool.submit(measure, seed, kind, args): (seed, kind) for seed, kind in tasks
            }
            for future in as_completed(futures):
                seed, kind = futures[future]
                results[f"{kind}{seed}"] = future.result()
                if args.save is not None:
                    save(args.save, {"setting": setting, "results": results})
    measured: dict[str, set[int]] = {}
    for key in results:
        match = re.fullmatch(r"([a-z-]+)(\d+)", key)
        if match:
            measured.setdefault(match[1], set()).add(int(match[2]))
    seeds = sorted(measured.get("grid", set())) if args.load is not None else sorted(args.seeds)
    by_mode = {
        mode: [
            {"seed": s, "grid": results[f"grid{s}"], "tpe": results[f"{MODES[mode]}{s}"]}
            for s in seeds
            if f"grid{s}" in results and f"{MODES[mode]}{s}" in results
        ]
        for mode in modes
    }
    missing = [f"{kind}{s}" for s in args.seeds for kind in kinds if f"{kind}{s}" not in results]
    by_mode = {mode: rows for mode, rows in by_mode.items() if rows}
    if not by_mode:
        print(f"no seed has its grid and a TPE study measured yet (missing: {', '.join(missing)})")
        return 1
    summaries = [report(rows, mode, args) for mode, rows in by_mode.items()]
    if len(by_mode) > 1:
        compare(by_mode, summaries)
    if missing:
        print(f"not measured yet (left out above): {', '.join(missing)}")
    plot(by_mode, args)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
