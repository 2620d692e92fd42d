"""Where trials keep their checkpoints: the default directory, the check that it can be used
(before anything is written), and the removal of a finished trial's checkpoints."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from ._spec import StudySpec
from ._storage import sqlite_database


class CheckpointDirError(ValueError):
    """The checkpoint directory cannot be used; one line, found before anything is written."""


def default_checkpoint_dir(storage_url: str) -> Path:
    """Beside a SQLite file (``studies/studies.db`` → ``studies/studies-checkpoints``), so each
    storage keeps its own; ``studies/checkpoints`` in the working directory for a server."""
    database = sqlite_database(storage_url)
    if database is not None:
        return database.with_name(f"{database.stem}-checkpoints")
    return Path("studies") / "checkpoints"


def check_checkpoint_dir(root: Path, spec: StudySpec) -> None:
    """Create, write and remove a file as deep as the longest trial checkpoint will be, so an
    unusable directory (read-only, full, a file, a path too long) is one line up front.

    The probe lives in a directory of this process's own (as long as the longest study name),
    so drivers that start at once never remove each other's; everything it made is removed,
    so a run refused later (a bad model, say) leaves nothing behind.
    """
    root = root.absolute()
    longest = max((spec.study_name(opt) for opt in spec.optimizers), key=len)
    mine = f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}-"
    probe_dir = root / (mine + "x" * max(0, len(longest) - len(mine))) / f"trial-{10**9}"
    made: list[Path] = []
    try:
        for directory in [*reversed(root.parents), root]:
            if not directory.is_dir() and _make_dir(directory):
                made.append(directory)
        probe_dir.mkdir(parents=True)
        probe = probe_dir / f".checkpoint.pt.{os.getpid()}.tmp"
        with probe.open("wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENAMETOOLONG:
            reason += " (a shorter --checkpoint-dir or spec name)"
        raise CheckpointDirError(
            f"checkpoint directory {root} cannot be used: {reason} "
            f"({exc.filename or root}); give --checkpoint-dir a writable directory"
        ) from None
    finally:
        for directory in (probe_dir, probe_dir.parent, *reversed(made)):
            with contextlib.suppress(OSError):  # not empty: another driver's probe is inside
                directory.rmdir()


def _make_dir(directory: Path) -> bool:
    """Make ``directory``; False when another driver made it first. Drivers that start at
    once make and remove the same directories, so what is there is known only from
    ``mkdir``'s own answer, never from a look before it."""
    for _ in range(3):
        try:
            directory.mkdir()
            return True
        except FileExistsError:
            if directory.is_dir():
                return False
            if directory.exists() or directory.is_symlink():  # a file, a dangling link
                break
            # made and removed again by another driver's probe meanwhile: make it again
    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))


def remove_checkpoint(checkpoint_dir: str | Path) -> None:
    """Remove a trial's checkpoints, and its study's directory once it is empty."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        Path(checkpoint_dir).parent.rmdir()
