"""Trial bookkeeping shared by the driver, the progress lines and the export.

An interrupted trial (Ctrl-C, SIGTERM, a driver that died: its heartbeat went stale) is failed
and queued again as a WAITING copy with the same parameters and the epochs it had reported;
the copy resumes from the checkpoint of the first trial of its lineage. The failed row no
longer counts towards the study's trial count: its copy carries the work on.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

# User attributes a queued copy keeps: what to train and with which budget, not who ran it.
KEPT_ATTRS = ("hparams", "budget", "seed", "confirms")


def retried_trial_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Trials that were failed by an interruption and queued again."""
    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", ()))
    return retried


def counted_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that use up the study's trial count: all but the ones queued again."""
    retried = retried_trial_numbers(trials)
    return [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]


def lineage_root(trial: FrozenTrial) -> int:
    """The number of the first trial of ``trial``'s retries (its own number if none)."""
    return trial.system_attrs.get("failed_trial", trial.number)


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed, interrupted ``trial`` again: same parameters, its curve so far.

    The signature is Optuna's heartbeat-stale callback's, so a driver that finds the trials of
    a dead driver (stale heartbeats) queues them the same way as Ctrl-C does.
    """
    system_attrs = {
        **trial.system_attrs,
        "failed_trial": lineage_root(trial),
        "retry_history": [*trial.system_attrs.get("retry_history", ()), trial.number],
    }
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={k: v for k, v in trial.user_attrs.items() if k in KEPT_ATTRS},
            system_attrs=system_attrs,
            intermediate_values=trial.intermediate_values,
        )
    )
