"""Per-epoch checkpoints: written with :func:`atomic_write`, read back with ``weights_only=True``
and checked, so that a damaged file is one clear error rather than whatever torch raises."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from data._import_path import first_line

from ._atomic import atomic_write

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "CheckpointWriteError",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

#: File name of the checkpoint inside ``TrainConfig.checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"

# What every checkpoint holds (see training._loop._checkpoint_state), with the type of each.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "identity": dict,
    "epoch": int,
    "model": dict,
    "optimizer": dict,
    "scheduler": dict,
    "best_state": (dict, type(None)),
    "best_val_acc": (float, type(None)),
    "best_epoch": (int, type(None)),
    "history": list,
    "rng": dict,
}


class CheckpointError(ValueError):
    """A checkpoint cannot be used: truncated, not a checkpoint, or not this run's model."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the previous checkpoint, if any, is intact.

    ``errno`` and ``filename`` are those of an ``OSError``; ``str()`` is one line naming the
    checkpoint and the operating system's reason.
    """

    def __init__(self, path: str | os.PathLike[str], cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), os.fspath(path))
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:  # Ray and multiprocessing pickle exceptions
        return type(self), (self.filename, self.cause)

    def __str__(self) -> str:
        code = errno.errorcode.get(self.errno) if self.errno is not None else None
        reason = f"{self.strerror} ({code})" if code else str(self.strerror)
        # Name the path the OS refused when it is neither the checkpoint's directory nor a file
        # in it (e.g. the component of a checkpoint directory that is a regular file).
        where, directory = self.cause.filename, Path(self.filename).parent
        if where is not None and directory not in (Path(os.fsdecode(where)), _parent(where)):
            reason += f": {os.fsdecode(where)}"
        return f"cannot write checkpoint {self.filename}: {reason}"


def _parent(path: str | bytes | os.PathLike[str]) -> Path:
    return Path(os.fsdecode(path)).parent


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` so that ``path`` always holds a complete checkpoint.

    Raises:
        CheckpointWriteError: the write failed (no space, read-only, ...); ``path`` still
            holds the previous checkpoint and no temporary file is left.
    """
    try:
        atomic_write(path, lambda f: torch.save(state, f))
    except OSError as err:
        raise CheckpointWriteError(path, err) from err


#: Times :func:`make_checkpoint_dir` creates a directory whose parent vanished meanwhile.
_MKDIR_TRIES = 5


def make_checkpoint_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents); ``CheckpointWriteError`` if it cannot be.

    A search removes a study's directory once its last trial's checkpoints are gone, so a
    parent this call has just made can vanish before the child is made in it; that is tried
    again, not reported as a write error.
    """
    for attempt in range(1, _MKDIR_TRIES + 1):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError as err:
            if attempt == _MKDIR_TRIES:
                raise CheckpointWriteError(directory / CHECKPOINT_NAME, err) from err
        except OSError as err:
            raise CheckpointWriteError(directory / CHECKPOINT_NAME, err) from err


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, every tensor on CPU.

    Raises:
        CheckpointError: the file is truncated, is not a torch file, or does not hold a
            training checkpoint; one line naming the file and what is wrong.
        OSError: the file cannot be opened (missing, permission, ...).
    """
    with open(path, "rb") as f, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # OSErrors of open() are the file's access, not its content: they propagate
            state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as err:  # zip, pickle and weights-only errors take many types
            raise CheckpointError(
                f"checkpoint {os.fspath(path)} is damaged or not a checkpoint "
                f"({first_line(err)}); delete it to start afresh"
            ) from err
    for warning in caught:  # a good file's warnings are the caller's; a bad one's are noise
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    problem = _problem(state)
    if problem:
        raise CheckpointError(
            f"checkpoint {os.fspath(path)} is not a training checkpoint: {problem}; "
            "delete it to start afresh"
        )
    return state


def _problem(state: object) -> str | None:
    """Why ``state`` is not what :func:`save_checkpoint` writes, or ``None``."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dict"
    missing = sorted(set(_FIELDS) - set(state))
    if missing:
        return f"it lacks {missing}"
    for key, kind in _FIELDS.items():
        value = state[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{key} is a {type(value).__name__}"
    if state["epoch"] < 0 or len(state["history"]) != state["epoch"]:
        return f"{len(state['history'])} history records for epoch {state['epoch']}"
    if not all(isinstance(m, dict) for m in state["history"]):
        return "history holds something other than dicts"
    rng = state["rng"]
    if not isinstance(rng.get("cpu"), torch.Tensor) or not isinstance(rng.get("cuda"), list):
        return "rng is not a random-generator state"
    return None


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU, and every CUDA device once CUDA is initialised)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
