"""End-to-end runs of ``train`` on CPU: learning, exact resume, divergence, callbacks, files."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import MultiStepLR

import training._loop
from data import DatasetNotFoundError, build_loaders
from models import create_model
from optim import create_optimizer, list_optimizers
from training import CHECKPOINT_NAME, TrainConfig, TrainResult, lr_milestones, train

from ..conftest import FakeSplits, write_cifar10
from .conftest import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

METRIC_KEYS = {
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "images_per_s",
    "seconds",
}
TIMING_KEYS = {"images_per_s", "seconds"}


class Stop(Exception):
    """Raised from ``on_epoch`` to interrupt a run, as the search's pruning does."""


def _numbers(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """History without its wall-clock fields."""
    return [{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in history]


def _assert_identical(a: Any, b: Any, where: str = "checkpoint") -> None:
    """Recursive bitwise equality of nested dicts/lists of tensors and Python values."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.fixture(scope="module", params=list_optimizers())
def full_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, one_thread: None
) -> tuple[TrainResult, Path]:
    """An uninterrupted 3-epoch run per optimizer, and its checkpoint directory."""
    directory = tmp_path_factory.mktemp(f"full_{request.param}")
    return train(tiny_config(request.param, checkpoint_dir=directory)), directory


def test_every_optimizer_trains(full_run: tuple[TrainResult, Path]) -> None:
    result, _ = full_run
    assert result.status == "completed" and result.reason is None
    assert result.epochs_run == 3 and [m["epoch"] for m in result.history] == [1, 2, 3]
    assert all(m.keys() == METRIC_KEYS for m in result.history)
    assert result.history[-1]["train_loss"] < 0.8 * result.history[0]["train_loss"]
    assert result.best_val_acc == max(m["val_acc"] for m in result.history)
    assert result.best_epoch is not None
    assert result.history[result.best_epoch - 1]["val_acc"] == result.best_val_acc
    assert result.test_acc is not None and 0.0 <= result.test_acc <= 1.0
    assert result.images_per_s > 0 and result.seconds > 0
    assert result.hparams == dict(result.config.hparams)


def test_resume_equals_uninterrupted_run(
    full_run: tuple[TrainResult, Path], tmp_path: Path
) -> None:
    full, full_dir = full_run
    config = tiny_config(full.config.optimizer, checkpoint_dir=tmp_path, resume=True)

    def stop_after_first(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 1:
            raise Stop

    # resume=True without a checkpoint yet starts from scratch.
    with pytest.raises(Stop):
        train(config, on_epoch=stop_after_first)
    seen: list[int] = []
    resumed = train(config, on_epoch=lambda epoch, metrics: seen.append(epoch))

    assert seen == [2, 3]
    assert _numbers(resumed.history) == _numbers(full.history)
    assert (resumed.best_val_acc, resumed.best_epoch, resumed.test_acc) == (
        full.best_val_acc,
        full.best_epoch,
        full.test_acc,
    )
    a, b = (torch.load(d / CHECKPOINT_NAME, weights_only=True) for d in (full_dir, tmp_path))
    a["history"], b["history"] = _numbers(a["history"]), _numbers(b["history"])
    _assert_identical(a, b)  # weights, best weights, optimizer and scheduler state, RNG


def test_on_epoch_exception_propagates_after_a_consistent_checkpoint(tmp_path: Path) -> None:
    calls: list[tuple[int, dict[str, float]]] = []

    def prune_at_second(epoch: int, metrics: dict[str, float]) -> None:
        calls.append((epoch, metrics))
        if epoch == 2:
            raise Stop("pruned")

    metrics_path = tmp_path / "metrics.jsonl"
    config = tiny_config(checkpoint_dir=tmp_path, metrics_path=metrics_path)
    with pytest.raises(Stop, match="pruned"):
        train(config, on_epoch=prune_at_second)
    assert [epoch for epoch, _ in calls] == [1, 2]
    assert all(metrics.keys() == METRIC_KEYS for _, metrics in calls)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert [json.loads(line) for line in metrics_path.read_text().splitlines()] == [
        metrics for _, metrics in calls
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT_NAME, "metrics.jsonl"])


def test_divergence_ends_the_run_with_a_status(tmp_path: Path) -> None:
    config = tiny_config(
        "sgd",
        hparams={"lr": 1e12, "momentum": 0.9},
        epochs=50,
        checkpoint_dir=tmp_path,
        metrics_path=tmp_path / "metrics.jsonl",
    )
    result = train(config, on_epoch=lambda epoch, metrics: pytest.fail("no epoch should finish"))
    assert result.status == "diverged"
    assert result.reason is not None
    assert "training loss became" in result.reason and "epoch 1" in result.reason
    assert result.epochs_run == 0 and result.history == []
    assert result.best_val_acc is None and result.test_acc is None
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_divergence_is_caught_inside_the_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    # A zero interval makes every batch a check point: the run stops at the first bad batch.
    monkeypatch.setattr(training._loop, "_SYNC_INTERVAL_S", 0.0)
    result = train(tiny_config("sgd", hparams={"lr": 1e12, "momentum": 0.9}))
    assert result.status == "diverged"
    assert result.reason is not None
    checked = re.search(r"checked after (\d+) images of that epoch", result.reason)
    assert checked is not None and int(checked[1]) < 200, result.reason  # 200 in an epoch


def test_lr_milestones() -> None:
    assert lr_milestones(405) == [135, 225, 315]
    assert lr_milestones(9) == [3, 5, 7]
    assert lr_milestones(1) == [1, 1]  # round(1/3) = 0 is dropped; the other two compound


def test_lr_schedule_and_metrics_lines(tmp_path: Path) -> None:
    metrics_path = tmp_path / "runs" / "metrics.jsonl"
    config = tiny_config("sgd", epochs=9, train_subset=64, metrics_path=metrics_path)
    result = train(config)
    lrs = [m["lr"] for m in result.history]
    assert lrs == pytest.approx([0.1] * 3 + [0.01] * 2 + [0.001] * 2 + [0.0001] * 2)
    lines = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert lines == result.history


def _hand_loop_losses(config: TrainConfig) -> list[float]:
    """Mean training loss per epoch of a plain CPU loop over ``build_loaders``' batches."""
    torch.manual_seed(config.seed)
    loaders = build_loaders(
        config.dataset,
        batch_size=config.batch_size,
        seed=config.seed,
        data_dir=config.data_dir,
        verify=False,
        with_test=False,
    )
    model = create_model(config.model, num_classes=10)
    optimizer = create_optimizer(config.optimizer, model, **config.hparams)
    scheduler = MultiStepLR(optimizer, lr_milestones(config.epochs), gamma=0.1)
    losses = []
    for _ in range(config.epochs):
        model.train()
        total = 0.0
        for images, labels in loaders.train:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
        scheduler.step()
        losses.append(total / loaders.n_train)
    return losses


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
        ),
    ],
)
def test_same_seed_trains_on_the_same_images_on_every_device(
    device: str, cifar10_files: FakeSplits
) -> None:
    # Two epochs of augmented CIFAR batches: the trainer on `device` follows, loss for loss, a
    # hand-written CPU loop over the loader; another augmentation stream would move the losses
    # by percents, cuDNN's kernels move them by far less than 1e-3.
    config = tiny_config(
        "sgd",
        dataset="cifar10",
        hparams={"lr": 0.05, "momentum": 0.9},
        epochs=2,
        batch_size=16,
        train_subset=None,
        data_dir=cifar10_files.root,
        verify=False,
        evaluate_test=False,
        device=device,
    )
    losses = [m["train_loss"] for m in train(config).history]
    rel = 1e-9 if device == "cpu" else 1e-3
    assert losses == pytest.approx(_hand_loop_losses(config), rel=rel)


