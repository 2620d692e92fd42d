"""What the search shows: a progress line per change, and the summary at the end."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from ._export import Candidate, best_candidate
from ._spec import StudySpec
from ._storage import redact
from ._studies import counted_trials


@dataclass(frozen=True)
class StudyProgress:
    study: str
    optimizer: str
    target: int
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None
    epochs: int  # epochs trained, summed over trials (from their per-epoch reports)
    confirmed: int = 0  # confirmation trials finished
    confirm_target: int = 0
    confirmed_best: Candidate | None = None  # what the export would take

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def progress_row(spec: StudySpec, opt: str, trials: list[FrozenTrial]) -> StudyProgress:
    every = counted_trials(trials)  # search and confirmation runs, each lineage once
    counted = [t for t in every if "confirms" not in t.user_attrs]
    confirming = [t for t in every if "confirms" in t.user_attrs]
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return StudyProgress(
        study=spec.study_name(opt),
        optimizer=opt,
        target=spec.trials_for(opt),
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in counted),
        failed=sum(t.state == TrialState.FAIL for t in counted),
        running=sum(t.state == TrialState.RUNNING for t in every),
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        # A queued copy inherits its failed row's curve: count each lineage once.
        epochs=sum(len(t.intermediate_values) for t in every),
        confirmed=sum(t.state.is_finished() for t in confirming),
        confirm_target=spec.confirm.top * spec.confirm.seeds,
        confirmed_best=best_candidate(trials) if confirming else None,
    )


def format_progress(rows: list[StudyProgress]) -> str:
    parts = []
    for r in rows:
        best = f"{100 * r.best_value:.2f}%" if r.best_value is not None else "-"
        confirm = f" confirm {r.confirmed}/{r.confirm_target}" if r.confirm_target else ""
        parts.append(f"{r.optimizer} {r.done}/{r.target} best {best}{confirm}")
    return " | ".join(parts) + f" | running {sum(r.running for r in rows)}"


def format_summary(rows: list[StudyProgress]) -> str:
    width = max(len(r.study) for r in rows)
    lines = [
        f"{'study':<{width}}  {'complete':>8} {'pruned':>6} {'failed':>6} {'epochs':>6}  "
        f"{'best val %':>10}  best trial"
    ]
    for r in rows:
        best = f"{100 * r.best_value:10.2f}" if r.best_value is not None else f"{'-':>10}"
        trial = f"#{r.best_trial}" if r.best_trial is not None else "-"
        lines.append(
            f"{r.study:<{width}}  {r.complete:>8} {r.pruned:>6} {r.failed:>6} {r.epochs:>6}  "
            f"{best}  {trial}"
        )
    for r in rows:
        c = r.confirmed_best
        if c is not None and c.confirmed:
            values = list(c.confirmations.values())
            lines.append(
                f"{r.optimizer}: trial #{c.trial.number} confirmed at {100 * c.score:.2f}% "
                f"± {100 * statistics.pstdev(values):.2f} over seeds {sorted(c.confirmations)} "
                f"(searched at {100 * c.trial.value:.2f}%)"
            )
    return "\n".join(lines)


def dashboard_hint(storage_url: str) -> str:
    return f"optuna-dashboard {redact(storage_url)}"
