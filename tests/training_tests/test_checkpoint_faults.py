"""Checkpoint faults on the trainer's side: a damaged checkpoint is a ``CheckpointError`` (one
line naming the file and what is wrong), a failed write a ``CheckpointWriteError`` (an
``OSError`` naming the path and the reason) that leaves the previous checkpoint intact.

Write failures are injected (``os.replace``/``os.fsync`` raising a given errno, a path under a
regular file, a name too long), never left to permissions or luck."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch

from training import (
    CHECKPOINT_NAME,
    CheckpointError,
    CheckpointWriteError,
    TrainConfig,
    train,
)
from training._checkpoint import load_checkpoint

from .conftest import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> tuple[Path, bytes]:
    """A 1-epoch run's checkpoint directory and the checkpoint's bytes."""
    directory = tmp_path_factory.mktemp("finished")
    train(tiny_config("sgd", epochs=1, checkpoint_dir=directory))
    return directory, (directory / CHECKPOINT_NAME).read_bytes()


def _resume(directory: Path) -> TrainConfig:
    return tiny_config("sgd", epochs=1, checkpoint_dir=directory, resume=True)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda good: good[: len(good) // 2], "is damaged or not a checkpoint"),
        (lambda good: good[:10], "is damaged or not a checkpoint"),
        (lambda good: b"", "is damaged or not a checkpoint"),
        (lambda good: b"\x80\x04garbage" * 50, "is damaged or not a checkpoint"),
        (lambda good: b"PK\x03\x04" + bytes(200), "is damaged or not a checkpoint"),
    ],
    ids=["half", "ten-bytes", "empty", "garbage", "zip-header"],
)
def test_a_damaged_checkpoint_is_one_line(
    finished: tuple[Path, bytes], tmp_path: Path, damage, words: str, recwarn
) -> None:
    _, good = finished
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(damage(good))
    with pytest.raises(CheckpointError) as info:
        train(_resume(tmp_path))
    text = _one_line(info.value)
    assert text.startswith(f"checkpoint {path} {words} (") and "delete it" in text
    assert not recwarn.list  # torch's warnings about what it could not read are dropped
    assert path.read_bytes() == damage(good)  # left as it was, for the user to look at


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (torch.zeros(3), "it holds a Tensor, not a dict"),
        ({"model": {}}, "it lacks ['best_epoch', 'best_state', "),
        ("text", "it holds a str, not a dict"),
    ],
)
def test_a_torch_file_that_is_not_a_checkpoint(tmp_path: Path, content, problem: str) -> None:
    path = tmp_path / CHECKPOINT_NAME
    torch.save(content, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert _one_line(info.value).startswith(
        f"checkpoint {path} is not a training checkpoint: {problem}"
    )


def test_a_checkpoint_with_wrong_fields(finished: tuple[Path, bytes], tmp_path: Path) -> None:
    directory, _ = finished
    state = torch.load(directory / CHECKPOINT_NAME, weights_only=True)
    path = tmp_path / CHECKPOINT_NAME
    torch.save({**state, "epoch": 5}, path)
    with pytest.raises(CheckpointError, match="1 history records for epoch 5"):
        load_checkpoint(path)
    torch.save({**state, "rng": {"cpu": 1, "cuda": []}}, path)
    with pytest.raises(CheckpointError, match="rng is not a random-generator state"):
        load_checkpoint(path)


def test_a_checkpoint_that_does_not_fit_the_model(
    finished: tuple[Path, bytes], tmp_path: Path
) -> None:
    directory, _ = finished
    state = torch.load(directory / CHECKPOINT_NAME, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(1, 2, 3)
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError) as info:
        train(_resume(tmp_path))
    text = _one_line(info.value)
    assert text.startswith(f"checkpoint {tmp_path / CHECKPOINT_NAME} does not fit this run's")
    assert "RuntimeError" in text


def test_a_checkpoint_of_another_run_is_still_a_value_error(
    finished: tuple[Path, bytes],
) -> None:
    directory, _ = finished
    with pytest.raises(ValueError, match=r"^optimizer must be 'sgd' to resume the checkpoint"):
        train(tiny_config("adam", epochs=1, checkpoint_dir=directory, resume=True))


@pytest.mark.parametrize("function", ["replace", "fsync"])
@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "No space left on device (ENOSPC)"),
        (errno.EROFS, "Read-only file system (EROFS)"),
        (errno.EACCES, "Permission denied (EACCES)"),
    ],
)
def test_a_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str, code: int, reason: str
) -> None:
    """Epoch 1's checkpoint is written; epoch 2's write fails: the run stops with one line, and
    epoch 1's checkpoint is intact and resumable."""
    real = getattr(os, function)
    armed: list[int] = []

    def fail_once_armed(*args, **kwargs):
        if armed:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, function, fail_once_armed)
    with pytest.raises(CheckpointWriteError) as info:
        # on_epoch runs once the epoch's checkpoint is written: from then on, writes fail.
        train(
            tiny_config("sgd", epochs=3, checkpoint_dir=tmp_path),
            on_epoch=lambda epoch, metrics: armed.append(epoch),
        )
    monkeypatch.undo()
    err = info.value
    assert isinstance(err, OSError) and err.errno == code
    assert _one_line(err) == f"cannot write checkpoint {tmp_path / CHECKPOINT_NAME}: {reason}"
    assert armed == [1]  # epoch 2 was trained but not reported: its checkpoint failed
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1
    resumed = train(tiny_config("sgd", epochs=3, checkpoint_dir=tmp_path, resume=True))
    assert resumed.epochs_run == 3


