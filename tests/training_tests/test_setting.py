"""``inspect_setting`` (a dataset and model checked before training), models of one's own by
import path, the plain-rule fallback and its notice, and ``train`` on a setting of one's own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from data import DatasetNotFoundError, clear_dataset_cache
from models import create_model
from optim import create_optimizer
from training import (
    SettingError,
    SettingInfo,
    TrainConfig,
    build_model,
    inspect_setting,
    train,
)
from training._setting import optimizer_params

from ..conftest import write_cifar10
from .conftest import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = "tests.training_tests.own_models"
DATASETS = "tests.data_tests.own_datasets"
PLAIN = (
    "the spherical optimizers (adamg, adams, adamsrt, sgdmrt) train it with their plain rule, "
    "every weight in the non-channel-wise group"
)


def _convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in model.modules())


def test_a_registry_setting() -> None:
    info = inspect_setting("digits", "resnet20")
    # resnet20's convs all feed a BatchNorm: every one of them is scale-invariant.
    expected = _convs(create_model("resnet20", num_classes=10, in_channels=1))
    assert info == SettingInfo(
        dataset="digits",
        model="resnet20",
        num_classes=10,
        in_channels=1,
        image_size=(8, 8),
        n_train=1497,
        augment=False,
        scale_invariant=expected,
    )
    assert expected == 21 and info.notice is None and info.notice_for(["adamsrt"]) is None


def test_a_setting_of_one_s_own() -> None:
    info = inspect_setting(f"{DATASETS}:float_images", f"{MODELS}:small_cnn", augment=True)
    assert (info.num_classes, info.in_channels, info.image_size) == (4, 1, (6, 10))
    assert (info.n_train, info.augment, info.scale_invariant) == (40, True, 1)
    assert info.notice is None
    registry_model = inspect_setting(f"{DATASETS}:uint8_images", "resnet20")
    assert registry_model.num_classes == 5 and registry_model.in_channels == 3
    with pytest.raises(SettingError, match=r"^model 'vgg16' must accept the dataset's images, "):
        inspect_setting(f"{DATASETS}:uint8_images", "vgg16")  # 8x8 images: too small for it


def test_no_scale_invariant_weight_gives_the_notice() -> None:
    info = inspect_setting("digits", f"{MODELS}:mlp")
    assert info.scale_invariant == 0 and info.untraceable is None
    assert info.notice == (
        f"note: model '{MODELS}:mlp' has no scale-invariant weights (a conv or linear whose "
        f"output feeds only a BatchNorm): {PLAIN}"
    )
    assert info.notice_for(["adam", "sgd"]) is None
    assert info.notice_for(["adam", "sgdmrt"]) == info.notice


def test_a_model_fx_cannot_trace_gives_the_notice_and_trains_with_the_plain_rule() -> None:
    info = inspect_setting("digits", f"{MODELS}:untraceable")
    assert info.scale_invariant == 0 and info.untraceable is not None
    assert info.notice is not None and info.notice.startswith(
        f"note: torch.fx cannot trace model '{MODELS}:untraceable' to find its scale-invariant "
        "weights (TraceError: "
    )
    assert info.notice.endswith(f"): {PLAIN}") and "\n" not in info.notice

    model = build_model(f"{MODELS}:untraceable", num_classes=10, in_channels=1)
    params, why = optimizer_params("adamsrt", model)
    assert why == info.untraceable
    optimizer = create_optimizer("adamsrt", params, lr=1e-3)
    [group] = optimizer.param_groups
    assert not group["channel_wise"] and len(group["params"]) == len(list(model.parameters()))
    config = tiny_config("adamsrt", model=f"{MODELS}:untraceable", epochs=1)
    assert train(config).status == "completed"


def test_the_groups_are_create_optimizer_s_own_for_a_traceable_model() -> None:
    model = create_model("resnet20", num_classes=10)
    params, why = optimizer_params("sgdmrt", model)
    ours = create_optimizer("sgdmrt", params, lr=0.1)
    theirs = create_optimizer("sgdmrt", model, lr=0.1)
    assert why is None
    assert [[id(p) for p in g["params"]] for g in ours.param_groups] == [
        [id(p) for p in g["params"]] for g in theirs.param_groups
    ]
    assert optimizer_params("sgd", model) == (model, None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "three_classes",
            "must return (batch, 10) logits for the dataset's 10 classes, but returned "
            "(2, 3) in train mode",
        ),
        ("returns_a_string", "must return a torch.nn.Module, but "
                             "returns_a_string(num_classes=10, in_channels=1) returned a str"),
        ("no_in_channels", "must build a model when called as no_in_channels(num_classes=10, "
                           "in_channels=1), but it raised TypeError: "),
        ("raises", "must build a model when called as raises(num_classes=10, in_channels=1), "
                   "but it raised RuntimeError: out of memory"),
        ("rgb_only", "must accept the dataset's images, but a (2, 1, 8, 8) batch in train "
                     "mode raised RuntimeError: "),
        ("nothing_here", f"must name an attribute of {MODELS!r}, but it has no 'nothing_here'"),
    ],
)  # fmt: skip
def test_a_model_that_does_not_fit_is_one_line(name: str, message: str) -> None:
    path = f"{MODELS}:{name}"
    with pytest.raises(SettingError) as info:
        inspect_setting("digits", path)
    text = str(info.value)
    assert text.startswith(f"model {path!r} ") and message in text, text
    assert "\n" not in text


def test_names_are_checked_before_anything_is_read() -> None:
    with pytest.raises(ValueError, match=r"^dataset must be one of \[.*\] or a 'package"):
        inspect_setting("mnist", "resnet20")
    with pytest.raises(ValueError, match=r"^model must be one of \[.*\] or a 'package"):
        inspect_setting("digits", "resnet50")
    with pytest.raises(ValueError, match=r"^augment must be a bool, but got 'no'$"):
        inspect_setting("digits", "resnet20", augment="no")


def test_only_the_training_files_are_read(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    clear_dataset_cache()
    info = inspect_setting("cifar10", "resnet20", data_dir=tmp_path, verify=False)
    assert (info.num_classes, info.n_train, info.augment) == (10, 40, True)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").unlink()
    clear_dataset_cache()
    with pytest.raises(DatasetNotFoundError, match="data_batch_1"):
        inspect_setting("cifar10", "resnet20", data_dir=tmp_path, verify=False)


def test_the_global_random_state_is_left_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    inspect_setting("digits", "resnet20")
    assert torch.equal(torch.get_rng_state(), before)


def test_train_on_a_setting_of_one_s_own_resumes_bitwise(tmp_path: Path) -> None:
    config = TrainConfig(
        dataset=f"{DATASETS}:uint8_images",
        model=f"{MODELS}:small_cnn",
        optimizer="adamsrt",
        hparams={"lr": 1e-2},
        epochs=3,
        batch_size=8,
        device="cpu",
        progress=False,
        augment=True,
    )
    full = train(config)
    assert full.status == "completed" and full.test_acc is not None

    class Stop(Exception):
        pass

    def stop(epoch: int, metrics: dict[str, float]) -> None:
        raise Stop

    resumable = dataclasses.replace(config, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(Stop):
        train(resumable, on_epoch=stop)
    resumed = train(resumable)
    timing = ("images_per_s", "seconds")
    assert [{k: v for k, v in m.items() if k not in timing} for m in resumed.history] == [
        {k: v for k, v in m.items() if k not in timing} for m in full.history
    ]
    assert resumed.test_acc == full.test_acc


def test_augment_changes_a_run_and_its_identity(tmp_path: Path) -> None:
    plain = train(tiny_config("sgd", epochs=1))
    augmented = train(tiny_config("sgd", epochs=1, augment=True))
    assert plain.history[0]["train_loss"] != augmented.history[0]["train_loss"]
    train(tiny_config("sgd", epochs=1, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"^augment must be None to resume the checkpoint"):
        train(tiny_config("sgd", epochs=1, checkpoint_dir=tmp_path, resume=True, augment=True))
