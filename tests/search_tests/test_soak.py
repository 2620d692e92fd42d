"""Soak: 60 short trials on SQLite with two Ray workers while worker processes are killed at
random moments. Ray runs a killed trial again and it resumes from its checkpoint: nothing is
lost, no finished epoch is trained twice, nothing stays RUNNING, export_best.py succeeds."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time

import pytest
from optuna.trial import TrialState

import export_best
from search import counted_trials, load_spec

from .conftest import ROOT, run_cli, trials_of

pytestmark = pytest.mark.slow

KILLS = 4


def test_sixty_trials_survive_random_worker_kills(write_spec, sqlite_url, tmp_path):
    path = write_spec(
        name="soak",
        optimizers=("adams", "adamsrt", "adam"),
        n_trials=20,
        epochs=3,
        train_subset=256,
        pruner="hyperband",
        workers=2,
    )
    spec = load_spec(path)
    proc = run_cli(
        [
            "--study",
            str(path),
            "--storage",
            sqlite_url,
            "--heartbeat",
            "1",
            "--checkpoint-dir",
            str(tmp_path / "checkpoints"),
        ]
    )
    rng = random.Random(0)
    killed: list[int] = []

    def killer() -> None:
        while proc.poll() is None and len(killed) < KILLS:
            time.sleep(rng.uniform(2.0, 6.0))
            running = [
                t
                for ts in trials_of(sqlite_url, spec).values()
                for t in ts
                if t.state == TrialState.RUNNING and "worker" in t.user_attrs
            ]
            if running:
                victim = rng.choice(running)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
                    killed.append(victim.number)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        proc.kill()
    thread.join(timeout=10)
    assert proc.returncode == 0, out
    assert len(killed) >= 2, f"the helper killed too few workers: {killed}"

    all_trials = trials_of(sqlite_url, spec)
    assert sum(len(counted_trials(ts)) for ts in all_trials.values()) == 60
    retrained = 0
    for trials in all_trials.values():
        assert [t.number for t in trials] == list(range(20))  # none lost, none added
        for t in trials:
            # Ray ran each killed trial again (three times at most): none failed.
            assert t.state in (TrialState.COMPLETE, TrialState.PRUNED), t
            steps = sorted(t.intermediate_values)
            assert steps == list(range(1, len(steps) + 1)), t  # each epoch reported once
            for attempt in t.user_attrs.get("attempts", []):
                retrained += max(0, attempt["reported_before"] - attempt["resumed_from"])
    resumed = [t for ts in all_trials.values() for t in ts if "attempts" in t.user_attrs]
    print(
        f"killed {len(killed)} workers; {len(resumed)} trials resumed; "
        f"finished epochs trained twice: {retrained}"
    )
    assert retrained == 0
    assert not list((tmp_path / "checkpoints").rglob("*.pt"))

    output = tmp_path / "best.py"
    output.write_text((ROOT / "best_hyper_parameters.py").read_text())
    assert export_best.main(["--storage", sqlite_url, "--output", str(output)]) == 0