def test_a_file_where_the_checkpoint_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a directory")
    directory = tmp_path / "runs" / "seed_0"
    with pytest.raises(CheckpointWriteError) as info:
        train(tiny_config("sgd", epochs=1, checkpoint_dir=directory))
    text = _one_line(info.value)
    assert text.startswith(f"cannot write checkpoint {directory / CHECKPOINT_NAME}: ")
    assert "(ENOTDIR)" in text and info.value.errno == errno.ENOTDIR


def test_a_parent_removed_while_the_directory_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search removes a study's directory once it is empty: when that lands between the
    study's directory being made and the trial's being made in it, the trial still trains."""
    study, real_mkdir, removed = tmp_path / "study", os.mkdir, []

    def mkdir_then_lose_the_parent(path, mode=0o777, **kwargs):
        real_mkdir(path, mode, **kwargs)
        if Path(path) == study and not removed:
            os.rmdir(study)  # another trial's clean-up, just after this one made it
            removed.append(study)

    monkeypatch.setattr(os, "mkdir", mkdir_then_lose_the_parent)
    result = train(tiny_config("sgd", epochs=1, checkpoint_dir=study / "trial-1"))
    assert removed == [study] and result.epochs_run == 1
    assert load_checkpoint(study / "trial-1" / CHECKPOINT_NAME)["epoch"] == 1


def test_a_checkpoint_directory_name_too_long(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 300)
    with pytest.raises(CheckpointWriteError) as info:
        train(tiny_config("sgd", epochs=1, checkpoint_dir=directory))
    assert info.value.errno == errno.ENAMETOOLONG
    assert "File name too long (ENAMETOOLONG)" in _one_line(info.value)


def test_the_errors_survive_pickling() -> None:
    """Ray hands a task's exception to the driver pickled."""
    cause = OSError(errno.ENOSPC, "No space left on device")
    err = pickle.loads(pickle.dumps(CheckpointWriteError("/runs/checkpoint.pt", cause)))
    assert isinstance(err, CheckpointWriteError) and err.errno == errno.ENOSPC
    assert (
        str(err) == "cannot write checkpoint /runs/checkpoint.pt: No space left on device (ENOSPC)"
    )
    damaged = pickle.loads(pickle.dumps(CheckpointError("checkpoint x is damaged")))
    assert isinstance(damaged, CheckpointError) and str(damaged) == "checkpoint x is damaged"
