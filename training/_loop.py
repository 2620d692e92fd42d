"""``train``: the paper's training protocol as one plain function (it imports no optuna/ray).

Cross-entropy; MultiStepLR x0.1 at :func:`lr_milestones`; validation after every epoch; the
best-validation weights kept in memory; the test split evaluated once, at the end, with them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR
from tqdm.auto import tqdm

from data import DeviceLoader, build_loaders
from data._import_path import first_line
from optim import create_optimizer

from ._atomic import atomic_write
from ._checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_checkpoint,
    make_checkpoint_dir,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ._config import EpochMetrics, TrainConfig, TrainResult
from ._setting import build_model, optimizer_params

__all__ = ["lr_milestones", "train"]

#: The paper decays the lr at epochs 135, 225 and 315 of 405.
MILESTONE_FRACTIONS = (1 / 3, 5 / 9, 7 / 9)
LR_GAMMA = 0.1

# The training loop reads its device-side loss/accuracy sums (one host-device sync, the
# NaN/inf check and the progress-bar refresh) at most this often, and at the end of each epoch.
_SYNC_INTERVAL_S = 0.5


def lr_milestones(epochs: int) -> list[int]:
    """Epochs (1-based) after which the lr is multiplied by 0.1: ``round(f * epochs)`` for
    f in 1/3, 5/9, 7/9, i.e. [135, 225, 315] for 405. Milestones that round to 0 are dropped;
    coinciding ones (very short runs) compound, as in ``MultiStepLR``."""
    return [m for m in (round(f * epochs) for f in MILESTONE_FRACTIONS) if m > 0]


class _Diverged(Exception):
    """The training loss became NaN or infinite (internal: ``train`` returns a status)."""


@dataclass
class _RunState:
    """Everything of a run that is not in the model, optimizer or scheduler."""

    epoch: int = 0  # epochs finished
    history: list[EpochMetrics] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_val_acc: float | None = None
    best_epoch: int | None = None

    def record(self, metrics: EpochMetrics, model: nn.Module) -> None:
        self.epoch += 1
        self.history.append(metrics)
        if self.best_val_acc is None or metrics["val_acc"] > self.best_val_acc:
            self.best_val_acc = metrics["val_acc"]
            self.best_epoch = self.epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    config: TrainConfig, on_epoch: Callable[[int, EpochMetrics], None] | None = None
) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` with ``config.optimizer``; see the module.

    ``on_epoch(epoch, metrics)`` is called after each epoch (1-based), once its checkpoint and
    metrics line are written, so an exception it raises (e.g. ``optuna.TrialPruned``)
    propagates and leaves a consistent checkpoint that ``resume=True`` continues from. A NaN
    or infinite training loss ends the run with ``status="diverged"`` within
    ``_SYNC_INTERVAL_S`` of wall time (or at the epoch's end), without raising.

    On CPU, a resumed run ends bitwise-equal to an uninterrupted one (same weights, same
    metrics); on CUDA, as far as cuDNN's kernels are deterministic.

    A spherical optimizer on a model that ``torch.fx`` cannot trace trains with its plain rule
    (see :func:`training.inspect_setting`, which says so up front).

    Raises:
        SettingError: an import-path dataset or model that cannot be used.
        CheckpointError: ``resume=True`` found a damaged checkpoint, or one of another model.
        CheckpointWriteError: a checkpoint could not be written (the previous one is intact).
    """
    started = time.perf_counter()
    device = _resolve_device(config)
    torch.manual_seed(config.seed)
    loaders = build_loaders(
        config.dataset,
        batch_size=config.batch_size,
        seed=config.seed,
        data_dir=config.data_dir,
        download=config.download,
        verify=config.verify,
        device=device,
        train_subset=config.train_subset,
        with_test=config.evaluate_test,
        augment=config.augment,
    )
    info = loaders.info
    model = build_model(config.model, num_classes=info.num_classes, in_channels=info.in_channels)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params, _ = optimizer_params(config.optimizer, model)
    optimizer = create_optimizer(config.optimizer, params, **config.hparams)
    scheduler = MultiStepLR(optimizer, lr_milestones(config.epochs), gamma=LR_GAMMA)

    identity = config.result_fields()
    run = _RunState()
    checkpoint = None
    if config.checkpoint_dir is not None:
        checkpoint = Path(config.checkpoint_dir) / CHECKPOINT_NAME
        make_checkpoint_dir(checkpoint.parent)
        if config.resume and checkpoint.is_file():
            run = _restore(checkpoint, identity, model, optimizer, scheduler, device)
    metrics_path = None if config.metrics_path is None else Path(config.metrics_path)
    if metrics_path is not None:
        # Rewritten from the history, so lines of epochs after a resumed checkpoint vanish.
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(metrics_path, "".join(json.dumps(m) + "\n" for m in run.history))

    stepper = _Stepper(model, optimizer, device, config.bf16, config.channels_last)
    if config.compile:
        # As torch's tutorials do: the forward (and its backward) and the optimizer step are
        # compiled apart. Both wrap the same model and optimizer, so state_dicts and
        # checkpoints are an eager run's. A new lr (a milestone) may recompile the step.
        stepper.forward = torch.compile(model)
        stepper.step = torch.compile(optimizer.step)
    status: Literal["completed", "diverged"] = "completed"
    reason = None
    steps_per_epoch = len(loaders.train)
    desc = f"{config.optimizer} {config.model} {config.dataset} seed {config.seed}"
    # Off a terminal (a log file, a cluster job) the bar's carriage-return redraws would pile
    # up into one long line, so there the progress is one plain line per epoch instead.
    epoch_lines = config.progress and not sys.stderr.isatty()
    with tqdm(
        total=config.epochs * steps_per_epoch,
        initial=run.epoch * steps_per_epoch,
        desc=desc,
        unit="batch",
        dynamic_ncols=True,
        disable=not config.progress or epoch_lines,
    ) as bar:
        for epoch in range(run.epoch, config.epochs):
            epoch_started = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            loaders.train.set_epoch(epoch)
            try:
                train_loss, train_acc, images_per_s = stepper.train_epoch(
                    loaders.train, bar, epoch
                )
            except _Diverged as err:
                status, reason = "diverged", str(err)
                break
            val_loss, val_acc = stepper.evaluate(loaders.val)
            scheduler.step()
            metrics: EpochMetrics = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "images_per_s": images_per_s,
                "seconds": time.perf_counter() - epoch_started,
            }
            run.record(metrics, model)
            summary = (
                f"epoch {epoch + 1}/{config.epochs} loss {train_loss:.4f} "
                f"acc {train_acc:.2%} val {val_acc:.2%} {images_per_s:.0f} img/s"
            )
            bar.set_postfix_str(summary)
            if epoch_lines:
                print(f"{desc}: {summary}", file=sys.stderr, flush=True)
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint, _checkpoint_state(run, identity, model, optimizer, scheduler)
                )
            if metrics_path is not None:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(metrics) + "\n")
            if on_epoch is not None:
                on_epoch(epoch + 1, dict(metrics))

    test_acc = None
    # loaders.test is None exactly when evaluate_test is False; a completed run has a best.
    if status == "completed" and loaders.test is not None and run.best_state is not None:
        model.load_state_dict(run.best_state)
        _, test_acc = stepper.evaluate(loaders.test)
    train_seconds = sum(loaders.n_train / m["images_per_s"] for m in run.history)
    return TrainResult(
        status=status,
        reason=reason,
        best_val_acc=run.best_val_acc,
        best_epoch=run.best_epoch,
        test_acc=test_acc,
        epochs_run=run.epoch,
        history=run.history,
        config=config,
        seconds=time.perf_counter() - started,
        images_per_s=loaders.n_train * run.epoch / train_seconds if train_seconds else 0.0,
    )


