"""The search service: study specs → Optuna studies in SQL storage → trials on Ray workers."""

from ._runner import StudyProgress, create_studies, dashboard_hint, progress, run
from ._space import SPACES, grid, suggest
from ._spec import PrunerSpec, ResourceSpec, SpecError, StudySpec, load_spec
from ._storage import StorageError, open_storage, redact
from ._worker import WorkerTask, counted_trials, run_worker

__all__ = [
    "SPACES",
    "PrunerSpec",
    "ResourceSpec",
    "SpecError",
    "StorageError",
    "StudyProgress",
    "StudySpec",
    "WorkerTask",
    "counted_trials",
    "create_studies",
    "dashboard_hint",
    "grid",
    "load_spec",
    "open_storage",
    "progress",
    "redact",
    "run",
    "run_worker",
    "suggest",
]
