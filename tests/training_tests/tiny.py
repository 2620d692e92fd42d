"""Tiny runs: resnet20 on 200 images of the offline digits set, batch 64 (4 steps/epoch)."""

from __future__ import annotations

from typing import Any

from training import TrainConfig, lookup_hyper_parameters


def tiny_config(optimizer: str = "adam", **overrides: Any) -> TrainConfig:
    """A 3-epoch CPU config with the table's digits/resnet20 hyper-parameters."""
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
        kwargs["hparams"] = lookup_hyper_parameters("digits", "resnet20", optimizer)
    return TrainConfig(**{**kwargs, **overrides})