def test_evaluate_test_false_never_reads_the_test_split(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    config = tiny_config(
        "sgd",
        dataset="cifar10",
        hparams={"lr": 0.05, "momentum": 0.9},
        epochs=1,
        batch_size=16,
        train_subset=None,
        data_dir=tmp_path,
        verify=False,
        evaluate_test=False,
    )
    result = train(config)
    assert result.status == "completed" and result.test_acc is None
    with pytest.raises(DatasetNotFoundError, match="test_batch"):
        train(dataclasses.replace(config, evaluate_test=True))


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path: Path) -> None:
    train(tiny_config(epochs=1, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"seed must be 0 to resume the checkpoint .*, but got 1"):
        train(tiny_config(epochs=1, checkpoint_dir=tmp_path, resume=True, seed=1))


@pytest.mark.slow
def test_compiled_epoch_is_close_to_eager_and_resumes_without_compile(tmp_path: Path) -> None:
    # A small CNN: the trainer's compile path is the same for every model, and with a cold
    # compile cache (a fresh machine) inductor builds resnet20's kernels for over a minute.
    model = "tests.training_tests.own_models:small_cnn"
    config = tiny_config(epochs=2, checkpoint_dir=tmp_path, resume=True, model=model)

    def stop_after_first(epoch: int, metrics: dict[str, float]) -> None:
        raise Stop

    with pytest.raises(Stop):
        train(dataclasses.replace(config, compile=True), on_epoch=stop_after_first)
    compiled = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["history"][0]
    eager = train(tiny_config(epochs=2, model=model)).history[0]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert math.isfinite(compiled[key]), key
        assert compiled[key] == pytest.approx(eager[key], rel=1e-2, abs=1e-2), key
    resumed = train(config)  # without compile, from the compiled run's checkpoint
    assert resumed.status == "completed" and resumed.epochs_run == 2


@pytest.mark.parametrize("flag", ["bf16", "channels_last"])
def test_cuda_only_options_are_refused_on_cpu(flag: str) -> None:
    with pytest.raises(ValueError, match=rf"^{flag} must be False on a cpu device"):
        train(tiny_config(**{flag: True}))


def test_trainer_imports_neither_optuna_nor_ray() -> None:
    code = "import sys, training; print(sorted(m for m in ('optuna', 'ray') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"
