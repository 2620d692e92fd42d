"""The trainer: the paper's protocol as one function, ``train(config, on_epoch) -> TrainResult``.

It serves the hyper-parameter search (which reports and prunes through ``on_epoch``), the
``training_example.py`` CLI and the tests alike, and imports neither optuna nor ray. Also here:
:func:`inspect_setting` (a dataset and model checked before training), the best-hyper-parameter
table (``best_hyper_parameters.py``), :func:`atomic_write`, and the scripts' command-line
convention (:class:`ArgumentParser`).
"""

from data import SettingError

from ._atomic import atomic_write
from ._checkpoint import CHECKPOINT_NAME, CheckpointError, CheckpointWriteError
from ._cli import ArgumentParser, error_line, freeze_at_exit, import_or_exit, print_error
from ._config import EpochMetrics, TrainConfig, TrainResult
from ._hyperparams import (
    HYPER_PARAMETERS_FILE,
    HyperParameterTable,
    Provenance,
    find_best_hyper_parameters,
    load_best_hyper_parameters,
    lookup_hyper_parameters,
    parse_best_hyper_parameters,
    render_best_hyper_parameters,
)
from ._loop import LR_GAMMA, MILESTONE_FRACTIONS, lr_milestones, train
from ._setting import SettingInfo, build_model, inspect_setting

__all__ = [
    "CHECKPOINT_NAME",
    "HYPER_PARAMETERS_FILE",
    "LR_GAMMA",
    "MILESTONE_FRACTIONS",
    "ArgumentParser",
    "CheckpointError",
    "CheckpointWriteError",
    "EpochMetrics",
    "HyperParameterTable",
    "Provenance",
    "SettingError",
    "SettingInfo",
    "TrainConfig",
    "TrainResult",
    "atomic_write",
    "build_model",
    "error_line",
    "find_best_hyper_parameters",
    "freeze_at_exit",
    "import_or_exit",
    "inspect_setting",
    "load_best_hyper_parameters",
    "lookup_hyper_parameters",
    "lr_milestones",
    "parse_best_hyper_parameters",
    "print_error",
    "render_best_hyper_parameters",
    "train",
]
