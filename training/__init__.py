"""The trainer: the paper's protocol as one function, ``train(config, on_epoch) -> TrainResult``.

It serves the hyper-parameter search (which reports and prunes through ``on_epoch``), the
``training_example.py`` CLI and the tests alike, and imports neither optuna nor ray. The
best-hyper-parameter table (``best_hyper_parameters.py``) is read and written here too.
"""

from ._checkpoint import CHECKPOINT_NAME
from ._config import EpochMetrics, TrainConfig, TrainResult
from ._hyperparams import (
    DEFAULT_HYPER_PARAMETERS_PATH,
    HyperParameterTable,
    Provenance,
    load_best_hyper_parameters,
    lookup_hyper_parameters,
    parse_best_hyper_parameters,
    render_best_hyper_parameters,
)
from ._loop import LR_GAMMA, MILESTONE_FRACTIONS, lr_milestones, train

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_HYPER_PARAMETERS_PATH",
    "LR_GAMMA",
    "MILESTONE_FRACTIONS",
    "EpochMetrics",
    "HyperParameterTable",
    "Provenance",
    "TrainConfig",
    "TrainResult",
    "load_best_hyper_parameters",
    "lookup_hyper_parameters",
    "lr_milestones",
    "parse_best_hyper_parameters",
    "render_best_hyper_parameters",
    "train",
]
