"""The search service: study specs → Optuna studies in SQL storage → trials on warm Ray runners.

Read in this order: ``_spec`` and ``_space`` (what a search is), ``_studies`` (the studies in
the storage and their counting rules), ``_driver`` (the loop), ``_trial`` (what a runner does
for one trial), ``_executors`` (where trials run), ``_storage`` and ``_locks`` (the database),
``_export`` and ``_report`` (what a search yields).
"""

from . import _extra  # noqa: F401 - first: says in one line when the extra is missing
from ._checkpoints import CheckpointDirError
from ._driver import Interrupted, SearchStopped, progress, run
from ._executors import ClusterError
from ._export import (
    Candidate,
    ExportError,
    Winner,
    best_candidate,
    describe,
    merge,
    select_winners,
    write_table,
)
from ._progress import StudyProgress, dashboard_hint
from ._report import write_report
from ._space import HPARAMS, PRESETS, Entry, parse_space, suggest
from ._spec import ConfirmSpec, PrunerSpec, ResourceSpec, SpecError, StudySpec, load_spec
from ._storage import (
    DEFAULT_STORAGE,
    STORAGE_ENV_VAR,
    StorageError,
    close_storage,
    default_storage,
    open_storage,
    redact,
)
from ._studies import counted_trials, create_studies, grid_points, lineage_root
from ._trial import TrialJob, TrialOutcome, run_trial

__all__ = [
    "DEFAULT_STORAGE",
    "HPARAMS",
    "PRESETS",
    "STORAGE_ENV_VAR",
    "Candidate",
    "CheckpointDirError",
    "ClusterError",
    "ConfirmSpec",
    "Entry",
    "ExportError",
    "Interrupted",
    "PrunerSpec",
    "ResourceSpec",
    "SearchStopped",
    "SpecError",
    "StorageError",
    "StudyProgress",
    "StudySpec",
    "TrialJob",
    "TrialOutcome",
    "Winner",
    "best_candidate",
    "close_storage",
    "counted_trials",
    "create_studies",
    "dashboard_hint",
    "default_storage",
    "describe",
    "grid_points",
    "lineage_root",
    "load_spec",
    "merge",
    "open_storage",
    "parse_space",
    "progress",
    "redact",
    "run",
    "run_trial",
    "select_winners",
    "suggest",
    "write_report",
    "write_table",
]
