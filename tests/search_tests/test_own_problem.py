"""A problem of one's own: a model and a dataset from a module the project has never seen, and a
search space declared in the spec. Searched on a local Ray, exported and retrained as commands
from the module's directory; searched again on a two-node cluster, which gets the module from
Ray's runtime environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search import load_spec, run
from training import load_best_hyper_parameters

from .conftest import check_exact, trials_of

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

MODULE = """
import torch
from torch import nn


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 2, 6, 6, generator=g)
    y = (x[:, 0].mean(dim=(1, 2)) > x[:, 1].mean(dim=(1, 2))).to(torch.int64)
    return x[:240], y[:240], x[240:], y[240:]


def net(num_classes, in_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )
"""

SPEC = """
name = "mine"
dataset = "my_pkg.problem:data"
model = "my_pkg.problem:net"
optimizers = ["adamsrt", "sgd"]
epochs = 2
n_trials = 4
batch_size = 32

[space]
preset = "default"
weight_decay = 0.0
lr = { low = 1e-3, high = 1e-2, log = true }

[space.sgd]
momentum = { choices = [0.8, 0.9] }

[pruner]
kind = "none"

[resources]
workers = 2
"""


def _write_package(root: Path) -> None:
    """``my_pkg/problem.py``: a package of one's own (a cluster gets its directory)."""
    (root / "my_pkg").mkdir()
    (root / "my_pkg" / "__init__.py").write_text("")
    (root / "my_pkg" / "problem.py").write_text(MODULE)


def _within_the_space(trials) -> None:
    for t in trials:
        hp = t.user_attrs["hparams"]
        assert 1e-3 <= hp["lr"] <= 1e-2 and hp["weight_decay"] == 0.0, hp
        assert hp.get("momentum", 0.9) in (0.8, 0.9), hp


def _cli(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_own_model_and_dataset_search_export_retrain(tmp_path):
    _write_package(tmp_path)
    (tmp_path / "mine.toml").write_text(SPEC)
    _cli(tmp_path, str(ROOT / "run_search.py"), "--study", "mine.toml")
    spec = load_spec(tmp_path / "mine.toml")
    url = f"sqlite:///{tmp_path / 'studies' / 'studies.db'}"
    for trials in check_exact(url, spec).values():
        assert all(t.state == TrialState.COMPLETE for t in trials)
        _within_the_space(trials)

    out = _cli(tmp_path, str(ROOT / "export_best.py"), "--report", "report")
    assert "my_pkg.problem:data/my_pkg.problem:net/adamsrt" in out
    table, _ = load_best_hyper_parameters(tmp_path / "best_hyper_parameters.py")
    exported = table["my_pkg.problem:data"]["my_pkg.problem:net"]["sgd"]
    report = sorted(p.name for p in (tmp_path / "report").iterdir())
    stem = "my_pkg.problem_data-my_pkg.problem_net"
    assert report == [f"{stem}.md", f"{stem}.png"]

    _cli(
        tmp_path,
        str(ROOT / "training_example.py"),
        "--optimizer=sgd",
        "--epochs=1",
        "--model=my_pkg.problem:net",
        "--dataloader=my_pkg.problem:data",
        "--no-progress",
        "--output=retrain",
    )
    run_ = json.loads((tmp_path / "retrain" / "metrics.json").read_text())["runs"][0]
    assert run_["hparams"] == exported and run_["status"] == "completed"


@pytest.mark.xdist_group("two-node")
def test_own_problem_on_a_two_node_cluster_gets_its_module_shipped(
    tmp_path, monkeypatch, no_shared_ray, two_node_cluster
):
    _write_package(tmp_path)
    (tmp_path / "mine.toml").write_text(SPEC)
    monkeypatch.syspath_prepend(str(tmp_path))  # the driver imports it; the nodes do not
    spec = load_spec(tmp_path / "mine.toml", {"optimizers": ["sgd"]})
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    run(
        spec,
        storage_url=url,
        ray_address=two_node_cluster.address,
        heartbeat_interval=2,
        checkpoint_dir=tmp_path / "checkpoints",
        say=print,
    )
    trials = check_exact(url, spec)["sgd"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"]["node"] for t in trials_of(url, spec)["sgd"]}) == 2
    _within_the_space(trials)
