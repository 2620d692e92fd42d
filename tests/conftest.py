"""Helpers shared by the test packages: the paper's Table 4, one-thread runs, and small
CIFAR-10, CIFAR-100 and SVHN files in the genuine on-disk formats, for offline tests.

The genuine CIFAR batches are Python 2 pickles; torchvision loads them with
``encoding="latin1"``, which turns their str keys into Python 3 str. Pickling str keys from
Python 3 therefore yields exactly what torchvision sees ('data', 'labels', ...).
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch

# Paper Appendix E, Table 4, as printed (shared/spec/experiments.md): the tests' own copy, so
# that export_best.py rewriting best_hyper_parameters.py with search winners changes no test.
# (dataset, model) -> optimizer -> weight decay (sgd, sgdmrt) or (beta2, weight decay).
_TABLE_4: dict[tuple[str, str], dict[str, Any]] = {
    ("cifar10", "resnet20"): {
        "sgd": 2.5e-4, "sgdmrt": 3.125e-5, "adam": (0.99, 5e-4), "adamw": (0.99, 1e-2),
        "adamg": (0.99, 5e-4), "adams": (0.99, 5e-4), "adamsrt": (0.99, 7.8125e-6),
    },
    ("cifar10", "resnet18"): {
        "sgd": 2.5e-4, "sgdmrt": 2.5e-4, "adam": (0.999, 7.8125e-6), "adamw": (0.99, 6.25e-5),
        "adamg": (0.99, 5e-4), "adams": (0.99, 1.5625e-5), "adamsrt": (0.99, 7.8125e-6),
    },
    ("cifar10", "vgg16"): {
        "sgd": 2.5e-4, "sgdmrt": 6.25e-5, "adam": (0.999, 3.125e-5), "adamw": (0.999, 2.5e-4),
        "adamg": (0.999, 5e-4), "adams": (0.999, 3.125e-5), "adamsrt": (0.999, 1.5625e-5),
    },
    ("cifar100", "resnet18"): {
        "sgd": 5e-4, "sgdmrt": 5e-4, "adam": (0.999, 1.25e-4), "adamw": (0.99, 1.25e-4),
        "adamg": (0.99, 5e-4), "adams": (0.99, 1.25e-4), "adamsrt": (0.999, 0.0),
    },
    ("cifar100", "vgg16"): {
        "sgd": 5e-4, "sgdmrt": 1.25e-4, "adam": (0.99, 6.25e-5), "adamw": (0.99, 1.5625e-5),
        "adamg": (0.99, 5e-4), "adams": (0.99, 6.25e-5), "adamsrt": (0.99, 7.8125e-6),
    },
    ("svhn", "resnet18"): {
        "sgd": 5e-4, "sgdmrt": 5e-4, "adam": (0.999, 0.0), "adamw": (0.999, 7.8125e-6),
        "adamg": (0.99, 5e-4), "adams": (0.99, 3.125e-5), "adamsrt": (0.999, 7.8125e-6),
    },
    ("svhn", "vgg16"): {
        "sgd": 5e-4, "sgdmrt": 3.125e-5, "adam": (0.99, 0.0), "adamw": (0.99, 3.125e-5),
        "adamg": (0.99, 5e-4), "adams": (0.99, 7.8125e-6), "adamsrt": (0.999, 2.5e-4),
    },
}  # fmt: skip


def paper_hparams(dataset: str, model: str, optimizer: str) -> dict[str, Any]:
    """Every keyword argument of the paper's setting: Table 4's weight decay (and beta2), with
    beta1 0.9, eps 1e-8, momentum 0.9, lr 0.1 (sgd, sgdmrt), 1e-2 (adamg), 1e-3 (the rest)."""
    entry = _TABLE_4[dataset, model][optimizer]
    if optimizer in ("sgd", "sgdmrt"):
        return {"lr": 0.1, "momentum": 0.9, "weight_decay": entry}
    beta2, weight_decay = entry
    lr = 1e-2 if optimizer == "adamg" else 1e-3
    return {"lr": lr, "betas": (0.9, beta2), "eps": 1e-8, "weight_decay": weight_decay}


#: BEST_HYPER_PARAMETERS[dataset][model][optimizer] of the paper's Table 4.
PAPER_TABLE_4: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
for (_dataset, _model), _entries in _TABLE_4.items():
    PAPER_TABLE_4.setdefault(_dataset, {})[_model] = {
        name: paper_hparams(_dataset, _model, name) for name in _entries
    }


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread for the module's tests.

    Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's
    spinning threads made single epochs 100x slower whenever another process ran.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


N_PER_CIFAR10_BATCH = 8  # x 5 batches = 40 training images
N_TRAIN = 40
N_TEST = 20


@dataclass(frozen=True)
class FakeSplits:
    """What was written: uint8 NCHW images and int64 labels (SVHN: after 10 -> 0)."""

    root: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, seed: int = 0) -> FakeSplits:
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    train_x, train_y = _images(rng, N_TRAIN), rng.integers(0, 10, N_TRAIN)
    test_x, test_y = _images(rng, N_TEST), rng.integers(0, 10, N_TEST)
    for b in range(5):
        part = slice(b * N_PER_CIFAR10_BATCH, (b + 1) * N_PER_CIFAR10_BATCH)
        _dump(
            folder / f"data_batch_{b + 1}",
            {
                "batch_label": f"training batch {b + 1} of 5",
                "labels": train_y[part].tolist(),
                "data": train_x[part].reshape(-1, 3072),
                "filenames": [f"img_{i}.png" for i in range(N_PER_CIFAR10_BATCH)],
            },
        )
    _dump(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": test_y.tolist(),
            "data": test_x.reshape(-1, 3072),
            "filenames": [f"test_{i}.png" for i in range(N_TEST)],
        },
    )
    _dump(
        folder / "batches.meta",
        {
            "num_cases_per_batch": N_PER_CIFAR10_BATCH,
            "label_names": [f"class{i}" for i in range(10)],
            "num_vis": 3072,
        },
    )
    return FakeSplits(root, train_x, train_y, test_x, test_y)


def write_cifar100(root: Path, seed: int = 1) -> FakeSplits:
    """``root/cifar-100-python/{train, test, meta}``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    splits = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x, fine = _images(rng, n), rng.integers(0, 100, n)
        fine[0] = 99  # make sure the top class id survives loading
        _dump(
            folder / split,
            {
                "filenames": [f"{split}_{i}.png" for i in range(n)],
                "batch_label": f"{split} batch 1 of 1",
                "fine_labels": fine.tolist(),
                "coarse_labels": (fine // 5).tolist(),
                "data": x.reshape(-1, 3072),
            },
        )
        splits[split] = (x, fine)
    _dump(
        folder / "meta",
        {
            "fine_label_names": [f"fine{i}" for i in range(100)],
            "coarse_label_names": [f"coarse{i}" for i in range(20)],
        },
    )
    return FakeSplits(root, *splits["train"], *splits["test"])


def write_svhn(root: Path, seed: int = 2) -> FakeSplits:
    """``root/svhn/{train,test}_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1) in 1..10."""
    rng = np.random.default_rng(seed)
    folder = root / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x, y = _images(rng, n), rng.integers(1, 11, n)
        y[0] = 10  # the digit 0 is stored as 10
        scipy.io.savemat(
            folder / f"{split}_32x32.mat",
            {"X": x.transpose(2, 3, 1, 0), "y": y.reshape(-1, 1).astype(np.uint8)},
        )
        splits[split] = (x, y % 10)
    return FakeSplits(root, *splits["train"], *splits["test"])


@pytest.fixture(scope="session")
def cifar10_files(tmp_path_factory: pytest.TempPathFactory) -> FakeSplits:
    return write_cifar10(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def cifar100_files(tmp_path_factory: pytest.TempPathFactory) -> FakeSplits:
    return write_cifar100(tmp_path_factory.mktemp("cifar100"))


@pytest.fixture(scope="session")
def svhn_files(tmp_path_factory: pytest.TempPathFactory) -> FakeSplits:
    return write_svhn(tmp_path_factory.mktemp("svhn"))


@pytest.fixture(scope="session")
def all_files(
    cifar10_files: FakeSplits, cifar100_files: FakeSplits, svhn_files: FakeSplits
) -> dict[str, FakeSplits]:
    return {"cifar10": cifar10_files, "cifar100": cifar100_files, "svhn": svhn_files}


@pytest.fixture
def shared_ray(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A local Ray started once for the test run, as ``search.run`` starts one; ``run`` uses a
    Ray that is already up as it is (the session shuts it down at the end)."""
    import ray

    from search._executors import start_ray

    if not ray.is_initialized():
        start_ray(None, tmp_path_factory.getbasetemp() / "ray.log", [])


@pytest.fixture
def no_shared_ray() -> None:
    """No Ray in this process: the test joins a cluster of its own."""
    import ray

    ray.shutdown()


@pytest.fixture(scope="session")
def two_node_cluster() -> Iterator[Any]:
    """A local Ray cluster of two nodes of one CPU each (ray.cluster_utils), started once; the
    tests that join it share an xdist group, so a parallel run starts it on one worker."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the Ray the tests shared before the interpreter exits: torn down by the
    interpreter's exit instead, its core worker's threads outlive what they use."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
