"""Which trial wins each dataset/model/optimizer, and writing the winners into
``best_hyper_parameters.py``.

The rule: among a study's search trials whose confirmation runs (the same parameters on new
seeds) completed, the best mean validation accuracy over those runs; the search's own seed is
left out of the mean, since that value is the one the trial was selected for. A study without
confirmation runs exports its best COMPLETE trial, marked unconfirmed. Pruned and failed trials
never win. Across studies of one setting the higher score wins.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from training import (
    HyperParameterTable,
    Provenance,
    atomic_write,
    parse_best_hyper_parameters,
    render_best_hyper_parameters,
)

from ._storage import open_storage, redact
from ._studies import counted_trials

Setting = tuple[str, str, str]  # dataset, model, optimizer


class ExportError(RuntimeError):
    """Nothing to export, or the export cannot be written; one clear line."""


@dataclass(frozen=True)
class Candidate:
    """A search trial and the values of its completed confirmation runs (by seed)."""

    trial: FrozenTrial
    confirmations: dict[int, float]

    @property
    def confirmed(self) -> bool:
        return bool(self.confirmations)

    @property
    def score(self) -> float:
        """What the export ranks by: the confirmation mean, else the trial's own value."""
        if self.confirmed:
            return statistics.fmean(self.confirmations.values())
        return self.trial.value


def candidates(trials: list[FrozenTrial]) -> list[Candidate]:
    """The COMPLETE search trials of a study, each with its confirmation runs.

    Raises ValueError naming a confirmation run whose ``confirms``/``seed`` are not trial and
    seed numbers.
    """
    counted = counted_trials(trials)
    runs: dict[int, dict[int, float]] = {}
    for t in counted:
        if "confirms" in t.user_attrs and t.state == TrialState.COMPLETE:
            source, seed = t.user_attrs["confirms"], t.user_attrs.get("seed")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (source, seed)):
                raise ValueError(
                    f"trial #{t.number}: confirms and seed must be integers, but got "
                    f"confirms={source!r}, seed={seed!r}"
                )
            runs.setdefault(source, {})[seed] = t.value
    return [
        Candidate(t, runs.get(t.number, {}))
        for t in counted
        if t.state == TrialState.COMPLETE and "confirms" not in t.user_attrs
    ]


def best_candidate(trials: list[FrozenTrial]) -> Candidate | None:
    """Confirmed candidates beat unconfirmed ones; then the higher score, then the lower number."""
    pool = candidates(trials)
    confirmed = [c for c in pool if c.confirmed]
    pool = confirmed or pool
    return max(pool, key=lambda c: (c.score, -c.trial.number)) if pool else None


@dataclass(frozen=True)
class Winner:
    hparams: dict[str, Any]
    provenance: dict[str, Any]


