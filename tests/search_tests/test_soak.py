"""Soak: 60 short trials on SQLite with two Ray runners while runners are killed, three times, at
planned moments (through the trial-function seam, not timing). Each killed trial runs again on
a fresh runner and resumes from its checkpoint: nothing is lost, no finished epoch is trained
twice, nothing stays RUNNING, export_best.py succeeds."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

import export_best
from search import load_spec

from .conftest import ROOT, check_exact, run_cli
from .faults import fired_marker, write_plan

pytestmark = pytest.mark.slow

OPTIMIZERS = ("adams", "adamsrt", "adam")


def test_sixty_trials_survive_planned_runner_kills(write_spec, sqlite_url, tmp_path):
    path = write_spec(
        name="soak",
        optimizers=OPTIMIZERS,
        n_trials=20,
        epochs=2,
        train_subset=128,
        pruner="hyperband",
        workers=2,
    )
    spec, checkpoints = load_spec(path), tmp_path / "checkpoints"
    # A kill in each study, after epoch 1 (every trial trains it, pruned or not).
    kills = [
        {"study": spec.study_name(opt), "trial": trial, "epoch": 1, "kind": "kill"}
        for opt, trial in zip(OPTIMIZERS, (3, 9, 15), strict=True)
    ]
    write_plan(checkpoints, *kills)
    proc = run_cli(
        [
            "--study",
            str(path),
            "--storage",
            sqlite_url,
            "--heartbeat",
            "1",
            "--checkpoint-dir",
            str(checkpoints),
        ],
        faults=True,
    )
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert all(fired_marker(checkpoints, kill).exists() for kill in kills), out
    assert out.count("worker lost") == len(kills), out
    assert "(raylet)" not in out and "\x1b[" not in out  # Ray's own messages went to its log

    all_trials = check_exact(sqlite_url, spec)
    retrained = 0
    for opt, trials in all_trials.items():
        assert len(trials) == 20, opt  # none lost, none added: each kill ran again in place
        for t in trials:
            assert t.state in (TrialState.COMPLETE, TrialState.PRUNED), t
            for attempt in t.user_attrs.get("attempts", []):
                retrained += max(0, attempt["reported_before"] - attempt["resumed_from"])
        resumed = {t.number for t in trials if "attempts" in t.user_attrs}
        assert resumed == {k["trial"] for k in kills if k["study"] == spec.study_name(opt)}
    assert retrained == 0
    assert not list(checkpoints.rglob("*.pt"))

    output = tmp_path / "best.py"
    output.write_text((ROOT / "best_hyper_parameters.py").read_text())
    assert export_best.main(["--storage", sqlite_url, "--output", str(output)]) == 0
