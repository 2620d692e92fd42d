"""The search service: study specs → Optuna studies in SQL storage → one Ray task per trial."""

from ._driver import (
    ClusterError,
    Interrupted,
    StudyProgress,
    create_studies,
    dashboard_hint,
    grid_points,
    progress,
    run,
)
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
from ._space import SPACES, grid, suggest
from ._spec import ConfirmSpec, PrunerSpec, ResourceSpec, SpecError, StudySpec, load_spec
from ._storage import StorageError, open_storage, redact
from ._trial import TrialJob, TrialOutcome, run_trial
from ._trials import counted_trials, lineage_root

__all__ = [
    "SPACES",
    "Candidate",
    "ClusterError",
    "ConfirmSpec",
    "ExportError",
    "Interrupted",
    "PrunerSpec",
    "ResourceSpec",
    "SpecError",
    "StorageError",
    "StudyProgress",
    "StudySpec",
    "TrialJob",
    "TrialOutcome",
    "Winner",
    "best_candidate",
    "counted_trials",
    "create_studies",
    "dashboard_hint",
    "describe",
    "grid",
    "grid_points",
    "lineage_root",
    "load_spec",
    "merge",
    "open_storage",
    "progress",
    "redact",
    "run",
    "run_trial",
    "select_winners",
    "suggest",
    "write_table",
]
