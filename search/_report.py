"""The comparison of the optimizers a search tuned: per dataset/model, a Markdown table of each
optimizer's confirmed mean ± std over its seeds (or its unconfirmed best, marked), its budget
and trial counts, and a PNG of the means with error bars beside the winners' curves.
"""

from __future__ import annotations

import io
import re
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from training import atomic_write

from ._export import Candidate, SearchedStudy, searched_studies
from ._storage import redact
from ._studies import counted_trials

NOTE = (
    "A confirmed value is the mean ± population std of the configuration re-trained on new "
    "seeds (the search's own run is left out: it is the one selected for). An unconfirmed "
    "value is the best single run of the search, biased upwards; confirm it with "
    "`run_search.py --confirm-top K --confirm-seeds S`."
)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _value(c: Candidate) -> str:
    if not c.confirmed:
        return f"{_pct(c.trial.value)} (unconfirmed)"
    return f"{_pct(c.score)} ± {100 * statistics.pstdev(c.confirmations.values()):.2f}"


def _counts(trials: list[FrozenTrial]) -> str:
    search = [t for t in counted_trials(trials) if "confirms" not in t.user_attrs]
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return " / ".join(str(sum(t.state == s for t in search)) for s in states)


def _budget(study: SearchedStudy) -> str:
    b = study.winner.provenance
    subset = f", {b['train_subset']} images" if b.get("train_subset") else ""
    return f"{b['epochs']} (batch {b['batch_size']}{subset})"


def markdown(dataset: str, model: str, rows: Sequence[SearchedStudy], storage_url: str) -> str:
    """The table of one dataset/model, best first."""
    lines = [
        f"# {dataset} / {model}",
        "",
        f"Storage `{redact(storage_url)}`, "
        f"written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "| optimizer | validation accuracy | seeds | search best | trials complete / pruned / "
        "failed | epochs per trial | study |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.best
        seeds = ", ".join(map(str, sorted(c.confirmations))) or "–"
        lines.append(
            f"| {r.setting[2]} | {_value(c)} | {seeds} | {_pct(c.trial.value)} "
            f"(#{c.trial.number}) | {_counts(r.trials)} | {_budget(r)} | `{r.name}` |"
        )
    return "\n".join(
        [*lines, "", NOTE, "", f"![{dataset} / {model}]({file_stem(dataset, model)}.png)", ""]
    )


def figure(dataset: str, model: str, rows: Sequence[SearchedStudy]) -> bytes:
    """The PNG: confirmed means with error bars (unconfirmed hatched), and the winners'
    validation curves (their confirmation runs dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    names = [r.setting[2] for r in rows]
    for i, r in enumerate(rows):
        c = r.best
        err = statistics.pstdev(c.confirmations.values()) if c.confirmed else 0.0
        bars.barh(
            i,
            100 * c.score,
            xerr=100 * err,
            color=f"C{i}",
            capsize=4,
            hatch=None if c.confirmed else "//",
            alpha=1.0 if c.confirmed else 0.5,
        )
        steps = sorted(c.trial.intermediate_values)
        curves.plot(
            steps,
            [100 * c.trial.intermediate_values[s] for s in steps],
            color=f"C{i}",
            label=names[i],
        )
        for run in r.confirmation_runs(c.trial.number):
            steps = sorted(run.intermediate_values)
            curves.plot(
                steps,
                [100 * run.intermediate_values[s] for s in steps],
                color=f"C{i}",
                linestyle="--",
                linewidth=0.8,
                alpha=0.7,
            )
    spans = [
        (100 * (r.best.score - e), 100 * (r.best.score + e))
        for r in rows
        for e in [statistics.pstdev(r.best.confirmations.values()) if r.best.confirmed else 0.0]
    ]
    low, high = min(s[0] for s in spans), max(s[1] for s in spans)
    bars.set_xlim(
        max(0.0, low - 0.2 * (high - low) - 1), min(100.0, high + 0.1 * (high - low) + 0.5)
    )
    bars.set_yticks(range(len(rows)), names)
    bars.invert_yaxis()
    bars.set_xlabel("validation accuracy (%): confirmed mean ± std; hatched: unconfirmed")
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation accuracy (%)")
    curves.legend(title="winner (dashed: its confirmation runs)", fontsize="small")
    fig.suptitle(f"{dataset} / {model}")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def file_stem(dataset: str, model: str) -> str:
    """A file name for a setting (import paths carry ':' and dots)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}-{model}")


def write_report(
    storage_url: str,
    directory: Path,
    names: Sequence[str] | None = None,
    warn: Callable[[str], None] = print,
) -> list[Path]:
    """Write ``<dataset>-<model>.md`` and ``.png`` for every setting searched; return them."""
    by_setting: dict[tuple[str, str], dict[str, SearchedStudy]] = {}
    for study in searched_studies(storage_url, names, warn):
        dataset, model, optimizer = study.setting
        have = by_setting.setdefault((dataset, model), {}).get(optimizer)
        if have is None or study.rank() > have.rank():
            by_setting[dataset, model][optimizer] = study
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (dataset, model), best in sorted(by_setting.items()):
        rows = sorted(best.values(), key=lambda r: r.rank(), reverse=True)
        # Appended, not with_suffix: an import path's dots are not a suffix.
        table, plot = (directory / f"{file_stem(dataset, model)}{ext}" for ext in (".md", ".png"))
        atomic_write(table, markdown(dataset, model, rows, storage_url))
        atomic_write(plot, figure(dataset, model, rows))
        written += [table, plot]
    return written
