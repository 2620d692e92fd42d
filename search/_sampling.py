"""The sampler and the pruner of a spec's studies.

The driver loads each study with both, as single-process Optuna would: with Hyperband, TPE
then fits each trial on the trials of its own bracket (Optuna's ``_filter_study``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ._spec import StudySpec


class SeededPerTrial(optuna.samplers.BaseSampler):
    """A fresh sampler per trial, seeded from the spec's seed and the trial's number.

    Runs are reproducible, yet a rerun or a second driver (whose trials have other numbers)
    never replays the random start of the first: a sampler seeded from the spec alone would.
    Each trial's sampler serves that trial from ``before_trial`` to ``after_trial``, however
    the asks and tells of several trials interleave.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            sampler = self._by_trial[trial.number] = self._make(
                (self._seed * 1_000_003 + trial.number) % 2**32
            )
        return sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: Any, values: Any
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)

    def forget(self, number: int) -> None:
        """Drop the sampler of a trial that ends without a tell (it was queued again)."""
        self._by_trial.pop(number, None)


def make_sampler(spec: StudySpec) -> SeededPerTrial:
    # Grid studies run their enqueued points; the sampler is never consulted for them.
    if spec.sampler_kind == "random":
        return SeededPerTrial(lambda s: optuna.samplers.RandomSampler(seed=s), spec.seed)
    return SeededPerTrial(lambda s: optuna.samplers.TPESampler(seed=s), spec.seed)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource,
            max_resource=spec.epochs,
            reduction_factor=p.reduction_factor,
        )
    if p.kind == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if p.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    return optuna.pruners.NopPruner()
