"""Tiny runs: resnet20 on 200 images of the offline digits set, batch 64 (4 steps/epoch)."""

from __future__ import annotations

from typing import Any

from training import TrainConfig

from ..conftest import paper_hparams


def tiny_config(optimizer: str = "adam", **overrides: Any) -> TrainConfig:
    """A 3-epoch CPU config with the paper's cifar10/resnet20 hyper-parameters (Table 4)."""
    kwargs: dict[str, Any] = {
        "dataset": "digits",
        "model": "resnet20",
        "optimizer": optimizer,
        "epochs": 3,
        "batch_size": 64,
        "train_subset": 200,
        "device": "cpu",
        "progress": False,
    }
    if "hparams" not in overrides:
        kwargs["hparams"] = paper_hparams("cifar10", "resnet20", optimizer)
    return TrainConfig(**{**kwargs, **overrides})