def shown(name: str) -> str:
    """``name`` safe for a terminal: control characters (escape codes) spelled out."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_hparams(hparams: object) -> str | None:
    """Why ``hparams`` cannot be exported, or None."""
    if not isinstance(hparams, dict) or not hparams:
        return f"hparams must be a non-empty dict, but got {hparams!r}"
    for key, value in hparams.items():
        values = value if isinstance(value, list | tuple) else [value]
        if not isinstance(key, str) or not values or not all(map(_finite_number, values)):
            return f"hparams[{key!r}] must be a finite number or numbers, but got {value!r}"
    return None


def _winner(name: str, attrs: dict[str, Any], best: Candidate) -> Winner:
    """The export of ``best``; raises ValueError naming what is malformed."""
    trial = best.trial
    problem = _check_hparams(trial.user_attrs.get("hparams"))
    if problem:
        raise ValueError(f"trial #{trial.number}: {problem}")
    budget = trial.user_attrs.get("budget") or {
        "epochs": attrs.get("epochs"),
        "batch_size": attrs.get("batch_size"),
        "train_subset": None,
    }
    if not isinstance(budget, dict) or not all(
        budget.get(k) is None or (_finite_number(budget.get(k)) and budget[k] > 0)
        for k in ("epochs", "batch_size", "train_subset")
    ):
        raise ValueError(
            f"trial #{trial.number}: budget must hold positive numbers, got {budget!r}"
        )
    if not _finite_number(trial.value) or not all(
        map(_finite_number, best.confirmations.values())
    ):
        raise ValueError(f"trial #{trial.number}: values must be finite")
    hparams = {
        k: tuple(v) if isinstance(v, list) else v for k, v in trial.user_attrs["hparams"].items()
    }
    provenance: dict[str, Any] = {
        "study": name,
        "trial": trial.number,
        "value": round(trial.value, 4),
        "date": trial.datetime_complete.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "epochs": budget.get("epochs"),
        "batch_size": budget.get("batch_size"),
        "train_subset": budget.get("train_subset"),
        "confirmed": best.confirmed,
    }
    if best.confirmed:
        values = [best.confirmations[s] for s in sorted(best.confirmations)]
        provenance.update(
            mean=round(statistics.fmean(values), 4),
            std=round(statistics.pstdev(values), 4),
            seeds=sorted(best.confirmations),
        )
    return Winner(hparams, provenance)


@dataclass(frozen=True)
class SearchedStudy:
    """A run_search.py study of the storage, with its trials and what it would export."""

    name: str
    setting: Setting
    trials: list[FrozenTrial]
    best: Candidate
    winner: Winner

    def rank(self) -> tuple[bool, float]:
        """Across studies of one setting: confirmed first, then the higher score."""
        return (self.best.confirmed, self.best.score)

    def confirmation_runs(self, number: int) -> list[FrozenTrial]:
        """The completed confirmation runs of trial ``number``."""
        return [
            t
            for t in counted_trials(self.trials)
            if t.user_attrs.get("confirms") == number and t.state == TrialState.COMPLETE
        ]


def searched_studies(
    storage_url: str, names: Sequence[str] | None = None, warn: Callable[[str], None] = print
) -> list[SearchedStudy]:
    """The run_search.py studies of the storage that have something to export (all of them,
    or ``names``). A study with malformed attributes is skipped with one ``warn`` line."""
    storage = open_storage(storage_url, create=False)
    studies = {s.study_name: s for s in storage.get_all_studies()}
    if names:
        unknown = sorted(set(names) - set(studies))
        if unknown:
            raise ExportError(
                f"unknown study {shown(unknown[0])!r} in {redact(storage_url)}; "
                f"available: {[shown(n) for n in sorted(studies)]}"
            )
        studies = {n: studies[n] for n in names}
    found = []
    for name, frozen in sorted(studies.items()):
        attrs = frozen.user_attrs
        setting = tuple(attrs.get(k) for k in ("dataset", "model", "optimizer"))
        if None in setting:
            if names:
                raise ExportError(
                    f"study {shown(name)!r} was not made by run_search.py "
                    "(no dataset/model/optimizer)"
                )
            continue
        if not all(isinstance(v, str) and v for v in setting):
            warn(f"warning: skipping study {shown(name)!r}: dataset/model/optimizer must be names")
            continue
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        try:
            best = best_candidate(trials)
            if best is None:
                if names:
                    raise ExportError(f"study {shown(name)!r} has no COMPLETE trial to export")
                continue
            win = _winner(name, attrs, best)
        except ValueError as exc:
            warn(f"warning: skipping study {shown(name)!r}: {exc}")
            continue
        found.append(SearchedStudy(name, setting, trials, best, win))  # type: ignore[arg-type]
    return found


def select_winners(
    storage_url: str, names: Sequence[str] | None = None, warn: Callable[[str], None] = print
) -> dict[Setting, Winner]:
    """(dataset, model, optimizer) → the winner of the run_search.py studies in the storage."""
    best: dict[Setting, SearchedStudy] = {}
    for study in searched_studies(storage_url, names, warn):
        have = best.get(study.setting)
        if have is None or study.rank() > have.rank():
            best[study.setting] = study
    if not best:
        raise ExportError(f"no COMPLETE trial of a run_search.py study in {redact(storage_url)}")
    return {setting: study.winner for setting, study in best.items()}


def describe(key: str, win: Winner, old: dict[str, Any] | None) -> str:
    """One line: the new values, what they replace, and the evidence and budget behind them."""
    p = win.provenance
    change = "unchanged" if old == win.hparams else f"was {old}" if old else "new"
    subset = f" on {p['train_subset']} images" if p.get("train_subset") else ""
    line = (
        f"{shown(key)}: {win.hparams} ({change}) — study {shown(p['study'])}, trial #{p['trial']}, "
        f"best val {100 * p['value']:.2f}% in {p['epochs']} epochs of batch {p['batch_size']}"
        f"{subset}"
    )
    if p["confirmed"]:
        return (
            f"{line}; confirmed: {100 * p['mean']:.2f}% ± {100 * p['std']:.2f} over "
            f"seeds {p['seeds']}"
        )
    return f"{line}; unconfirmed (one seed: run_search.py --confirm-top K --confirm-seeds S)"


def merge(
    table: HyperParameterTable, provenance: Provenance, winners: dict[Setting, Winner]
) -> None:
    """Put ``winners`` into ``table`` and ``provenance`` (in place); other entries stay."""
    for (dataset, model, optimizer), win in winners.items():
        table.setdefault(dataset, {}).setdefault(model, {})[optimizer] = win.hparams
        provenance[f"{dataset}/{model}/{optimizer}"] = win.provenance


def write_table(path: Path, table: HyperParameterTable, provenance: Provenance) -> None:
    """Write the rendered table to ``path`` atomically, checked to load back first.

    The file keeps its mode; on any error (or a signal) ``path`` is untouched and no temporary
    file stays behind (see :func:`training.atomic_write`).
    """
    text = render_best_hyper_parameters(table, provenance)
    if parse_best_hyper_parameters(text, path) != (table, provenance):
        raise ExportError(
            f"the new {path.name} does not load back to the exported table; left unchanged"
        )
    atomic_write(path, text)