def _resolve_device(config: TrainConfig) -> torch.device:
    """``"auto"`` -> CUDA when available; CUDA-only options are refused elsewhere."""
    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be available, but got {config.device!r} without CUDA")
    if device.type != "cuda":
        for flag in ("bf16", "channels_last"):
            if getattr(config, flag):
                raise ValueError(
                    f"{flag} must be False on a {device.type} device (a CUDA-only speed-up), "
                    "but got True"
                )
    return device


@dataclass
class _Stepper:
    """The per-batch work: memory layout, autocast, forward/backward, on-device sums.

    ``forward`` and ``step`` are the model's and the optimizer's, or compiled versions of them.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    bf16: bool
    channels_last: bool
    forward: Callable[[torch.Tensor], torch.Tensor] = field(init=False)
    step: Callable[[], Any] = field(init=False)

    def __post_init__(self) -> None:
        self.forward, self.step = self.model, self.optimizer.step

    def _batches(self, loader: DeviceLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The loader's batches (already on the device), in channels-last layout if asked."""
        for images, labels in loader:
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _zeros(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros((), dtype=dtype, device=self.device)

    def train_epoch(
        self, loader: DeviceLoader, bar: tqdm, epoch: int
    ) -> tuple[float, float, float]:
        """One pass over ``loader``; returns (mean loss, accuracy, images/s).

        Loss and correct counts are summed on the device and read back (one sync) only every
        ``_SYNC_INTERVAL_S`` seconds and at the end, so the host never waits per batch.
        """
        self.model.train()
        started = last_sync = time.perf_counter()
        loss_sum, correct = self._zeros(torch.float64), self._zeros(torch.int64)
        seen = unreported = 0
        for images, labels in self._batches(loader):
            with self._autocast():
                logits = self.forward(images)
                loss = F.cross_entropy(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.step()
            loss_sum.add_(loss.detach(), alpha=labels.numel())
            correct.add_((logits.argmax(dim=1) == labels).sum())
            seen += labels.numel()
            unreported += 1
            if time.perf_counter() - last_sync >= _SYNC_INTERVAL_S:
                _report(loss_sum, correct, seen, started, bar, unreported, epoch)
                last_sync, unreported = time.perf_counter(), 0
        loss, acc = _report(loss_sum, correct, seen, started, bar, unreported, epoch)
        return loss, acc, seen / (time.perf_counter() - started)

    @torch.no_grad()
    def evaluate(self, loader: DeviceLoader) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) of the model in eval mode over ``loader``."""
        self.model.eval()
        loss_sum, correct = self._zeros(torch.float64), self._zeros(torch.int64)
        seen = 0
        for images, labels in self._batches(loader):
            with self._autocast():
                logits = self.forward(images)
                loss_sum.add_(F.cross_entropy(logits, labels, reduction="sum"))
            correct.add_((logits.argmax(dim=1) == labels).sum())
            seen += labels.numel()
        total_loss, total_correct = torch.stack([loss_sum, correct.to(torch.float64)]).tolist()
        return total_loss / seen, total_correct / seen


def _report(
    loss_sum: torch.Tensor,
    correct: torch.Tensor,
    seen: int,
    started: float,
    bar: tqdm,
    steps: int,
    epoch: int,
) -> tuple[float, float]:
    """Sync once: raise :class:`_Diverged` on a non-finite loss, else update the bar."""
    total_loss, total_correct = torch.stack([loss_sum, correct.to(torch.float64)]).tolist()
    if not math.isfinite(total_loss):
        raise _Diverged(
            f"training loss became {total_loss} in epoch {epoch + 1} "
            f"(checked after {seen} images of that epoch)"
        )
    loss, acc = total_loss / seen, total_correct / seen
    bar.update(steps)
    bar.set_postfix_str(
        f"epoch {epoch + 1} loss {loss:.4f} acc {acc:.2%} "
        f"{seen / (time.perf_counter() - started):.0f} img/s",
        refresh=False,
    )
    return loss, acc


def _checkpoint_state(
    run: _RunState,
    identity: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: MultiStepLR,
) -> dict[str, Any]:
    return {
        "identity": identity,
        "epoch": run.epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best_state": run.best_state,
        "best_val_acc": run.best_val_acc,
        "best_epoch": run.best_epoch,
        "history": run.history,
        "rng": rng_state(),
    }


def _restore(
    path: Path,
    identity: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: MultiStepLR,
    device: torch.device,
) -> _RunState:
    """Load the checkpoint at ``path`` into the given objects and return the run's state."""
    state = load_checkpoint(path)
    for name, value in identity.items():
        saved = state["identity"].get(name)
        if saved != value:
            raise ValueError(
                f"{name} must be {saved!r} to resume the checkpoint {os.fspath(path)}, "
                f"but got {value!r}"
            )
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        best = state["best_state"]
        if best is not None and best.keys() != state["model"].keys():
            raise KeyError("best_state does not hold the model's tensors")
    except Exception as err:  # torch's load_state_dict raises several types
        raise CheckpointError(
            f"checkpoint {os.fspath(path)} does not fit this run's model and optimizer "
            f"({first_line(err)}); delete it to start afresh"
        ) from err
    return _RunState(
        epoch=state["epoch"],
        history=state["history"],
        best_state=None if best is None else {k: v.to(device) for k, v in best.items()},
        best_val_acc=state["best_val_acc"],
        best_epoch=state["best_epoch"],
    )
