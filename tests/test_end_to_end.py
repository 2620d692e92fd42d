"""The whole user path as commands: a smoke search on digits, export_best.py, then
training_example.py retraining with exactly the exported values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training import load_best_hyper_parameters

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name = "e2e"
dataset = "digits"
model = "resnet20"
optimizers = ["adamsrt", "sgdmrt"]
epochs = 2
n_trials = 3
batch_size = 64
train_subset = 256

[pruner]
kind = "none"

[resources]
workers = 2
"""


def _run(*args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_search_export_retrain(tmp_path):
    spec = tmp_path / "e2e.toml"
    spec.write_text(SPEC)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    best = tmp_path / "best.py"
    best.write_text((ROOT / "best_hyper_parameters.py").read_text())

    out = _run("run_search.py", "--smoke-test", "--study", str(spec), "--storage", storage)
    assert f"optuna-dashboard {storage}" in out
    out = _run("export_best.py", "--storage", storage, "--output", str(best))
    assert "digits/resnet20/adamsrt" in out and f"wrote {best}" in out
    # Both scripts closed the database as they exited: no write-ahead log is left beside it.
    assert not list(tmp_path.glob("studies.db-*")), sorted(p.name for p in tmp_path.iterdir())
    table, provenance = load_best_hyper_parameters(best)
    exported = table["digits"]["resnet20"]["adamsrt"]
    assert (
        provenance["digits/resnet20/adamsrt"]["study"]
        == "e2e-smoke-digits-resnet20-adamsrt-default"
    )

    results = tmp_path / "retrain"
    _run(
        "training_example.py",
        "--optimizer=adamsrt",
        "--model=resnet20",
        "--dataloader=digits",
        "--epochs=1",
        "--train-subset=256",
        "--batch-size=64",
        "--no-progress",
        f"--hyper-parameters={best}",
        f"--output={results}",
    )
    metrics = json.loads((results / "metrics.json").read_text())
    used = metrics["runs"][0]["hparams"]
    assert {**used, "betas": tuple(used["betas"])} == exported
    assert metrics["runs"][0]["status"] == "completed"
    assert metrics["runs"][0]["test_acc"] is not None
